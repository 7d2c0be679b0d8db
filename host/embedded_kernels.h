// embedded_kernels.h — the OpenCL C sources of kernels/*.cl, compiled into the binary by the build
// (scripts/embed_kernels.cmake generates the definition).
#pragma once

#include <string_view>
#include <vector>

namespace xelm::opencl {

struct EmbeddedKernelSource {
  std::string_view file_name;  // "matmul.cl"
  std::string_view source;
};

const std::vector<EmbeddedKernelSource>& embedded_kernel_sources();

}  // namespace xelm::opencl
