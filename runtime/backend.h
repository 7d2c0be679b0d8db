// backend.h — the operations one forward pass needs, implemented once per executor
// (cpu_fallback/ref: scalar oracle; later cpu_fallback/avx2 and host/ OpenCL).
//
// The layer loop lives in runtime/transformer.cpp and only calls these. Activations are row-major fp32
// matrices [rows = tokens in the batch, cols = features] owned by the backend that computes on them;
// they cross to another backend only through host copies (the forward pass does that where the
// offload plan changes device). Weights are prepared once per backend (the CPU uses the mmapped
// bytes in place; a GPU backend uploads or maps them).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/gguf.h"

namespace xelm {

// A backend-owned fp32 matrix [rows, cols], allocated for up to capacity() rows so one buffer
// serves every batch size up to it (set_rows picks the rows in use).
class Activation {
 public:
  Activation(int64_t rows, int64_t cols) : rows_(rows), capacity_(rows), cols_(cols) {}
  virtual ~Activation() = default;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t capacity() const { return capacity_; }
  void set_rows(int64_t rows);  // 1 <= rows <= capacity()

 private:
  int64_t rows_, capacity_, cols_;
};

// A weight tensor prepared for a backend. For matrices, ggml order: shape [in, out] means `out` rows
// of `in` contiguous elements; a product computes y[t, o] = sum_i x[t, i] * W[o, i].
class Weight {
 public:
  explicit Weight(const gguf::TensorInfo& info) : info_(&info) {}
  virtual ~Weight() = default;
  const gguf::TensorInfo& info() const { return *info_; }
  GgmlType type() const { return info_->type; }
  int64_t in_features() const { return info_->shape[0]; }
  int64_t out_features() const { return info_->shape.size() > 1 ? info_->shape[1] : 1; }

 private:
  const gguf::TensorInfo* info_;
};

// Keys and values of one layer: a pool of n_ctx rows [n_ctx, n_head_kv, head_dim] each, stored as
// `type` (F16 by default; F32 and Q8_0 on request). The rows belong to no sequence: a KvBatch says
// which row holds which position of which sequence (pages of consecutive rows, runtime/kv_pages.h).
class KvCacheLayer {
 public:
  KvCacheLayer(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type)
      : n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_(type) {}
  virtual ~KvCacheLayer() = default;
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_head_kv() const { return n_head_kv_; }
  int64_t head_dim() const { return head_dim_; }
  GgmlType type() const { return type_; }

 private:
  int64_t n_ctx_, n_head_kv_, head_dim_;
  GgmlType type_;
};

// Where the rows of one forward step sit in their sequences and in the KV cache pool. Rows come in
// runs: consecutive rows of one sequence at consecutive positions (a prompt chunk, or one decoded
// token). A sequence's position p lives in cache row pages[table + p / page_size] * page_size +
// p % page_size of every layer's pool (its block table, as vLLM's paged attention); row t is written
// at slots[t] and attends to positions 0 .. positions[t] of its own sequence.
struct KvRun {
  int64_t row0;    // first batch row of the run
  int64_t n_rows;
  int64_t pos0;    // position of row0 in its sequence
  int64_t table;   // offset of the sequence's block table in KvBatch::pages
  int64_t n_pages; // pages of that table (covering at least pos0 + n_rows positions)
};

struct KvBatch {
  int64_t page_size = 1;           // a power of two (device kernels find a page by a shift, not a division)
  std::vector<KvRun> runs;
  std::vector<int32_t> pages;      // block tables of the runs' sequences, concatenated
  std::vector<int32_t> positions;  // [n] position of row t in its sequence
  std::vector<int32_t> slots;      // [n] cache row that row t's k and v are stored in
  std::vector<int32_t> run_of_row; // [n] index of row t's run
  // Tells batches apart (a device backend uploads a batch's tables once, not per layer): a new id
  // for every batch built. Do not change a batch after its first use.
  uint64_t id = 0;

