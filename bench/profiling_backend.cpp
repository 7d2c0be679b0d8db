// profiling_backend.cpp — per-op timing around the forwarded Backend calls.
#include "bench/profiling_backend.h"

#include <chrono>

namespace xelm::bench {

template <typename Op>
void ProfilingBackend::timed(const char* op_name, Op&& op) {
  const auto t0 = std::chrono::steady_clock::now();
  op();
  OpTime& entry = op_times_[op_name];
  entry.total_ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  ++entry.calls;
}

void ProfilingBackend::do_write(Activation& dst, std::span<const float> src) {
  timed("write", [&] { inner_.write(dst, src); });
}
void ProfilingBackend::do_read(const Activation& src, std::span<float> dst) {
  timed("read", [&] { inner_.read(src, dst); });
}
void ProfilingBackend::do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) {
  timed("copy_rows", [&] { inner_.copy_rows(src, src_row, dst, dst_row, n); });
}
void ProfilingBackend::do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) {
  timed("get_rows", [&] { inner_.get_rows(table, tokens, out); });
}
void ProfilingBackend::do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) {
  timed("rms_norm", [&] { inner_.rms_norm(x, weight, eps, out); });
}
void ProfilingBackend::do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) {
  timed("matmul", [&] { inner_.matmul(w, x, y, bias); });
}
void ProfilingBackend::do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch,
                               float freq_base) {
  timed("rope", [&] { inner_.rope(x, n_heads, head_dim, batch, freq_base); });
}
void ProfilingBackend::do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v,
                                   const KvBatch& batch) {
  timed("store_kv", [&] { inner_.store_kv(cache, k, v, batch); });
}
void ProfilingBackend::do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch,
                                    const AttentionShape& shape, Activation& out) {
  timed("attention", [&] { inner_.attention(q, cache, batch, shape, out); });
}
void ProfilingBackend::do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k,
                                       std::span<uint8_t> v) {
  timed("read_kv_rows", [&] { inner_.read_kv_rows(cache, row0, n, k, v); });
}
void ProfilingBackend::do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                                        std::span<const uint8_t> v) {
  timed("write_kv_rows", [&] { inner_.write_kv_rows(cache, row0, n, k, v); });
}
void ProfilingBackend::do_swiglu(const Activation& gate, const Activation& up, Activation& out) {
  timed("swiglu", [&] { inner_.swiglu(gate, up, out); });
}
void ProfilingBackend::do_add(Activation& x, const Activation& y) {
  timed("add", [&] { inner_.add(x, y); });
}
void ProfilingBackend::do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                                      std::span<const Product> products) {
  timed("norm_matmul", [&] { inner_.norm_matmul(x, norm, eps, h, products); });
}
void ProfilingBackend::do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                                        const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                                        const AttentionShape& shape, float freq_base) {
  timed("rope_store_kv", [&] { inner_.rope_store_kv(q, k, v, q_norm, k_norm, eps, cache, batch, shape, freq_base); });
}
void ProfilingBackend::do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) {
  timed("matmul_add", [&] { inner_.matmul_add(w, a, x, scratch); });
}
void ProfilingBackend::do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                                      const Weight& w_up, Activation& h, Activation& up, Activation& out) {
  timed("norm_swiglu", [&] { inner_.norm_swiglu(x, norm, eps, w_gate, w_up, h, up, out); });
}

}  // namespace xelm::bench
