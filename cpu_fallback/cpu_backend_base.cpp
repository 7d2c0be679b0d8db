// cpu_backend_base.cpp — host-memory activations, KV cache pools and copies for the CPU backends
// (shapes are checked by Backend's public ops).
#include "cpu_fallback/cpu_backend_base.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm::cpu {

CpuActivation::CpuActivation(int64_t rows, int64_t cols)
    : Activation(rows, cols), data(static_cast<size_t>(rows * cols)) {}

namespace {
// Anonymous zero-filled memory the OS commits page by page on first touch.
uint8_t* reserve(size_t bytes) {
  void* p = mmap(nullptr, std::max<size_t>(bytes, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) throw Error(fmt::format("out of memory: cannot reserve {} MiB for the KV cache", bytes >> 20));
  return static_cast<uint8_t*>(p);
}
}  // namespace

CpuKvCache::CpuKvCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type)
    : KvCacheLayer(n_ctx, n_head_kv, head_dim, type),
      width(n_head_kv * head_dim),
      row_size(row_bytes(type, width)),
      bytes_(row_size * static_cast<size_t>(n_ctx)),
      k_(reserve(bytes_)),
      v_(nullptr) {
  try {
    v_ = reserve(bytes_);
  } catch (...) {
    munmap(k_, std::max<size_t>(bytes_, 1));
    throw;
  }
}

CpuKvCache::~CpuKvCache() {
  munmap(k_, std::max<size_t>(bytes_, 1));
  munmap(v_, std::max<size_t>(bytes_, 1));
}

std::unique_ptr<Activation> CpuBackendBase::new_activation(int64_t rows, int64_t cols) {
  return std::make_unique<CpuActivation>(rows, cols);
}

std::unique_ptr<KvCacheLayer> CpuBackendBase::new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                                           GgmlType type) {
  return std::make_unique<CpuKvCache>(n_ctx, n_head_kv, head_dim, type);
}

void CpuBackendBase::do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t /*n*/, std::span<uint8_t> k,
                                     std::span<uint8_t> v) {
  std::memcpy(k.data(), kv(cache).k_row(row0), k.size());
  std::memcpy(v.data(), kv(cache).v_row(row0), v.size());
}

void CpuBackendBase::do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t /*n*/, std::span<const uint8_t> k,
                                      std::span<const uint8_t> v) {
  std::memcpy(kv(cache).k_row(row0), k.data(), k.size());
  std::memcpy(kv(cache).v_row(row0), v.data(), v.size());
}

void CpuBackendBase::do_write(Activation& dst, std::span<const float> src) {
  std::copy(src.begin(), src.end(), act(dst).data.begin());
}

void CpuBackendBase::do_read(const Activation& src, std::span<float> dst) {
  std::copy_n(act(src).data.begin(), dst.size(), dst.begin());
}

void CpuBackendBase::do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row,
                                  int64_t n) {
  std::memmove(act(dst).row(dst_row), act(src).row(src_row), static_cast<size_t>(n * src.cols()) * sizeof(float));
}

}  // namespace xelm::cpu
