// cpu_backend_base.h — what the CPU backends (the scalar reference and AVX2) share: fp32 activations in
// host memory and the transfers that are plain copies. Defined in cpu_backend_base.cpp, which is built
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

// Base class of the CPU backends: activations and transfers in host memory.
class CpuBackendBase : public Backend {
 public:
  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override;

 protected:
  void do_write(Activation& dst, std::span<const float> src) override;
  void do_read(const Activation& src, std::span<float> dst) override;
  void do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) override;
};

}  // namespace xelm::cpu
