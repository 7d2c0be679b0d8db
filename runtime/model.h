// model.h — a loaded model: the mmapped GGUF, its config, and every weight tensor bound by role
// with its shape checked against the architecture. Weight data is not copied: TensorInfo::data
// points into the file mapping, which lives as long as the Model.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/model_config.h"

namespace xelm {

using WeightTensor = const gguf::TensorInfo*;  // null only for optional tensors that are absent

struct LayerWeights {
  WeightTensor attn_norm;           // [n_embd]
  WeightTensor wq, wk, wv;          // [n_embd, q_dim], [n_embd, kv_dim], [n_embd, kv_dim]  (ggml order: in, out)
  WeightTensor bq, bk, bv;          // [q_dim], [kv_dim], [kv_dim]                 qwen2 only
  WeightTensor q_norm, k_norm;      // [head_dim]                                   qwen3 only
  WeightTensor wo;                  // [q_dim, n_embd]
  WeightTensor ffn_norm;            // [n_embd]
  WeightTensor w_gate, w_up;        // [n_embd, n_ff]
  WeightTensor w_down;              // [n_ff, n_embd]
};

struct ModelWeights {
  WeightTensor token_embd;          // [n_embd, n_vocab]
  WeightTensor output_norm;         // [n_embd]
  WeightTensor output;              // [n_embd, n_vocab]; == token_embd when the model ties them
  std::vector<LayerWeights> layers;
};

class Model {
 public:
  // Opens and validates a GGUF model; throws xelm::Error naming the file and the problem.
  static std::unique_ptr<Model> load(const std::string& path);
  static std::unique_ptr<Model> from_file(std::unique_ptr<gguf::GgufFile> file);

  const gguf::GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  uint64_t weight_bytes() const;  // bytes of all bound tensors (each counted once)

 private:
  std::unique_ptr<gguf::GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
};

}  // namespace xelm
