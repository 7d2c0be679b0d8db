// device_info.cpp — DeviceInfo queries and device discovery/selection.
#include "host/device_info.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm::opencl {
namespace {

constexpr uint32_t kIntelVendorId = 0x8086;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\0' || std::isspace(static_cast<unsigned char>(s.back())))) s.pop_back();
  return s;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string cl_error_text(const cl::Error& e) { return fmt::format("{} (OpenCL error {})", e.what(), e.err()); }

}  // namespace

bool DeviceInfo::has_extension(const std::string& extension) const {
  return std::find(extensions.begin(), extensions.end(), extension) != extensions.end();
}

bool DeviceInfo::is_intel() const {
  return vendor_id == kIntelVendorId || lowercase(vendor).find("intel") != std::string::npos;
}

const char* DeviceInfo::type_name() const {
  switch (type) {
    case DeviceType::Gpu: return "GPU";
    case DeviceType::Cpu: return "CPU";
    case DeviceType::Accelerator: return "accelerator";
    case DeviceType::Other: break;
  }
  return "other";
}

DeviceInfo query_device_info(const cl::Platform& platform, const cl::Device& device) {
  DeviceInfo d;
  d.platform_name = trimmed(platform.getInfo<CL_PLATFORM_NAME>());
  d.platform_vendor = trimmed(platform.getInfo<CL_PLATFORM_VENDOR>());
  d.platform_version = trimmed(platform.getInfo<CL_PLATFORM_VERSION>());
  d.name = trimmed(device.getInfo<CL_DEVICE_NAME>());
  d.vendor = trimmed(device.getInfo<CL_DEVICE_VENDOR>());
  d.vendor_id = device.getInfo<CL_DEVICE_VENDOR_ID>();
  d.driver_version = trimmed(device.getInfo<CL_DRIVER_VERSION>());
  d.device_version = trimmed(device.getInfo<CL_DEVICE_VERSION>());
  d.opencl_c_version = trimmed(device.getInfo<CL_DEVICE_OPENCL_C_VERSION>());
  const cl_device_type type = device.getInfo<CL_DEVICE_TYPE>();
  d.type = (type & CL_DEVICE_TYPE_GPU)           ? DeviceType::Gpu
           : (type & CL_DEVICE_TYPE_CPU)         ? DeviceType::Cpu
           : (type & CL_DEVICE_TYPE_ACCELERATOR) ? DeviceType::Accelerator
                                                 : DeviceType::Other;
  d.compute_units = device.getInfo<CL_DEVICE_MAX_COMPUTE_UNITS>();
  d.max_clock_mhz = device.getInfo<CL_DEVICE_MAX_CLOCK_FREQUENCY>();
  d.global_memory_bytes = device.getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
  d.local_memory_bytes = device.getInfo<CL_DEVICE_LOCAL_MEM_SIZE>();
  d.max_alloc_bytes = device.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
  d.max_work_group_size = device.getInfo<CL_DEVICE_MAX_WORK_GROUP_SIZE>();
  std::istringstream words(device.getInfo<CL_DEVICE_EXTENSIONS>());
  for (std::string ext; words >> ext;) d.extensions.push_back(ext);
  std::sort(d.extensions.begin(), d.extensions.end());

  // CL_DEVICE_HOST_UNIFIED_MEMORY is deprecated in OpenCL 2.0+ and may be absent; an integrated
  // GPU or a CPU device shares host memory either way.
  cl_bool host_unified = CL_FALSE;
  if (clGetDeviceInfo(device(), CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(host_unified), &host_unified, nullptr) !=
      CL_SUCCESS) {
    host_unified = CL_FALSE;
  }
  d.unified_memory = host_unified == CL_TRUE || d.type == DeviceType::Cpu;

  d.fp16 = d.has_extension("cl_khr_fp16");
  d.fp64 = d.has_extension("cl_khr_fp64");
  d.intel_subgroups = d.has_extension("cl_intel_subgroups");
  d.subgroups = d.intel_subgroups || d.has_extension("cl_khr_subgroups");
  d.required_subgroup_size = d.has_extension("cl_intel_required_subgroup_size");
  if (d.required_subgroup_size) {
    size_t bytes = 0;
    if (clGetDeviceInfo(device(), CL_DEVICE_SUB_GROUP_SIZES_INTEL, 0, nullptr, &bytes) == CL_SUCCESS && bytes > 0) {
      std::vector<size_t> sizes(bytes / sizeof(size_t));
      if (clGetDeviceInfo(device(), CL_DEVICE_SUB_GROUP_SIZES_INTEL, bytes, sizes.data(), nullptr) == CL_SUCCESS) {
        for (size_t s : sizes) d.subgroup_sizes.push_back(static_cast<uint32_t>(s));
      }
    }
  }
  d.integer_dot_product = d.has_extension("cl_khr_integer_dot_product");
  if (d.has_extension("cl_intel_device_attribute_query")) {
    cl_uint ip = 0;
    if (clGetDeviceInfo(device(), CL_DEVICE_IP_VERSION_INTEL, sizeof(ip), &ip, nullptr) == CL_SUCCESS) {
      d.intel_ip_version = ip;
    }
  }
  return d;
}

