// cpu_backend_base.cpp — host-memory activations and copies for the CPU backends (shapes are checked
// by Backend's public ops).
#include "cpu_fallback/cpu_backend_base.h"

#include <algorithm>
#include <cstring>

namespace xelm::cpu {

CpuActivation::CpuActivation(int64_t rows, int64_t cols)
    : Activation(rows, cols), data(static_cast<size_t>(rows * cols)) {}

std::unique_ptr<Activation> CpuBackendBase::new_activation(int64_t rows, int64_t cols) {
  return std::make_unique<CpuActivation>(rows, cols);
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
