// tokenizer.cpp — Qwen byte-level BPE: added-token split, NFC (utf8proc), the Qwen2 pre-tokenizer
// regex (PCRE2, JIT), byte-level mapping and rank-ordered BPE merges, ported from HF `tokenizers`.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <utility>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {
namespace {

// The pre-tokenizer names llama.cpp's converter writes for tokenizers with Qwen2's regex.
constexpr std::array<std::string_view, 2> kQwenPreTokenizers = {"qwen2", "deepseek-r1-qwen"};

// HF's pattern for Qwen2 is
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// run by Oniguruma, whose Unicode \s is U+0009..U+000D, U+0085 and the Z categories (Zs, Zl, Zp).
// PCRE2's UCP \s adds U+180E (through \h), so \s is spelled out here as Oniguruma defines it.
std::string qwen2_pattern() {
  const std::string space = R"(\t\n\x0B\f\r\x{85}\p{Z})";
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^)" + space + R"(\p{L}\p{N}]+[\r\n]*|[)" +
         space + R"(]*[\r\n]+|[)" + space + R"(]+(?![^)" + space + R"(])|[)" + space + "]+";
}

// Hash for unordered_map<std::string, ...> lookups by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string utf8_of(uint32_t code_point) {
  utf8proc_uint8_t buffer[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buffer);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// NFC of valid UTF-8 (ASCII is its own NFC).
std::string nfc(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (n < 0) throw Error(fmt::format("NFC normalization failed: {}", utf8proc_errmsg(n)));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

struct AddedToken {
  std::string text;
  int32_t id;
  bool control;  // skipped (left as text) when parse_special is false
};

struct Merge {
  int32_t rank;
  int32_t id;  // the merged token
};

// Words up to this many bytes are cached, in a cache of at most this many words (emptied when full).
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCachedWords = 1 << 16;

}  // namespace

struct Tokenizer::Impl {
  Vocabulary vocab;
  StringMap<int32_t> id_of_text;             // every token by its stored text (lowest id on duplicates)
  std::array<int32_t, 256> byte_token{};     // the single-byte token of each byte
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> rank and result
  std::vector<AddedToken> added;             // control and user-defined tokens, matched before BPE
  std::array<bool, 256> starts_added{};      // first bytes of added tokens
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> regex{nullptr, &pcre2_code_free};

  mutable std::mutex cache_mutex;
  mutable StringMap<std::vector<int32_t>> cache;  // BPE result per pre-token

  // The leftmost-longest added token at or after `from` (HF's Aho-Corasick LeftmostLongest), as
  // (position, index in `added`); nullopt when there is none.
  std::optional<std::pair<size_t, size_t>> find_added(std::string_view text, size_t from) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;     // any bytes
  void encode_valid(std::string_view text, std::vector<int32_t>& out) const;    // valid UTF-8
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;     // one pre-token
  std::vector<int32_t> bpe(std::string_view word) const;
};

std::optional<std::pair<size_t, size_t>> Tokenizer::Impl::find_added(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!starts_added[static_cast<unsigned char>(text[pos])]) continue;
    std::optional<size_t> best;
    for (size_t k = 0; k < added.size(); ++k) {
      if (text.substr(pos).starts_with(added[k].text) && (!best || added[k].text.size() > added[*best].text.size())) {
        best = k;
      }
    }
    if (best) return std::pair{pos, *best};
  }
  return std::nullopt;
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  // Alternate maximal runs of valid UTF-8 (normalized and pre-tokenized) and of invalid bytes
  // (each run one pre-token, encoded byte for byte).
  size_t i = 0;
  while (i < text.size()) {
    const size_t valid_start = i;
    for (size_t n; i < text.size() && (n = utf8_sequence_length(text, i)) > 0;) i += n;
    if (i > valid_start) encode_valid(text.substr(valid_start, i - valid_start), out);
    const size_t invalid_start = i;
    while (i < text.size() && utf8_sequence_length(text, i) == 0) ++i;
    if (i > invalid_start) encode_word(text.substr(invalid_start, i - invalid_start), out);
  }
}

