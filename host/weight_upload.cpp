// weight_upload.cpp — how the OpenCL backend holds a model's weights (prepare_weight): matrices keep
// their GGUF bytes, one buffer per row range of at most the max allocation, used in place
// (CL_MEM_USE_HOST_PTR, zero-copy) on unified memory when the mapping allows it and copied once
// otherwise; vectors (norm weights, biases) are dequantized to f32 buffers.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "host/backend_impl.h"
#include "runtime/error.h"

namespace xelm::opencl {
namespace {

constexpr uintptr_t kZeroCopyAlignment = 4096;

bool is_weight_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q4_0: case GgmlType::Q4_1:
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    case GgmlType::Q8_1: case GgmlType::Q8_K:
      break;
  }
  return false;
}

}  // namespace

bool OpenClBackendImpl::supports(GgmlType weight_type) const { return is_weight_type(weight_type); }

std::unique_ptr<Weight> OpenClBackendImpl::prepare_weight(const gguf::TensorInfo& tensor) {
  if (!is_weight_type(tensor.type)) {
    throw Error(fmt::format("tensor '{}': type {} is not supported by the OpenCL backend", tensor.name,
                            type_traits(tensor.type).name));
  }
  const cl::Context& context = q_.context();
  const uint64_t max_alloc = q_.max_alloc();
  OpenClCounters& counters = q_.counters();
  auto w = std::make_unique<ClWeight>(tensor);
  try {
    if (tensor.shape.size() == 1) {
      std::vector<float> values(static_cast<size_t>(tensor.shape[0]));
      dequantize_row(tensor.type, tensor.data, values.data(), tensor.shape[0]);
      w->dense = cl::Buffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(float),
                            values.data());
      counters.bytes_to_device += values.size() * sizeof(float);
      return w;
    }
    w->row_bytes = row_bytes(tensor.type, w->in_features());
    const int64_t rows = tensor.n_elements() / w->in_features();
    // In place on unified memory: the buffer maps the page-aligned region around the rows
    // (CL_MEM_USE_HOST_PTR needs a 4096-aligned pointer and a size that is a multiple of 64; whole
    // pages satisfy both and stay inside the file mapping), and kernels start at `offset`.
    const bool in_place = q_.info().unified_memory && max_alloc > 2 * kZeroCopyAlignment;
    const uint64_t piece_limit = in_place ? max_alloc - 2 * kZeroCopyAlignment : max_alloc;
    const int64_t rows_per_piece = static_cast<int64_t>(piece_limit / w->row_bytes);
    if (rows_per_piece < 1) {
      throw Error(fmt::format("tensor '{}': one row ({} bytes) exceeds the device's max allocation ({} bytes)",
                              tensor.name, w->row_bytes, max_alloc));
    }
    for (int64_t row0 = 0; row0 < rows; row0 += rows_per_piece) {
      const int64_t n = std::min(rows_per_piece, rows - row0);
      const size_t bytes = static_cast<size_t>(n) * w->row_bytes;
      const uint8_t* host = tensor.data + static_cast<size_t>(row0) * w->row_bytes;
      if (in_place) {
        const uintptr_t address = reinterpret_cast<uintptr_t>(host);
        const uintptr_t page = address & ~(kZeroCopyAlignment - 1);
        const size_t offset = address - page;
        const size_t span = (offset + bytes + kZeroCopyAlignment - 1) & ~(kZeroCopyAlignment - 1);
        try {
          w->pieces.push_back({cl::Buffer(context, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, span,
                                          reinterpret_cast<void*>(page)),
                               offset, row0, n});
          counters.weight_bytes_zero_copy += bytes;
          continue;
        } catch (const cl::Error& e) {
          spdlog::debug("tensor '{}': in-place buffer refused ({}), copying", tensor.name, e.err());
        }
      }
      w->pieces.push_back({cl::Buffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                      const_cast<uint8_t*>(host)),
                           0, row0, n});
      counters.bytes_to_device += bytes;
      counters.weight_bytes_copied += bytes;
    }
  } catch (const cl::Error& e) {
    throw Error(fmt::format("tensor '{}': OpenCL buffer creation failed on {}: {} ({})", tensor.name, q_.info().name,
                            e.what(), e.err()));
  }
  return w;
}

}  // namespace xelm::opencl
