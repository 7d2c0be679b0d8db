// model.h — a loaded model: the mmapped GGUF, its config, and every weight tensor bound by role
// with its shape checked against the architecture. Weight data is not copied: TensorInfo::data
// points into the file mapping, which lives as long as the Model.
//
// A LayerPlan (runtime/layer_plan.h) given at load time maps logical layer i to the source layer(s)
// it names: config().n_layer and weights().layers are the plan's, so the forward pass, the KV cache
// and the offload plan see the modified model. Interpolated layers get tensors of their own
// (dequantized, mixed, requantized), held by the Model.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/layer_plan.h"
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
  // `layer_plan`: operations as LayerPlan::parse takes them; empty = the file's layers as they are.
  static std::unique_ptr<Model> load(const std::string& path, std::string_view layer_plan = {});
  static std::unique_ptr<Model> from_file(std::unique_ptr<gguf::GgufFile> file, std::string_view layer_plan = {});
  // The same file (shared, not reopened) with another plan over its source layers.
  std::unique_ptr<Model> with_plan(const LayerPlan& plan) const;

  const gguf::GgufFile& file() const { return *file_; }
  const LayerPlan& layer_plan() const { return plan_; }
  int64_t n_source_layers() const { return plan_.n_source; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  uint64_t weight_bytes() const;  // bytes of all bound tensors (each counted once)

 private:
  static std::unique_ptr<Model> bind_layers(std::shared_ptr<const gguf::GgufFile> file, const LayerPlan* plan,
                                     std::string_view plan_text);

  std::shared_ptr<const gguf::GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  LayerPlan plan_;
  std::deque<OwnedTensor> mixed_;  // tensors of interpolated layers (a deque: pointers stay valid)
};

}  // namespace xelm