  int64_t rows() const { return static_cast<int64_t>(positions.size()); }
  // The cache row of position `pos` of run r's sequence.
  int64_t row_of(const KvRun& run, int64_t pos) const {
    return static_cast<int64_t>(pages[static_cast<size_t>(run.table + pos / page_size)]) * page_size +
           pos % page_size;
  }
  // Appends a run of n rows at positions pos0.. of a sequence with this block table (fills
  // positions, slots and run_of_row); call finish() after the last run.
  void add_run(int64_t pos0, int64_t n, std::span<const int32_t> block_table);
  void finish();  // assigns a fresh id
  // One sequence stored contiguously from cache row 0 (position p in row p): rows at pos0 .. pos0+n-1,
  // in one page of the next power of two at least pos0 + n (only the rows up to pos0 + n - 1 are used).
  static KvBatch contiguous(int64_t pos0, int64_t n);
};

// Describes the attention geometry shared by rope/attention calls.
struct AttentionShape {
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
};

// One product of a fused op: out = weight · input (+ bias[o] when bias is set).
struct Product {
  const Weight* weight;
  const Weight* bias;  // may be null
  Activation* out;     // [rows, weight->out_features()]
};

// The ops a backend implements, behind one checked interface: each public op checks its shapes and
// ranges once, here, and then calls the backend's protected do_<op> (as ggml checks an op where it is
// built), so no backend repeats a check and none can forget one. A failed check is an "internal:"
// xelm::Error naming the op: it means a caller bug, never bad user input.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Whether this backend can run products with weights of this type (the planner asks before
  // placing a layer here).
  virtual bool supports(GgmlType weight_type) const = 0;

