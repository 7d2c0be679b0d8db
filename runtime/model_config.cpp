// model_config.cpp — GGUF metadata → ModelConfig, with validation of every derived size.
#include "runtime/model_config.h"

#include <filesystem>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {

std::string_view architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::Qwen2: return "qwen2";
    case Architecture::Qwen3: return "qwen3";
  }
  return "?";
}

ModelConfig ModelConfig::from_gguf(const gguf::GgufFile& file) {
  ModelConfig c;
  const std::string arch = file.get_string("general.architecture");
  if (arch == "qwen3") {
    c.arch = Architecture::Qwen3;
  } else if (arch == "qwen2") {
    c.arch = Architecture::Qwen2;
  } else {
    throw Error(fmt::format("{}: unsupported architecture '{}' (xelm runs qwen3 and qwen2)", file.path(), arch));
  }
  c.name = file.find_string("general.name").value_or(std::filesystem::path(file.path()).stem().string());

  auto key = [&](const char* suffix) { return arch + "." + suffix; };
  auto positive = [&](const char* suffix, int64_t limit) {
    const int64_t v = file.get_int(key(suffix));
    if (v <= 0 || v > limit) {
      throw Error(fmt::format("{}: metadata key '{}' = {} is out of range (1..{})", file.path(), key(suffix), v, limit));
    }
    return v;
  };
  c.n_layer = positive("block_count", 4096);
  c.n_embd = positive("embedding_length", 1 << 20);
  c.n_ff = positive("feed_forward_length", 1 << 22);
  c.n_head = positive("attention.head_count", 4096);
  c.n_head_kv = file.find_int(key("attention.head_count_kv")).value_or(c.n_head);
  c.n_ctx_train = positive("context_length", int64_t{1} << 32);
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0) {
    throw Error(fmt::format("{}: attention.head_count ({}) is not a multiple of attention.head_count_kv ({})",
                            file.path(), c.n_head, c.n_head_kv));
  }
  if (auto key_length = file.find_int(key("attention.key_length"))) {
    c.head_dim = *key_length;
  } else {
    if (c.n_embd % c.n_head != 0) {
      throw Error(fmt::format("{}: embedding_length {} is not a multiple of head_count {} and no attention.key_length is given",
                              file.path(), c.n_embd, c.n_head));
    }
    c.head_dim = c.n_embd / c.n_head;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 1024) {
    throw Error(fmt::format("{}: attention.key_length {} must be even and in 2..1024", file.path(), c.head_dim));
  }
  if (auto value_length = file.find_int(key("attention.value_length")); value_length && *value_length != c.head_dim) {
    throw Error(fmt::format("{}: attention.value_length {} differs from key_length {} (unsupported)", file.path(),
                            *value_length, c.head_dim));
  }
  c.rope_freq_base = static_cast<float>(file.find_float(key("rope.freq_base")).value_or(10000.0));
  c.rms_norm_eps = static_cast<float>(file.find_float(key("attention.layer_norm_rms_epsilon")).value_or(1e-6));
  if (!(c.rope_freq_base > 0.0f) || !(c.rms_norm_eps > 0.0f)) {
    throw Error(fmt::format("{}: rope.freq_base and layer_norm_rms_epsilon must be positive", file.path()));
  }
  const gguf::TensorInfo& embd = file.tensor("token_embd.weight");
  if (embd.shape.size() != 2 || embd.shape[0] != c.n_embd) {
    throw Error(fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected [{}, n_vocab]", file.path(),
                            embd.shape_string(), c.n_embd));
  }
  c.n_vocab = embd.shape[1];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string ModelConfig::summary() const {
  return fmt::format("{} '{}': {} layers, n_embd {}, {} q / {} kv heads × {}, n_ff {}, vocab {}, ctx {}, rope base {}, {} output",
                     architecture_name(arch), name, n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab,
                     n_ctx_train, rope_freq_base, tied_output ? "tied" : "separate");
}

}  // namespace xelm
