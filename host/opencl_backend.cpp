// opencl_backend.cpp — OpenClOptions → an OpenCL backend: the device choice (make_opencl_backend),
// the tuning, fast paths and build options, and the kernel programs it builds (the XELM_OPENCL_*
// variables are read in the front end, tools/xelm/environment.cpp, into the options). The ops live in the
// files backend_impl.h lists (table in docs/ARCHITECTURE.md).
#include "host/opencl_backend.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "host/backend_impl.h"
#include "runtime/error.h"

namespace xelm::opencl {
namespace {

// Program files, each built with common.cl prepended.
constexpr const char* kProgramFiles[] = {"matmul.cl",      "get_rows.cl", "norm.cl",      "rope.cl", "elementwise.cl",
                                         "kv_cache.cl",    "attention.cl", "gemm.cl",     "fused.cl"};

uint64_t max_alloc_cap(const DeviceInfo& info, uint64_t requested) {
  return requested != 0 ? std::min(info.max_alloc_bytes, requested) : info.max_alloc_bytes;
}

}  // namespace

OpenClBackendImpl::OpenClBackendImpl(const DiscoveredDevice& device, const OpenClOptions& options)
    : q_(device, max_alloc_cap(device.info, options.max_alloc_bytes), options.profile_kernels),
      tuning_(select_tuning(q_.info())),
      fast_(select_fast_paths(q_.info(), tuning_, options.fast_paths)),
      options_string_(opencl::build_options(tuning_, fast_)),
      gemm_(std::max(0, options.gemm_min_tokens.value_or(tuning_.gemm_min_tokens)), options.gemm_fault_for_testing),
      fused_(options.fused),
      cache_(q_.context(), q_.device(), q_.info(), options.cache_dir) {
  for (const char* file : kProgramFiles) q_.add_kernels(cache_.build(file, options_string_));
  spdlog::debug("OpenCL: {} on {}, options '{}', fast paths {}, GEMM from {} tokens", q_.info().name,
                q_.info().platform_name, options_string_, fast_.describe(), gemm_.min_tokens());
}

std::unique_ptr<OpenClBackend> make_opencl_backend(const OpenClOptions& options) {
  const DeviceList list = discover_devices();
  const DiscoveredDevice& device = select_device(list, options.device);
  try {
    return std::make_unique<OpenClBackendImpl>(device, options);
  } catch (const cl::Error& e) {
    throw Error(fmt::format("OpenCL setup on {} failed: {} ({})", device.info.name, e.what(), e.err()));
  }
}

}  // namespace xelm::opencl