  virtual std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) = 0;
  virtual std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) = 0;
  // type: F32, F16 or Q8_0 (Q8_0 needs head_dim * n_head_kv to be a multiple of 32).
  virtual std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                                     GgmlType type) = 0;
  // Waits until all queued work is done (a no-op on synchronous backends).
  virtual void synchronize() {}

  // Host transfers of a whole activation (row-major, rows()*cols() floats).
  void write(Activation& dst, std::span<const float> src);
  void read(const Activation& src, std::span<float> dst);

  // dst rows [dst_row, dst_row + n) = src rows [src_row, src_row + n); same column count.
  void copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n);
  // out[t, :] = table row tokens[t] (dequantized). table: [n_embd, n_vocab]; out [tokens.size(), n_embd].
  void get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out);
  // out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight, for every group of weight.size()
  // columns (a whole row for the block norms, each head for qwen3's q/k norm). out may alias x.
  void rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out);
  // y[t, o] = sum_i x[t, i] * W[o, i] (+ bias[o] when given). x [n, in], y [n, out].
  void matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias);
  // Rotary embedding, NEOX pairing (i, i + head_dim/2), in place, for the first `n_heads` heads of each
  // row; row t is at position batch.positions[t]; angles from rope_inv_freq (runtime/rope.h).
  void rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, float freq_base);
  // Writes row t of k and v ([n, n_head_kv * head_dim]) into cache row batch.slots[t].
  void store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch);
  // Causal attention of q ([n, n_head*head_dim]): row t attends to positions 0 .. batch.positions[t] of
  // its own sequence (through its run's block table); softmax scaled by 1/sqrt(head_dim); GQA: query head
  // h reads kv head h / (n_head/n_head_kv). out [n, n_head*head_dim].
  void attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch, const AttentionShape& shape,
                 Activation& out);
  // One sequence stored contiguously from cache row 0, rows at positions pos0 .. pos0+n-1 (the single
  // sequence of the op tests and microbenchmarks): the ops above with KvBatch::contiguous.
  void rope(Activation& x, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) {
    rope(x, n_heads, head_dim, KvBatch::contiguous(pos0, x.rows()), freq_base);
  }
  void store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, int64_t pos0) {
    store_kv(cache, k, v, KvBatch::contiguous(pos0, k.rows()));
  }
  void attention(const Activation& q, const KvCacheLayer& cache, int64_t pos0, const AttentionShape& shape,
                 Activation& out) {
    attention(q, cache, KvBatch::contiguous(pos0, q.rows()), shape, out);
  }
  // Raw cache rows [row0, row0 + n) of keys and values, n * row_bytes(type, n_head_kv * head_dim) bytes
  // each, to and from host memory: what copy-on-write, span eviction and snapshots move.
  void read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k, std::span<uint8_t> v);
  void write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                     std::span<const uint8_t> v);
  // out = silu(gate) * up, element-wise. out may alias gate.
  void swiglu(const Activation& gate, const Activation& up, Activation& out);
  // x += y, element-wise.
  void add(Activation& x, const Activation& y);

  // Fused ops: what the forward pass calls. Each default (do_<op> in Backend) runs the unfused ops
  // above in the order the comment gives, so a backend overrides only what it can do in fewer
  // launches (the OpenCL backend for decoded tokens); an override must agree with its default within
  // the ops' tolerances.

  // h = rms_norm(x) * norm (whole rows); then products[i].out = products[i].weight · h (+ bias) for 1 to 3
  // products of one input (q, k, v of an attention block, or the output head). h is scratch
  // [rows, cols of x]: an override may leave it unwritten.
  void norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                   std::span<const Product> products);
  // rms_norm(q) and rms_norm(k) per head (when q_norm / k_norm are given, qwen3), rope(q) and rope(k),
  // then store_kv(cache, k, v, batch). q and k are updated in place. q [n, n_head*head_dim], k and v
  // [n, n_head_kv*head_dim].
  void rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                     const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                     const AttentionShape& shape, float freq_base);
  void rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                     const Weight* k_norm, float eps, KvCacheLayer& cache, int64_t pos0,
                     const AttentionShape& shape, float freq_base) {
    rope_store_kv(q, k, v, q_norm, k_norm, eps, cache, KvBatch::contiguous(pos0, q.rows()), shape, freq_base);
  }
  // x += w · a (the residual add into an output product): matmul(w, a, scratch), add(x, scratch).
  // a [n, in], x and scratch [n, out]; scratch may be left unwritten by an override.
  void matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch);
  // out = silu(w_gate · h) * (w_up · h), h = rms_norm(x) * norm: rms_norm, two matmuls, swiglu.
  // h [rows, cols of x] and up [rows, out_features] are scratch an override may leave unwritten.
  void norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                   const Weight& w_up, Activation& h, Activation& up, Activation& out);

 protected:
  // The implementations: called only by the public op of the same name, after its checks passed.
  virtual void do_write(Activation& dst, std::span<const float> src) = 0;
  virtual void do_read(const Activation& src, std::span<float> dst) = 0;
  virtual void do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row,
                            int64_t n) = 0;
  virtual void do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) = 0;
  virtual void do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) = 0;
  virtual void do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) = 0;
  virtual void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch,
                       float freq_base) = 0;
  virtual void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v,
                           const KvBatch& batch) = 0;
  virtual void do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch,
                            const AttentionShape& shape, Activation& out) = 0;
  virtual void do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k,
                               std::span<uint8_t> v) = 0;
  virtual void do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                                std::span<const uint8_t> v) = 0;
  virtual void do_swiglu(const Activation& gate, const Activation& up, Activation& out) = 0;
  virtual void do_add(Activation& x, const Activation& y) = 0;
  // The fused ops' defaults: the unfused public ops in the documented order.
  virtual void do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                              std::span<const Product> products);
  virtual void do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                                const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                                const AttentionShape& shape, float freq_base);
  virtual void do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch);
  virtual void do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                              const Weight& w_up, Activation& h, Activation& up, Activation& out);
};

}  // namespace xelm
