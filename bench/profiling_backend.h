// profiling_backend.h — a Backend decorator for `xelm bench --profile` on the CPU backends: forwards
// every call to the real backend and accumulates wall time and call count per op name, leaving the
// backends untouched. The CPU backends are synchronous, so an op's wall time is its cost. (OpenCL
// reports device time per kernel by event profiling instead: OpenClBackend::take_kernel_times.)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "runtime/backend.h"

namespace xelm::bench {

struct OpTime {
  double total_ns = 0;
  uint64_t calls = 0;
};

class ProfilingBackend : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  const std::map<std::string, OpTime>& op_times() const { return op_times_; }
  void reset_times() { op_times_.clear(); }

  std::string name() const override { return inner_.name(); }
  bool supports(GgmlType weight_type) const override { return inner_.supports(weight_type); }
  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override { return inner_.prepare_weight(tensor); }
  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override { return inner_.new_activation(rows, cols); }
  std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type) override {
    return inner_.new_kv_cache(n_ctx, n_head_kv, head_dim, type);
  }
  void synchronize() override { inner_.synchronize(); }

 protected:
  // Each op forwards to the inner backend's public op (which checks it).
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
  // Fused ops are forwarded whole (timed under their own names), so the inner backend's fused
  // kernels run as they would unprofiled.
  void do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                      std::span<const Product> products) override;
  void do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm, const Weight* k_norm,
                        float eps, KvCacheLayer& cache, const KvBatch& batch, const AttentionShape& shape,
                        float freq_base) override;
  void do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) override;
  void do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate, const Weight& w_up,
                      Activation& h, Activation& up, Activation& out) override;

 private:
  template <typename Op>
  void timed(const char* op_name, Op&& op);

  Backend& inner_;
  std::map<std::string, OpTime> op_times_;
};

}  // namespace xelm::bench
