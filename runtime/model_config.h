// model_config.h — the hyper-parameters of a Qwen-family model, read from GGUF metadata keys
// ("<arch>.block_count", "<arch>.attention.head_count", ...) with a clear error for each missing one.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/gguf.h"

namespace xelm {

enum class Architecture {
  Qwen2,  // QKV projections carry a bias; no q/k norm (Qwen2, Qwen2.5)
  Qwen3,  // per-head RMS norm of q and k before RoPE; no bias; head_dim may differ from n_embd/n_head
};

std::string_view architecture_name(Architecture arch);  // the GGUF spelling: "qwen2", "qwen3"

struct ModelConfig {
  Architecture arch = Architecture::Qwen3;
  std::string name;            // general.name, or the file stem when absent
  int64_t n_layer = 0;         // repeating transformer blocks
  int64_t n_embd = 0;          // hidden size
  int64_t n_head = 0;          // query heads
  int64_t n_head_kv = 0;       // key/value heads (GQA: n_head is a multiple of it)
  int64_t head_dim = 0;        // attention.key_length (defaults to n_embd / n_head)
  int64_t n_ff = 0;            // feed-forward (SwiGLU) width
  int64_t n_vocab = 0;         // rows of token_embd
  int64_t n_ctx_train = 0;     // context_length the model was trained for
  float rope_freq_base = 10000.0f;
  float rms_norm_eps = 1e-6f;
  bool tied_output = false;    // no output.weight: the head reuses token_embd

  bool has_qkv_bias() const { return arch == Architecture::Qwen2; }
  bool has_qk_norm() const { return arch == Architecture::Qwen3; }
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }

  // Reads and validates the keys; throws xelm::Error naming the file and key at fault.
  static ModelConfig from_gguf(const gguf::GgufFile& file);
  std::string summary() const;  // one line: "qwen3, 28 layers, n_embd 1024, 16/8 heads × 128, ..."
};

}  // namespace xelm
