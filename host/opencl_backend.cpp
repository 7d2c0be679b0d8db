// opencl_backend.cpp — options and environment → an OpenCL backend: the device choice
// (make_opencl_backend), the OpenClOptions and XELM_OPENCL_* variables that configure it, the
// tuning, fast paths and build options, and the kernel programs it builds. The ops live in the
// files backend_impl.h lists (table in docs/ARCHITECTURE.md).
#include "host/opencl_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "host/backend_impl.h"
#include "runtime/error.h"

namespace xelm::opencl {
namespace {

// Program files, each built with common.cl prepended.
constexpr const char* kProgramFiles[] = {"matmul.cl",      "get_rows.cl", "norm.cl",      "rope.cl", "elementwise.cl",
                                         "kv_cache.cl",    "attention.cl", "gemm.cl",     "fused.cl"};

bool env_is(const char* name, const char* value) {
  const char* env = std::getenv(name);
  return env != nullptr && std::strcmp(env, value) == 0;
}

uint64_t max_alloc_cap(const DeviceInfo& info, uint64_t requested) {
  uint64_t cap = info.max_alloc_bytes;
  if (const char* env = std::getenv("XELM_OPENCL_MAX_ALLOC_MB"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (end == env || *end != '\0' || mb == 0) {
      throw Error(fmt::format("XELM_OPENCL_MAX_ALLOC_MB='{}' is not a positive number of MiB", env));
    }
    cap = std::min<uint64_t>(cap, mb * kMiB);
  }
  if (requested != 0) cap = std::min(cap, requested);
  return cap;
}

std::string option_or_env(const std::optional<std::string>& option, const char* env, const char* fallback) {
  if (option) return *option;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? value : fallback;
}

int gemm_threshold(const std::optional<int>& option, int table) {
  if (option) return std::max(0, *option);
  if (const char* env = std::getenv("XELM_OPENCL_GEMM_MIN_TOKENS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || n < 0 || n > 1000000) {
      throw Error(fmt::format("XELM_OPENCL_GEMM_MIN_TOKENS='{}' is not a token count (0 = off)", env));
    }
    return static_cast<int>(n);
  }
  return table;
}

}  // namespace

OpenClBackendImpl::OpenClBackendImpl(const DiscoveredDevice& device, const OpenClOptions& options)
    : q_(device, max_alloc_cap(device.info, options.max_alloc_bytes), options.profile_kernels),
      tuning_(select_tuning(q_.info())),
      fast_(select_fast_paths(q_.info(), tuning_, option_or_env(options.fast_paths, "XELM_OPENCL_FAST_PATHS", "auto"))),
      options_string_(opencl::build_options(tuning_, fast_)),
      gemm_(gemm_threshold(options.gemm_min_tokens, tuning_.gemm_min_tokens), options.gemm_fault_for_testing),
      fused_(options.fused && !env_is("XELM_OPENCL_FUSED", "0")),
      cache_(q_.context(), q_.device(), q_.info(), options.cache_dir.value_or(default_kernel_cache_dir())) {
  for (const char* file : kProgramFiles) q_.add_kernels(cache_.build(file, options_string_));
  spdlog::debug("OpenCL: {} on {}, options '{}', fast paths {}, GEMM from {} tokens", q_.info().name,
                q_.info().platform_name, options_string_, fast_.describe(), gemm_.min_tokens());
}

std::unique_ptr<OpenClBackend> make_opencl_backend(const OpenClOptions& options) {
  const DeviceList list = discover_devices();
  const char* env_device = std::getenv("XELM_OPENCL_DEVICE");
  const std::string selector = !options.device.empty() || env_device == nullptr ? options.device : env_device;
  const DiscoveredDevice& device = select_device(list, selector);
  try {
    return std::make_unique<OpenClBackendImpl>(device, options);
  } catch (const cl::Error& e) {
    throw Error(fmt::format("OpenCL setup on {} failed: {} ({})", device.info.name, e.what(), e.err()));
  }
}

}  // namespace xelm::opencl
