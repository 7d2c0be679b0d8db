// program_cache.h — builds OpenCL programs from the embedded kernel sources (common.cl prepended)
// and caches the built binaries on disk, keyed by a hash of source + options + device name +
// driver version. A cache file that is truncated, corrupt or refused by the driver is ignored and
// rebuilt. Build failures throw xelm::Error carrying the build log.
#pragma once

#include <cstdint>
#include <string>

#include "host/cl_api.h"

#include "host/device_info.h"

namespace xelm::opencl {

// The full source of program `file_name` (a kernels/*.cl name): ggml's type numbers as
// `#define GGML_TYPE_<name> <number>` generated from GgmlType, the shared headers (kernels/*.h),
// common.cl, then the file.
std::string program_source(const std::string& file_name);

struct ProgramCacheStats {
  int hits = 0;       // programs loaded from a cached binary
  int builds = 0;     // programs compiled from source
  int rejected = 0;   // cache files ignored (corrupt, or refused by the driver)
};

class ProgramCache {
 public:
  // cache_dir "" disables the disk cache.
  ProgramCache(cl::Context context, cl::Device device, DeviceInfo info, std::string cache_dir);

  cl::Program build(const std::string& file_name, const std::string& options);
  // The cache file a program would use (exposed for tests).
  std::string cache_path(const std::string& file_name, const std::string& options) const;
  const ProgramCacheStats& stats() const { return stats_; }

 private:
  cl::Program build_from_source(const std::string& file_name, const std::string& source, const std::string& options);
  bool try_load(const std::string& path, const std::string& options, cl::Program& program);
  void store(const std::string& path, const cl::Program& program) const;

  cl::Context context_;
  cl::Device device_;
  DeviceInfo info_;
  std::string cache_dir_;
  ProgramCacheStats stats_;
};

}  // namespace xelm::opencl
