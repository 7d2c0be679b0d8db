// synthetic_model.cpp — random weights with scales that keep activations O(1) through any depth:
// matrices ~ N(0, 1/in_features), norm gains ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.1^2), embeddings
// ~ N(0, 0.5^2). Each tensor draws from its own stream seeded by (seed, tensor name), so a tensor's
// values do not depend on the order or the presence of other tensors.
#include "runtime/synthetic_model.h"

#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"
#include "runtime/file_io.h"
#include "runtime/file_type.h"
#include "runtime/gguf.h"
#include "runtime/vocab.h"

namespace xelm {
namespace {

// SplitMix64 stream + Box–Muller: the same numbers on every platform and standard library.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : state_(seed) {}
  float next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
    const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
    has_spare_ = true;
    return static_cast<float>(r * std::cos(2.0 * M_PI * u2));
  }

 private:
  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;  // FNV-1a over the name, keyed by the seed
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

class TensorFactory {
 public:
  TensorFactory(gguf::GgufWriter& writer, uint64_t seed) : writer_(writer), seed_(seed) {}

  // values = offset + scale * N(0, 1), stored as `type` (quantized row by row).
  void add(const std::string& name, std::vector<int64_t> shape, GgmlType type, float offset, float scale) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const int64_t row = shape[0];
    NormalStream rng(tensor_seed(seed_, name));
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = offset + scale * rng.next();
    auto& bytes = storage_.emplace_back(row_bytes(type, row) * static_cast<size_t>(count / row));
    const size_t stride = row_bytes(type, row);
    for (int64_t r = 0; r < count / row; ++r) {
      quantize_row(type, values.data() + r * row, bytes.data() + static_cast<size_t>(r) * stride, row);
    }
    writer_.add_tensor(name, type, std::move(shape), bytes.data());
  }

 private:
  gguf::GgufWriter& writer_;
  uint64_t seed_;
  std::deque<std::vector<uint8_t>> storage_;  // stable addresses until write()
};

// The tokenizer.* keys of `file` with only its first `keep` tokens and every added (control or
// user-defined) token, renumbered after them; the merges whose two parts and result are all kept;
// the special-token ids renumbered (dropped when their token is).
std::vector<std::pair<std::string, gguf::Value>> trimmed_tokenizer(const gguf::GgufFile& file, int64_t keep) {
  const gguf::Value::Array& tokens = *file.find("tokenizer.ggml.tokens")->as_array();
  const gguf::Value* types_value = file.find("tokenizer.ggml.token_type");
  const gguf::Value::Array* types = types_value != nullptr ? types_value->as_array() : nullptr;
  if (types == nullptr || types->size() != tokens.size()) throw Error("tokenizer: no token_type entry per token to trim by");
  std::vector<int64_t> new_id(tokens.size(), -1);
  gguf::Value::Array kept_tokens, kept_types;
  std::unordered_set<std::string> kept_text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t type = (*types)[i].as_int().value_or(0);
    const bool added = type == static_cast<int64_t>(TokenType::Control) || type == static_cast<int64_t>(TokenType::UserDefined);
    if (static_cast<int64_t>(i) >= keep && !added) continue;
    new_id[i] = static_cast<int64_t>(kept_tokens.size());
    kept_tokens.push_back(tokens[i]);
    kept_types.push_back((*types)[i]);
    if (!added && tokens[i].as_string() != nullptr) kept_text.insert(*tokens[i].as_string());
  }
  std::vector<std::pair<std::string, gguf::Value>> keys;
  for (const auto& entry : file.metadata()) {
    const std::string& key = entry.first;
    const gguf::Value& value = entry.second;
    if (key.rfind("tokenizer.", 0) != 0) continue;
    if (key == "tokenizer.ggml.tokens") {
      keys.emplace_back(key, gguf::Value::from_array(value.element_type(), kept_tokens));
    } else if (key == "tokenizer.ggml.token_type") {
      keys.emplace_back(key, gguf::Value::from_array(value.element_type(), kept_types));
    } else if (key == "tokenizer.ggml.merges" && value.as_array() != nullptr) {
      gguf::Value::Array merges;
      for (const gguf::Value& merge : *value.as_array()) {
        const std::string* text = merge.as_string();
        const size_t space = text != nullptr ? text->find(' ', 1) : std::string::npos;
        if (space == std::string::npos) continue;
        const std::string left = text->substr(0, space), right = text->substr(space + 1);
        if (kept_text.count(left) && kept_text.count(right) && kept_text.count(left + right)) merges.push_back(merge);
      }
      keys.emplace_back(key, gguf::Value::from_array(value.element_type(), std::move(merges)));
    } else if (key.size() > 9 && key.compare(key.size() - 9, 9, "_token_id") == 0) {
      const std::optional<int64_t> id = value.as_int();
      if (id && *id >= 0 && static_cast<size_t>(*id) < new_id.size() && new_id[static_cast<size_t>(*id)] >= 0) {
        keys.emplace_back(key, gguf::Value::from_uint(gguf::ValueType::U32, static_cast<uint64_t>(new_id[static_cast<size_t>(*id)])));
      }
    } else {
      keys.emplace_back(key, value);
    }
  }
  return keys;
}

