// opencl_backend.h — the OpenCL implementation of Backend: weights uploaded once per tensor
// (zero-copy on unified memory where the mapping allows it, split into row ranges when a tensor
// exceeds the device's max allocation), activations and the KV cache in device buffers, one
// in-order queue with no synchronisation except synchronize() and the blocking read().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "host/build_options.h"
#include "host/device_info.h"
#include "host/program_cache.h"
#include "runtime/backend.h"

namespace xelm::opencl {

// The xelm CLI fills these from its flags and the XELM_OPENCL_* variables (tools/xelm/environment.h);
// the backend reads no environment variable.
struct OpenClOptions {
  std::string device;     // --device: index or name substring; "" = the default choice
  std::string cache_dir;  // kernel binary cache directory; "" = off
  uint64_t max_alloc_bytes = 0;  // cap on one buffer (0 = the device's limit)
  std::string fast_paths = "auto";  // kernel fast paths requested (select_fast_paths)
  // Activation rows from which matmul takes the prefill GEMM path (dequantize + CLBlast GEMM);
  // nullopt = the tuning table's; 0 = never.
  std::optional<int> gemm_min_tokens;
  bool gemm_fault_for_testing = false;  // every CLBlast call reports failure (tests of the fallback)
  // The fused decode kernels (kernels/fused.cl) behind Backend's fused ops; off: the unfused ops, one
  // launch per op, for A/B comparisons.
  bool fused = true;
  // Device time per kernel by event profiling (CL_QUEUE_PROFILING_ENABLE; take_kernel_times()). Adds no
  // synchronization; off by default since some drivers slow down profiled queues.
  bool profile_kernels = false;
};

// Device time of one kernel name summed over its launches (profile_kernels).
struct KernelTime {
  uint64_t total_ns = 0;  // sum of CL_PROFILING_COMMAND_END - CL_PROFILING_COMMAND_START
  uint64_t calls = 0;
};

// Work the backend did since the last reset_counters().
struct OpenClCounters {
  uint64_t kernel_launches = 0;    // clEnqueueNDRangeKernel calls
  uint64_t buffer_copies = 0;      // device-side buffer copies (copy_rows)
  uint64_t blocking_syncs = 0;     // clFinish / blocking reads
  uint64_t bytes_to_device = 0;    // host → device transfers (weights copied, writes, token ids)
  uint64_t bytes_from_device = 0;  // device → host transfers (reads)
  uint64_t weight_bytes_zero_copy = 0;  // weight bytes used in place (CL_MEM_USE_HOST_PTR)
  uint64_t weight_bytes_copied = 0;     // weight bytes copied into device buffers (0 on unified memory)
  uint64_t gemm_calls = 0;              // CLBlast GEMM calls (prefill GEMM path)
};

class OpenClBackend : public Backend {
 public:
  virtual const DeviceInfo& device_info() const = 0;
  virtual const OpenClCounters& counters() const = 0;
  virtual void reset_counters() = 0;
  // Waits for the queue and returns the kernel times since the last call, by kernel name (CLBlast's
  // GEMM as "clblast_sgemm"); empty unless OpenClOptions::profile_kernels.
  virtual std::map<std::string, KernelTime> take_kernel_times() = 0;
  virtual std::string build_options() const = 0;
  virtual const ProgramCacheStats& program_cache_stats() const = 0;
  virtual const FastPaths& fast_paths() const = 0;
  // The prefill GEMM threshold in force (0: off, or CLBlast failed on this device).
  virtual int gemm_min_tokens() const = 0;
};

// Throws xelm::Error with a one-line message when no platform/device is usable or a kernel fails to build.
std::unique_ptr<OpenClBackend> make_opencl_backend(const OpenClOptions& options);

}  // namespace xelm::opencl
