// backend_impl.h — OpenClBackendImpl, the OpenCL Backend, declared once for the files that define
// its parts (see the host/ table in docs/ARCHITECTURE.md):
//   opencl_backend.cpp  options and environment → a backend (constructor, make_opencl_backend)
//   weight_upload.cpp   prepare_weight: zero-copy and row-split weight buffers
//   ops.cpp             the plain ops (one kernel each), activations, KV caches
//   fused_ops.cpp       the fused decode ops (kernels/fused.cl)
//   gemm_path.cpp       the prefill GEMM path behind matmul (GemmPath)
//   cl_queue.cpp        the queue every command goes through (ClQueue)
//   kernel_profiler.cpp device time per kernel (KernelProfiler)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "host/build_options.h"
#include "host/cl_queue.h"
#include "host/gemm_path.h"
#include "host/opencl_backend.h"
#include "host/program_cache.h"

namespace xelm::opencl {

class OpenClBackendImpl final : public OpenClBackend {
 public:
  OpenClBackendImpl(const DiscoveredDevice& device, const OpenClOptions& options);

  std::string name() const override { return "opencl:" + q_.info().name; }
  bool supports(GgmlType weight_type) const override;
  const DeviceInfo& device_info() const override { return q_.info(); }
  const OpenClCounters& counters() const override { return q_.counters(); }
  void reset_counters() override { q_.counters() = {}; }
  std::map<std::string, KernelTime> take_kernel_times() override { return q_.profiler().take(); }
  std::string build_options() const override { return options_string_; }
  const ProgramCacheStats& program_cache_stats() const override { return cache_.stats(); }
  const FastPaths& fast_paths() const override { return fast_; }
  int gemm_min_tokens() const override { return gemm_.min_tokens(); }

  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override;
  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override;
  std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                             GgmlType type) override;
  void synchronize() override;

 protected:
  // ops.cpp
  void do_write(Activation& dst, std::span<const float> src) override;
  void do_read(const Activation& src, std::span<float> dst) override;
  void do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) override;
  void do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) override;
  void do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) override;
  void do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) override;
  void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, float freq_base) override;
  void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch) override;
  void do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch, const AttentionShape& shape,
                    Activation& out) override;
  void do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k,
                       std::span<uint8_t> v) override;
  void do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                        std::span<const uint8_t> v) override;
  void do_swiglu(const Activation& gate, const Activation& up, Activation& out) override;
  void do_add(Activation& x, const Activation& y) override;
  // fused_ops.cpp
  void do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                      std::span<const Product> products) override;
  void do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                        const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                        const AttentionShape& shape, float freq_base) override;
  void do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) override;
  void do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                      const Weight& w_up, Activation& h, Activation& up, Activation& out) override;

 private:
  int matmul_wg() const { return tuning_.matmul_wg; }
  int matmul_tokens() const { return tuning_.matmul_tokens; }
  int norm_wg() const { return tuning_.norm_wg; }
  int attn_wg() const { return tuning_.attn_wg; }

  // ops.cpp: the int8 fast path's activations, x quantized per 32-element block into act_q_ (int8)
  // and act_d_ (scales).
  void quantize_activations(const Activation& x);
  // ops.cpp: the RoPE frequencies every backend uses (runtime/rope.h), uploaded once per (head_dim, base).
  const cl::Buffer& inv_freq(int64_t head_dim, float freq_base);
  // ops.cpp: the batch's positions, slots and block tables on the device (kernel_abi.h's KV_BATCH_*
  // layout), uploaded only when the batch is not the one uploaded last (the forward pass passes one
  // batch to every layer of a step).
  const cl::Buffer& kv_batch(const KvBatch& batch);
  // fused_ops.cpp: whether kernel_matvec_f32 can compute these products of x.
  bool fusable(const Activation& x, std::span<const Product> products) const;
  // fused_ops.cpp: one kernel_matvec_f32 launch.
  void launch_matvec(const Activation& x, const Weight* norm, float eps, bool accumulate,
                     std::span<const Product> products);

  ClQueue q_;  // the device, its queue and its kernels
  KernelTuning tuning_;
  FastPaths fast_;
  std::string options_string_;
  GemmPath gemm_;
  bool fused_;  // Backend's fused ops through kernels/fused.cl
  ProgramCache cache_;
  GrowingBuffer token_buffer_;        // token ids of get_rows
  GrowingBuffer part_acc_, part_ml_;  // split-attention partials
  GrowingBuffer act_q_, act_d_;       // int8 activations and their block scales
  GrowingBuffer kv_batch_;            // [KV_BATCH_INTS(rows, pages)] int: the batch uploaded last
  uint64_t kv_batch_id_ = 0;          // its KvBatch::id (0: none, or a batch without an id)
  std::map<std::pair<int64_t, float>, cl::Buffer> inv_freq_;
};

}  // namespace xelm::opencl