// Copies tokenizer.* keys (trimmed to `keep` tokens when > 0), padding the token list to n_vocab as
// llama.cpp's converter does.
void add_tokenizer(gguf::GgufWriter& writer, const std::string& path, int64_t n_vocab, int64_t keep) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  auto file = gguf::GgufFile::parse(bytes, path);
  const gguf::Value* tokens = file->find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->as_array() == nullptr) {
    throw Error(fmt::format("{}: no tokenizer.ggml.tokens array", path));
  }
  std::vector<std::pair<std::string, gguf::Value>> keys;
  if (keep > 0) {
    keys = trimmed_tokenizer(*file, keep);
  } else {
    for (const auto& entry : file->metadata()) {
      if (entry.first.rfind("tokenizer.", 0) == 0) keys.push_back(entry);
    }
  }
  for (const auto& [key, value] : keys) {
    if (key != "tokenizer.ggml.tokens") continue;
    const int64_t n_tokens = static_cast<int64_t>(value.as_array()->size());
    if (n_vocab < n_tokens) {
      throw Error(fmt::format("vocabulary size {} is smaller than the tokenizer's {} tokens (use a larger --vocab or no tokenizer)",
                              n_vocab, n_tokens));
    }
  }
  for (auto& [key, value] : keys) {
    if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type") {
      gguf::Value::Array items = *value.as_array();
      for (int64_t i = static_cast<int64_t>(items.size()); i < n_vocab; ++i) {
        items.push_back(key == "tokenizer.ggml.tokens" ? gguf::Value::from_string(fmt::format("[PAD{}]", i))
                                                       : gguf::Value::from_int(gguf::ValueType::I32, 5));  // unused
      }
      writer.set(key, gguf::Value::from_array(value.element_type(), std::move(items)));
    } else {
      writer.set(key, value);
    }
  }
}

}  // namespace

SyntheticModelSpec SyntheticModelSpec::qwen3_0_6b() {
  SyntheticModelSpec s;
  s.name = "xelm-synthetic-qwen3-0.6b";
  s.n_layer = 28;
  s.n_embd = 1024;
  s.n_head = 16;
  s.n_head_kv = 8;
  s.head_dim = 128;
  s.n_ff = 3072;
  s.n_vocab = 151936;
  s.n_ctx = 40960;
  s.tied_output = true;
  s.weight_type = GgmlType::F16;
  s.tokenizer_path = default_tokenizer_path();
  return s;
}

std::string default_tokenizer_path() { return std::string(XELM_DATA_DIR) + "/tokenizer/qwen3-tokenizer.gguf.gz"; }

