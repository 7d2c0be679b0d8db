// host_backend.cpp — host-memory activations and copies for the CPU backends.
#include "cpu_fallback/host_backend.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace xelm::cpu {

HostActivation::HostActivation(int64_t rows, int64_t cols)
    : Activation(rows, cols), data(static_cast<size_t>(rows * cols)) {}

std::unique_ptr<Activation> HostBackend::new_activation(int64_t rows, int64_t cols) {
  return std::make_unique<HostActivation>(rows, cols);
}

void HostBackend::write(Activation& dst, std::span<const float> src) {
  if (static_cast<int64_t>(src.size()) != dst.rows() * dst.cols()) throw Error("internal: write size mismatch");
  std::copy(src.begin(), src.end(), act(dst).data.begin());
}

void HostBackend::read(const Activation& src, std::span<float> dst) {
  if (static_cast<int64_t>(dst.size()) != src.rows() * src.cols()) throw Error("internal: read size mismatch");
  std::copy_n(act(src).data.begin(), dst.size(), dst.begin());
}

void HostBackend::copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) {
  if (src.cols() != dst.cols() || src_row + n > src.rows() || dst_row + n > dst.rows()) {
    throw Error("internal: copy_rows out of range");
  }
  std::memmove(act(dst).row(dst_row), act(src).row(src_row),
               static_cast<size_t>(n * src.cols()) * sizeof(float));
}

}  // namespace xelm::cpu
