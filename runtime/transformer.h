// transformer.h — the one forward pass of a Qwen2/Qwen3 decoder, run over a placement of its parts
// on backends, with the paged KV cache that carries any number of sequences from call to call.
//
// Every executor (scalar reference, AVX2, OpenCL, and any split between them) goes through this
// same layer loop; only the Backend behind each layer differs. One eval takes rows of several
// sequences (prompt chunks and decoded tokens mixed): every weight product runs once for all rows,
// attention runs per sequence over its own pages (runtime/kv_pages.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"
#include "runtime/kv_pages.h"
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
  // KV cache positions in total, across all sequences (one pool, as llama.cpp's unified cache); one
  // sequence holds at most min(n_ctx, the model's training context).
  int64_t n_ctx = 4096;
  int64_t n_batch = 512;   // rows per forward step (prompt chunks and decoded tokens together)
  GgmlType kv_type = GgmlType::F16;  // KV cache storage: F16, F32 or Q8_0
  int64_t kv_page_size = 32;         // positions per KV cache page (a tuning value)
};

// One entry of a batched eval: `tokens` appended to sequence `seq` at positions length(seq) ...
struct SeqInput {
  enum class Logits { Last, All, None };
  SeqId seq;
  std::span<const int32_t> tokens;
  Logits logits = Logits::Last;
};

class Transformer {
 public:
  Transformer(const Model& model, Placement placement, TransformerOptions options);
  ~Transformer();

  // Appends every entry's tokens to its sequence (each sequence at most once per call) in one pass
  // per n_batch rows. Returns the requested logits rows, entry by entry in order, row-major
  // [rows, n_vocab]: the last token's (Logits::Last), every token's (All) or none.
  // Throws xelm::Error, changing nothing, if a sequence would exceed n_ctx(), the pool has too few
  // free pages (the message says how many are needed), or a token id is out of range.
  std::vector<float> eval(std::span<const SeqInput> batch);

  // The sequence a Transformer starts with (created with it), and the single-sequence calls on it:
  // eval runs `tokens` at positions n_past() .. n_past()+n-1 and returns the last token's logits
  // [n_vocab], or [n, n_vocab] when all_logits.
  static constexpr SeqId kDefaultSequence = 0;
  std::vector<float> eval(std::span<const int32_t> tokens, bool all_logits = false);
  int64_t n_past() const { return length(kDefaultSequence); }
  void truncate(int64_t n) { truncate(kDefaultSequence, n); }

  // Sequences. Positions of a sequence are in its pages; these only move page references (and copy
  // a shared page before it is written), except evict, which moves the rows after the span.
  SeqId new_sequence() { return pages_.create(); }
  void release(SeqId seq) { pages_.release(seq); }
  bool exists(SeqId seq) const { return pages_.exists(seq); }
  int64_t length(SeqId seq) const { return pages_.length(seq); }
  // A new sequence sharing the first n positions of src (all when n < 0): a snapshot, or a prefix
  // to continue from. Costs no copy until one of them writes into a shared page.
  SeqId fork(SeqId src, int64_t n = -1) { return pages_.fork(src, n); }
  // dst becomes a copy of src (shared pages): restores a snapshot.
  void assign(SeqId dst, SeqId src) { pages_.assign(dst, src); }
  // Forgets positions >= n (keeps a common prefix; 0 clears the sequence).
  void truncate(SeqId seq, int64_t n) { pages_.truncate(seq, n); }
  // Removes positions [begin, end): later positions move down by end - begin and their keys are
  // re-rotated by the position change (RoPE shift, as llama.cpp's context shift), so the cache then
  // holds what a prefill of the sequence without the span would, up to rounding of the rotation.
  void evict(SeqId seq, int64_t begin, int64_t end);
  // Pages appending n tokens to seq would take from the pool now.
  int64_t pages_needed(SeqId seq, int64_t n) const { return pages_.pages_needed(seq, length(seq), length(seq) + n); }
  const KvPages& kv_pages() const { return pages_; }
  // Bytes of KV cache one page takes over all layers (keys and values).
  uint64_t page_bytes() const;

  int64_t n_ctx() const { return n_ctx_; }        // most positions one sequence can hold
  int64_t n_batch() const { return n_batch_; }
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
  // One forward step: rows `tokens` placed by `kv`; appends the logits of the rows listed in
  // logit_rows (ascending) to logits_out.
  void eval_batch(std::span<const int32_t> tokens, const KvBatch& kv, std::span<const int64_t> logit_rows,
                  std::vector<float>& logits_out);
  // Copies whole pages on every layer's cache (copy-on-write).
  void copy_pages(std::span<const PageCopy> copies);
  // Every layer's cache with the backend it lives on.
  std::vector<std::pair<Backend*, KvCacheLayer*>> layer_caches();

  const Model& model_;
  Placement placement_;
  int64_t n_ctx_;
  int64_t n_batch_;
  GgmlType kv_type_;
  KvPages pages_;
  std::map<Backend*, std::unique_ptr<BackendState>> states_;
  std::vector<float> handover_;  // host staging for the residual stream between backends
  LayerHook layer_hook_;
};

}  // namespace xelm