void write_synthetic_model(const SyntheticModelSpec& s, const std::string& path) {
  if (s.n_layer < 1 || s.n_embd < 1 || s.n_head < 1 || s.n_head_kv < 1 || s.n_head % s.n_head_kv != 0 ||
      s.head_dim < 2 || s.head_dim % 2 != 0 || s.n_ff < 1 || s.n_vocab < 1 || s.n_ctx < 1) {
    throw Error("make-test-model: invalid shape (layers, sizes and heads must be positive, head_count a multiple "
                "of head_count_kv, head_dim even)");
  }
  const TypeTraits& traits = type_traits(s.weight_type);
  for (int64_t in : {s.n_embd, s.n_head * s.head_dim, s.n_ff}) {
    if (in % traits.block_size != 0) {
      throw Error(fmt::format("make-test-model: {} needs input widths that are multiples of {} (got {})", traits.name,
                              traits.block_size, in));
    }
  }
  if (!traits.can_quantize) throw Error(fmt::format("make-test-model: cannot write weights as {}", traits.name));

  gguf::GgufWriter w;
  const std::string arch(architecture_name(s.arch));
  w.set_string("general.architecture", arch);
  w.set_string("general.name", s.name);
  w.set_u32("general.quantization_version", 2);
  w.set_u32(arch + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(arch + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(arch + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(arch + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(arch + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(arch + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32(arch + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
  w.set_u32(arch + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  w.set_f32(arch + ".rope.freq_base", s.rope_freq_base);
  w.set_f32(arch + ".attention.layer_norm_rms_epsilon", s.rms_norm_eps);

  int64_t n_vocab = s.n_vocab;
  if (!s.tokenizer_path.empty()) add_tokenizer(w, s.tokenizer_path, n_vocab, s.tokenizer_tokens);

  const int64_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
  const auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  const GgmlType wt = s.weight_type, f32 = GgmlType::F32;
  TensorFactory t(w, s.seed);
  t.add("token_embd.weight", {s.n_embd, n_vocab}, wt, 0.0f, 0.5f);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    t.add(p + "attn_norm.weight", {s.n_embd}, f32, 1.0f, 0.1f);
    t.add(p + "attn_q.weight", {s.n_embd, q_dim}, wt, 0.0f, inv_sqrt(s.n_embd));
    t.add(p + "attn_k.weight", {s.n_embd, kv_dim}, wt, 0.0f, inv_sqrt(s.n_embd));
    t.add(p + "attn_v.weight", {s.n_embd, kv_dim}, wt, 0.0f, inv_sqrt(s.n_embd));
    if (s.arch == Architecture::Qwen2) {
      t.add(p + "attn_q.bias", {q_dim}, f32, 0.0f, 0.1f);
      t.add(p + "attn_k.bias", {kv_dim}, f32, 0.0f, 0.1f);
      t.add(p + "attn_v.bias", {kv_dim}, f32, 0.0f, 0.1f);
    } else {
      t.add(p + "attn_q_norm.weight", {s.head_dim}, f32, 1.0f, 0.1f);
      t.add(p + "attn_k_norm.weight", {s.head_dim}, f32, 1.0f, 0.1f);
    }
    t.add(p + "attn_output.weight", {q_dim, s.n_embd}, wt, 0.0f, inv_sqrt(q_dim));
    t.add(p + "ffn_norm.weight", {s.n_embd}, f32, 1.0f, 0.1f);
    t.add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, wt, 0.0f, inv_sqrt(s.n_embd));
    t.add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, wt, 0.0f, inv_sqrt(s.n_embd));
    t.add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, wt, 0.0f, inv_sqrt(s.n_ff));
  }
  t.add("output_norm.weight", {s.n_embd}, f32, 1.0f, 0.1f);
  if (!s.tied_output) t.add("output.weight", {s.n_embd, n_vocab}, wt, 0.0f, inv_sqrt(s.n_embd));
  w.set_u32("general.file_type", static_cast<uint32_t>(file_type_for(wt)));
  w.write(path);
}

}  // namespace xelm
