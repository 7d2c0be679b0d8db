// embedded_kernels.h — the OpenCL C sources of kernels/*.cl and kernels/*.h, compiled into the
// binary by the build (scripts/embed_kernels.cmake generates the definition).
#pragma once

#include <string_view>
#include <vector>

namespace xelm::opencl {

struct EmbeddedKernelSource {
  std::string_view file_name;  // "matmul.cl"
  std::string_view source;
};

// The programs, kernels/*.cl.
const std::vector<EmbeddedKernelSource>& embedded_kernel_sources();
// What host and kernels share, kernels/*.h (program_source puts them in front of every program).
const std::vector<EmbeddedKernelSource>& embedded_kernel_headers();

}  // namespace xelm::opencl