DeviceList discover_devices() {
  DeviceList list;
  std::vector<cl::Platform> platforms;
  try {
    cl::Platform::get(&platforms);
  } catch (const cl::Error& e) {
    list.skipped.push_back({"no OpenCL platform", cl_error_text(e)});
    return list;
  }
  if (platforms.empty()) list.skipped.push_back({"no OpenCL platform", "the ICD loader found no platform"});
  for (size_t p = 0; p < platforms.size(); ++p) {
    std::string what = fmt::format("platform {}", p);
    try {
      what += " (" + trimmed(platforms[p].getInfo<CL_PLATFORM_NAME>()) + ")";
      std::vector<cl::Device> devices;
      platforms[p].getDevices(CL_DEVICE_TYPE_ALL, &devices);
      for (size_t i = 0; i < devices.size(); ++i) {
        try {
          list.devices.push_back({platforms[p], devices[i], query_device_info(platforms[p], devices[i])});
        } catch (const cl::Error& e) {
          list.skipped.push_back({fmt::format("{} device {}", what, i), cl_error_text(e)});
        }
      }
    } catch (const cl::Error& e) {
      list.skipped.push_back({what, cl_error_text(e)});
    }
  }
  return list;
}

const DiscoveredDevice& select_device(const DeviceList& list, const std::string& selector) {
  if (list.devices.empty()) {
    std::string why = list.skipped.empty() ? "" : ": " + list.skipped.front().what + ": " + list.skipped.front().reason;
    throw Error("no OpenCL device found" + why);
  }
  if (selector.empty()) {
    for (const DiscoveredDevice& d : list.devices) {
      if (d.info.type == DeviceType::Gpu && d.info.is_intel()) return d;
    }
    for (const DiscoveredDevice& d : list.devices) {
      if (d.info.type == DeviceType::Gpu) return d;
    }
    return list.devices.front();
  }
  if (std::all_of(selector.begin(), selector.end(), [](unsigned char c) { return std::isdigit(c); })) {
    if (selector.size() > 6 || std::stoul(selector) >= list.devices.size()) {
      throw Error(fmt::format("--device {}: only {} OpenCL device(s) found (see `xelm devices`)", selector,
                              list.devices.size()));
    }
    return list.devices[std::stoul(selector)];
  }
  const std::string needle = lowercase(selector);
  for (const DiscoveredDevice& d : list.devices) {
    if (lowercase(d.info.name).find(needle) != std::string::npos ||
        lowercase(d.info.platform_name).find(needle) != std::string::npos) {
      return d;
    }
  }
  throw Error(fmt::format("--device '{}': no OpenCL device name contains it (see `xelm devices`)", selector));
}

}  // namespace xelm::opencl
