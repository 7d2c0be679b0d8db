// transformer.h — the one forward pass of a Qwen2/Qwen3 decoder, run over a placement of its parts
// on backends, with the KV cache that carries a sequence from call to call.
//
// Every executor (scalar reference, AVX2, OpenCL, and any split between them) goes through this
// same layer loop; only the Backend behind each layer differs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"
#include "runtime/model.h"

namespace xelm {

// Which backend runs each part of the model. Backends are owned by the caller and outlive the
// Transformer.
struct Placement {
  Backend* embedding = nullptr;       // token_embd lookup (the prolog)
  std::vector<Backend*> layers;       // one per repeating block
  Backend* head = nullptr;            // output_norm + output product (the epilog)

  static Placement all_on(Backend& backend, int64_t n_layer);
};

struct TransformerOptions {
  int64_t n_ctx = 4096;    // KV cache positions (clamped to the model's training context)
  int64_t n_batch = 512;   // tokens per forward step when processing a prompt
  GgmlType kv_type = GgmlType::F16;  // KV cache storage: F16, F32 or Q8_0
};

class Transformer {
 public:
  Transformer(const Model& model, Placement placement, TransformerOptions options);
  ~Transformer();

  // Runs `tokens` at positions n_past() .. n_past()+n-1 and appends them to the KV cache.
  // Returns logits [n_vocab] for the last token, or [n, n_vocab] row-major when all_logits.
  // Throws xelm::Error if the tokens do not fit the context or an id is out of range.
  std::vector<float> eval(std::span<const int32_t> tokens, bool all_logits = false);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  // Forget positions >= n (keeps a common prefix; 0 clears the sequence).
  void truncate(int64_t n);
  const ModelConfig& config() const { return model_.config(); }
  const Placement& placement() const { return placement_; }
  // Called as each repeating layer starts (entering = true, after the residual stream reached its
  // backend) and ends, with the layer index and its backend: lets the benchmark attribute device
  // counters (kernel launches) to the layers. Empty by default.
  using LayerHook = std::function<void(int64_t layer, Backend* backend, bool entering)>;
  void set_layer_hook(LayerHook hook) { layer_hook_ = std::move(hook); }

 private:
  struct BackendState;  // prepared weights, scratch activations and KV caches of one backend
  BackendState& state(Backend* backend);
  const Weight& weight(Backend* backend, WeightTensor tensor);
  const Weight* optional_weight(Backend* backend, WeightTensor tensor);
  // Moves the residual stream to `to` if it currently lives on another backend.
  void hand_over(Backend*& current, Backend* to, int64_t n_rows);
  void eval_batch(std::span<const int32_t> tokens, bool all_logits, std::vector<float>& logits_out);

  const Model& model_;
  Placement placement_;
  int64_t n_ctx_;
  int64_t n_batch_;
  int64_t n_past_ = 0;
  std::map<Backend*, std::unique_ptr<BackendState>> states_;
  std::vector<float> handover_;  // host staging for the residual stream between backends
  LayerHook layer_hook_;
};

}  // namespace xelm
