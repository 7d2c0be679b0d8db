// vocab.cpp — reading tokenizer.ggml.* and byte-level decoding.
#include "runtime/vocab.h"

#include <algorithm>
#include <array>
#include <utility>

#include <spdlog/fmt/fmt.h>
#include <utf8proc.h>

#include "runtime/error.h"

namespace xelm {
namespace {

// Decodes one UTF-8 code point at s[i], advancing i; returns U+FFFD on malformed input.
uint32_t next_code_point(const std::string& s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + static_cast<size_t>(len) > s.size()) {
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3F);
  i += static_cast<size_t>(len);
  return cp;
}

// The byte→code point table: printable bytes map to themselves, the others to U+0100.. in order.
const std::array<uint32_t, 256>& code_point_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t byte_level_code_point(uint8_t byte) { return code_point_table()[byte]; }

std::optional<uint8_t> byte_level_byte(uint32_t code_point) {
  // The table's inverse; every code point it uses is below 512.
  static const std::array<int, 512> inverse = [] {
    std::array<int, 512> t{};
    t.fill(-1);
    for (uint32_t b = 0; b < 256; ++b) t[code_point_table()[b]] = static_cast<int>(b);
    return t;
  }();
  if (code_point >= inverse.size() || inverse[code_point] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[code_point]);
}

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  if (static_cast<unsigned char>(text[pos]) < 0x80) return 1;
  utf8proc_int32_t code_point = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                                              static_cast<utf8proc_ssize_t>(text.size() - pos), &code_point);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::optional<Vocabulary> Vocabulary::from_gguf(const gguf::GgufFile& file) {
  const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
  if (tokens == nullptr) return std::nullopt;
  Vocabulary v;
  v.model_ = file.find_string("tokenizer.ggml.model").value_or("");
  v.pre_ = file.find_string("tokenizer.ggml.pre").value_or("");
  const gguf::Value::Array* items = tokens->as_array();
  if (items == nullptr || tokens->element_type() != gguf::ValueType::STRING) {
    throw Error(fmt::format("{}: tokenizer.ggml.tokens is not an array of strings", file.path()));
  }
  v.tokens_.reserve(items->size());
  for (const gguf::Value& item : *items) v.tokens_.push_back(*item.as_string());
  v.types_.assign(v.tokens_.size(), TokenType::Normal);
  if (const gguf::Value* types = file.find("tokenizer.ggml.token_type")) {
    const gguf::Value::Array* type_items = types->as_array();
    if (type_items == nullptr || type_items->size() != v.tokens_.size()) {
      throw Error(fmt::format("{}: tokenizer.ggml.token_type does not have one entry per token", file.path()));
    }
    for (size_t i = 0; i < type_items->size(); ++i) {
      const int64_t t = (*type_items)[i].as_int().value_or(1);
      v.types_[i] = t >= 0 && t <= 6 ? static_cast<TokenType>(t) : TokenType::Normal;
    }
  }
  if (const gguf::Value* merges = file.find("tokenizer.ggml.merges"); merges != nullptr && merges->as_array()) {
    v.n_merges_ = merges->as_array()->size();
  }
  auto special = [&](const char* key) -> std::optional<int32_t> {
    const auto id = file.find_int(key);
    if (!id) return std::nullopt;
    if (*id < 0 || *id >= static_cast<int64_t>(v.tokens_.size())) {
      throw Error(fmt::format("{}: {} = {} is not a token id", file.path(), key, *id));
    }
    return static_cast<int32_t>(*id);
  };
  v.eos_ = special("tokenizer.ggml.eos_token_id");
  v.bos_ = special("tokenizer.ggml.bos_token_id");
  if (v.eos_) v.end_of_generation_.push_back(*v.eos_);
  for (const char* text : {"<|endoftext|>", "<|im_end|>"}) {
    auto it = std::find(v.tokens_.begin(), v.tokens_.end(), text);
    if (it != v.tokens_.end()) v.end_of_generation_.push_back(static_cast<int32_t>(it - v.tokens_.begin()));
  }
  return v;
}

bool Vocabulary::is_end_of_generation(int32_t id) const {
  return std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

std::string Vocabulary::piece(int32_t id) const {
  const std::string& text = token(id);
  const TokenType t = type(id);
  if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unused) return text;
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (const std::optional<uint8_t> b = byte_level_byte(next_code_point(text, i))) {
      bytes.push_back(static_cast<char>(*b));
    } else {  // not a byte-level symbol: U+FFFD
      bytes += "\xEF\xBF\xBD";
    }
  }
  return bytes;
}

}  // namespace xelm

namespace xelm {

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  // Find where the last (possibly incomplete) sequence starts and whether it is complete.
  size_t cut = pending_.size();
  for (size_t back = 1; back <= std::min<size_t>(4, pending_.size()); ++back) {
    const auto c = static_cast<unsigned char>(pending_[pending_.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    const size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (need > back) cut = pending_.size() - back;  // lead byte whose sequence is not complete yet
    break;
  }
  std::string ready = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return ready;
}

std::string Utf8Stream::flush() { return std::exchange(pending_, std::string()); }

}  // namespace xelm
