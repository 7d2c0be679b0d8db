// device_info.h — what xelm needs to know about an OpenCL device, queried once, and device
// discovery over every platform (a platform or device that fails to initialise is skipped with
// the reason recorded, never an error). The only OpenCL-free part is DeviceInfo itself, so the
// build options can be computed from a recorded fixture without a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/cl_api.h"

namespace xelm::opencl {

enum class DeviceType { Gpu, Cpu, Accelerator, Other };

struct DeviceInfo {
  std::string platform_name, platform_vendor, platform_version;
  std::string name, vendor, driver_version, device_version, opencl_c_version;
  uint32_t vendor_id = 0;
  DeviceType type = DeviceType::Other;
  uint32_t compute_units = 0;
  uint32_t max_clock_mhz = 0;
  uint64_t global_memory_bytes = 0;
  uint64_t local_memory_bytes = 0;
  uint64_t max_alloc_bytes = 0;
  uint64_t max_work_group_size = 0;
  bool unified_memory = false;  // host-unified memory, an integrated GPU or a CPU device
  bool fp16 = false;            // cl_khr_fp16
  bool fp64 = false;            // cl_khr_fp64
  bool subgroups = false;       // cl_khr_subgroups or cl_intel_subgroups
  bool intel_subgroups = false; // cl_intel_subgroups
  bool required_subgroup_size = false;  // cl_intel_required_subgroup_size
  std::vector<uint32_t> subgroup_sizes;  // CL_DEVICE_SUB_GROUP_SIZES_INTEL where queryable
  bool integer_dot_product = false;     // cl_khr_integer_dot_product (DP4A)
  uint32_t intel_ip_version = 0;        // CL_DEVICE_IP_VERSION_INTEL (cl_intel_device_attribute_query), 0 if absent
  std::vector<std::string> extensions;

  bool has_extension(const std::string& extension) const;
  bool is_intel() const;
  const char* type_name() const;
};

// Queries every field from a device.
DeviceInfo query_device_info(const cl::Platform& platform, const cl::Device& device);

struct DiscoveredDevice {
  cl::Platform platform;
  cl::Device device;
  DeviceInfo info;
};

struct SkippedEntry {
  std::string what;    // "platform 1 (Intel(R) OpenCL Graphics)" or "no OpenCL platform"
  std::string reason;  // the OpenCL error or exception text
};

struct DeviceList {
  std::vector<DiscoveredDevice> devices;  // in platform order, then device order
  std::vector<SkippedEntry> skipped;
};

DeviceList discover_devices();

// Picks a device: `selector` empty → an Intel GPU if present, else any GPU, else the first device;
// all digits → that index into list.devices; otherwise the first device whose name or platform
// name contains it (case-insensitive). Throws xelm::Error when nothing matches or the list is empty.
const DiscoveredDevice& select_device(const DeviceList& list, const std::string& selector);

}  // namespace xelm::opencl
