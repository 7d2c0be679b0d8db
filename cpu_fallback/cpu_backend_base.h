// cpu_backend_base.h — what the CPU backends (the scalar reference and AVX2) share: fp32 activations in
// host memory, the KV cache pool's storage, and the transfers that are plain copies. Defined in cpu_backend_base.cpp, which is built
// without AVX flags so the reference backend stays runnable on any x86-64.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"

namespace xelm::cpu {

class CpuActivation final : public Activation {
 public:
  CpuActivation(int64_t rows, int64_t cols);
  float* row(int64_t r) { return data.data() + r * cols(); }
  const float* row(int64_t r) const { return data.data() + r * cols(); }
  std::vector<float> data;  // [capacity, cols]
};

// The host memory behind an Activation of a CPU backend.
inline CpuActivation& act(Activation& a) { return static_cast<CpuActivation&>(a); }
inline const CpuActivation& act(const Activation& a) { return static_cast<const CpuActivation&>(a); }

// A layer's KV cache pool in host memory: rows of n_head_kv * head_dim values stored as type(). The
// pool is reserved as anonymous virtual memory and the OS commits a page when it is first written, so
// the memory taken grows with the positions sequences use, not with the pool's size (-c).
class CpuKvCache final : public KvCacheLayer {
 public:
  CpuKvCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type);
  ~CpuKvCache() override;
  CpuKvCache(const CpuKvCache&) = delete;
  CpuKvCache& operator=(const CpuKvCache&) = delete;
  uint8_t* k_row(int64_t r) { return k_ + static_cast<size_t>(r) * row_size; }
  uint8_t* v_row(int64_t r) { return v_ + static_cast<size_t>(r) * row_size; }
  const uint8_t* k_row(int64_t r) const { return k_ + static_cast<size_t>(r) * row_size; }
  const uint8_t* v_row(int64_t r) const { return v_ + static_cast<size_t>(r) * row_size; }
  const int64_t width;    // n_head_kv * head_dim
  const size_t row_size;  // bytes of one row of type()

 private:
  size_t bytes_;   // of each of k and v
  uint8_t* k_;     // [n_ctx][row_size]
  uint8_t* v_;
};

inline CpuKvCache& kv(KvCacheLayer& c) { return static_cast<CpuKvCache&>(c); }
inline const CpuKvCache& kv(const KvCacheLayer& c) { return static_cast<const CpuKvCache&>(c); }

// Base class of the CPU backends: activations, KV cache pools and transfers in host memory.
class CpuBackendBase : public Backend {
 public:
  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override;
  std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                             GgmlType type) override;

 protected:
  void do_write(Activation& dst, std::span<const float> src) override;
  void do_read(const Activation& src, std::span<float> dst) override;
  void do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) override;
  void do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k,
                       std::span<uint8_t> v) override;
  void do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                        std::span<const uint8_t> v) override;
};

}  // namespace xelm::cpu