void Tokenizer::Impl::encode_valid(std::string_view text, std::vector<int32_t>& out) const {
  const std::string normalized = nfc(text);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(normalized.data());
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(regex.get(), nullptr), &pcre2_match_data_free);
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
  size_t pos = 0;
  while (pos < normalized.size()) {
    const int rc = pcre2_match(regex.get(), subject, normalized.size(), pos, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(fmt::format("pre-tokenizer regex failed (PCRE2 error {})", rc));
    // Text the regex skipped is a piece of its own (HF's Split "Isolated"); the pattern covers
    // every character, so this does not happen for valid input, but it is kept, not dropped.
    if (ovector[0] > pos) encode_word(std::string_view(normalized).substr(pos, ovector[0] - pos), out);
    encode_word(std::string_view(normalized).substr(ovector[0], ovector[1] - ovector[0]), out);
    pos = std::max(ovector[1], ovector[0] + 1);  // the pattern never matches empty; never loop
  }
  if (pos < normalized.size()) encode_word(std::string_view(normalized).substr(pos), out);
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_token[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (word.size() > kMaxCachedWordBytes) {
    const std::vector<int32_t> ids = bpe(word);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  {
    const std::lock_guard lock(cache_mutex);
    if (const auto it = cache.find(word); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = bpe(word);
  out.insert(out.end(), ids.begin(), ids.end());
  const std::lock_guard lock(cache_mutex);
  if (cache.size() >= kMaxCachedWords) cache.clear();
  cache.emplace(std::string(word), std::move(ids));
}

// HF's Word::merge_all: one symbol per byte; repeatedly merge the adjacent pair of lowest rank
// (leftmost among equals), using a min-heap of candidate pairs and skipping stale ones.
std::vector<int32_t> Tokenizer::Impl::bpe(std::string_view word) const {
  struct Symbol {
    int32_t id;    // -1 once merged into its left neighbour
    int32_t prev;  // -1 at the start
    int32_t next;  // -1 at the end
  };
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(word.size());
  std::vector<Symbol> symbols(word.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[static_cast<size_t>(i)] = {byte_token[static_cast<unsigned char>(word[static_cast<size_t>(i)])], i - 1,
                                       i + 1 < n ? i + 1 : -1};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto find_merge = [&](int32_t pos) -> const Merge* {
    const Symbol& s = symbols[static_cast<size_t>(pos)];
    if (s.next < 0) return nullptr;
    const auto it = merges.find(pair_key(s.id, symbols[static_cast<size_t>(s.next)].id));
    return it == merges.end() ? nullptr : &it->second;
  };
  auto offer = [&](int32_t pos) {
    if (const Merge* m = find_merge(pos)) queue.push({m->rank, pos, m->id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) offer(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.id < 0) continue;
    const Merge* m = find_merge(top.pos);
    if (m == nullptr || m->id != top.id) continue;  // the pair changed since it was queued
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    left.id = top.id;
    left.next = right.next;
    right.id = -1;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) offer(left.prev);
    offer(top.pos);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) ids.push_back(symbols[static_cast<size_t>(i)].id);
  return ids;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  std::optional<Vocabulary> vocab = Vocabulary::from_gguf(file);
  if (!vocab) throw Error(fmt::format("{}: the file has no tokenizer (no tokenizer.ggml.tokens)", file.path()));
  if (vocab->model() != "gpt2") {
    throw Error(fmt::format("{}: tokenizer.ggml.model is '{}'; xelm implements only 'gpt2' (byte-level BPE)",
                            file.path(), vocab->model()));
  }
  if (std::find(kQwenPreTokenizers.begin(), kQwenPreTokenizers.end(), vocab->pre()) == kQwenPreTokenizers.end()) {
    throw Error(fmt::format("{}: tokenizer.ggml.pre is '{}'; xelm implements Qwen's pre-tokenizer ({})", file.path(),
                            vocab->pre(), fmt::join(kQwenPreTokenizers, ", ")));
  }

  auto impl = std::make_unique<Impl>();
  impl->vocab = std::move(*vocab);
  const Vocabulary& v = impl->vocab;
  for (size_t i = 0; i < v.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    impl->id_of_text.emplace(v.token(id), id);
    const TokenType type = v.type(id);
    if ((type == TokenType::Control || type == TokenType::UserDefined) && !v.token(id).empty()) {
      impl->added.push_back({v.token(id), id, type == TokenType::Control});
      impl->starts_added[static_cast<unsigned char>(v.token(id)[0])] = true;
    }
  }
  // BPE works on tokens of the model's own vocabulary, not on added or padding tokens.
  auto bpe_token = [&](std::string_view text) -> std::optional<int32_t> {
    const auto it = impl->id_of_text.find(text);
    if (it == impl->id_of_text.end()) return std::nullopt;
    const TokenType type = v.type(it->second);
    if (type == TokenType::Control || type == TokenType::UserDefined || type == TokenType::Unused) return std::nullopt;
    return it->second;
  };
  for (uint32_t b = 0; b < 256; ++b) {
    const std::optional<int32_t> id = bpe_token(utf8_of(byte_level_code_point(static_cast<uint8_t>(b))));
    if (!id) throw Error(fmt::format("{}: the vocabulary has no token for byte 0x{:02X}", file.path(), b));
    impl->byte_token[b] = *id;
  }

  const gguf::Value* merges = file.find("tokenizer.ggml.merges");
  const gguf::Value::Array* merge_items = merges != nullptr ? merges->as_array() : nullptr;
  if (merge_items == nullptr || merges->element_type() != gguf::ValueType::STRING) {
    throw Error(fmt::format("{}: tokenizer.ggml.merges is missing or not an array of strings", file.path()));
  }
  impl->merges.reserve(merge_items->size());
  for (size_t rank = 0; rank < merge_items->size(); ++rank) {
    const std::string& merge = *(*merge_items)[rank].as_string();
    const size_t space = merge.find(' ', 1);
    const std::optional<int32_t> left = space == std::string::npos ? std::nullopt : bpe_token(merge.substr(0, space));
    const std::optional<int32_t> right = left ? bpe_token(merge.substr(space + 1)) : std::nullopt;
    const std::optional<int32_t> merged = right ? bpe_token(merge.substr(0, space) + merge.substr(space + 1)) : std::nullopt;
    if (!merged) {
      throw Error(fmt::format("{}: tokenizer.ggml.merges[{}] '{}' is not two tokens whose concatenation is a token",
                              file.path(), rank, merge));
    }
    // A repeated pair takes its last rank, as HF's BPE builder does.
    impl->merges.insert_or_assign(pair_key(*left, *right), Merge{static_cast<int32_t>(rank), *merged});
  }

  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const std::string pattern = qwen2_pattern();
  impl->regex.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                  &error_code, &error_offset, nullptr));
  if (!impl->regex) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw Error(fmt::format("pre-tokenizer regex does not compile at {}: {}", error_offset,
                            reinterpret_cast<const char*>(message)));
  }
  pcre2_jit_compile(impl->regex.get(), PCRE2_JIT_COMPLETE);  // pcre2_match falls back to the interpreter without JIT
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  // Split around added tokens first, on the raw text. A control token matched while parse_special
  // is off stays part of the surrounding text (HF finds it, then skips it).
  size_t segment_start = 0;
  size_t search_from = 0;
  while (const auto found = impl_->find_added(text, search_from)) {
    const auto [pos, index] = *found;
    const AddedToken& token = impl_->added[index];
    search_from = pos + token.text.size();
    if (token.control && !parse_special) continue;
    impl_->encode_text(text.substr(segment_start, pos - segment_start), ids);
    ids.push_back(token.id);
    segment_start = search_from;
  }
  impl_->encode_text(text.substr(segment_start), ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->vocab.size()) {
      throw Error(fmt::format("token id {} is outside the vocabulary ({} tokens)", id, impl_->vocab.size()));
    }
    text += impl_->vocab.piece(id);
  }
  return text;
}

const Vocabulary& Tokenizer::vocab() const { return impl_->vocab; }

std::optional<int32_t> Tokenizer::token_id(std::string_view token_text) const {
  const auto it = impl_->id_of_text.find(token_text);
  return it == impl_->id_of_text.end() ? std::nullopt : std::optional<int32_t>(it->second);
}

}  // namespace xelm
