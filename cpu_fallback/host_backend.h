// host_backend.h — what the CPU backends (the scalar reference and AVX2) share: fp32 activations in
// host memory and the transfers that are plain copies. Defined in host_backend.cpp, which is built
// without AVX flags so the reference backend stays runnable on any x86-64.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/backend.h"

namespace xelm::cpu {

class HostActivation final : public Activation {
 public:
  HostActivation(int64_t rows, int64_t cols);
  float* row(int64_t r) { return data.data() + r * cols(); }
  const float* row(int64_t r) const { return data.data() + r * cols(); }
  std::vector<float> data;  // [capacity, cols]
};

// The host activation behind an Activation of a CPU backend.
inline HostActivation& act(Activation& a) { return static_cast<HostActivation&>(a); }
inline const HostActivation& act(const Activation& a) { return static_cast<const HostActivation&>(a); }

class HostBackend : public Backend {
 public:
  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override;
  void write(Activation& dst, std::span<const float> src) override;
  void read(const Activation& src, std::span<float> dst) override;
  void copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) override;
};

}  // namespace xelm::cpu
