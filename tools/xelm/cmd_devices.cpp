// cmd_devices.cpp — `xelm devices`: every OpenCL device xelm can see, with the features that decide
// its kernels and the tuning it gets, every platform or device that was skipped and why, and the CPU
// with the instruction set its kernels use (--cpu-isa auto) and which ones it could use.
#include <cstdio>
#include <string>

#include <spdlog/fmt/fmt.h>

#include "cpu_fallback/cpu_features.h"
#include "host/build_options.h"
#include "host/device_info.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

std::string mib(uint64_t bytes) { return fmt::format("{} MiB", bytes / (1024 * 1024)); }
const char* yes_no(bool b) { return b ? "yes" : "no"; }

int run_devices(bool show_extensions) {
  const opencl::DeviceList list = opencl::discover_devices();
  if (list.devices.empty()) std::printf("no OpenCL device found\n");
  for (size_t i = 0; i < list.devices.size(); ++i) {
    const opencl::DeviceInfo& d = list.devices[i].info;
    std::printf("device %zu: %s (%s)\n", i, d.name.c_str(), d.type_name());
    std::printf("  platform:          %s (%s)\n", d.platform_name.c_str(), d.platform_version.c_str());
    std::printf("  vendor:            %s (id 0x%x)\n", d.vendor.c_str(), d.vendor_id);
    std::printf("  driver:            %s\n", d.driver_version.c_str());
    std::printf("  OpenCL C:          %s\n", d.opencl_c_version.c_str());
    std::printf("  compute units:     %u at %u MHz\n", d.compute_units, d.max_clock_mhz);
    std::printf("  global memory:     %s\n", mib(d.global_memory_bytes).c_str());
    std::printf("  local memory:      %llu KiB\n", static_cast<unsigned long long>(d.local_memory_bytes / 1024));
    std::printf("  max allocation:    %s\n", mib(d.max_alloc_bytes).c_str());
    std::printf("  unified memory:    %s\n", yes_no(d.unified_memory));
    std::printf("  fp16:              %s\n", yes_no(d.fp16));
    std::string sizes;
    for (uint32_t s : d.subgroup_sizes) sizes += (sizes.empty() ? " (sizes " : ", ") + std::to_string(s);
    if (!sizes.empty()) sizes += ")";
    std::printf("  sub-groups:        %s%s%s\n", yes_no(d.subgroups), d.intel_subgroups ? ", cl_intel_subgroups" : "",
                sizes.c_str());
    std::printf("  integer dot:       %s\n", yes_no(d.integer_dot_product));
    if (d.intel_ip_version != 0) {
      std::printf("  Intel IP version:  %u.%u.%u\n", d.intel_ip_version >> 22, (d.intel_ip_version >> 14) & 0xff,
                  d.intel_ip_version & 0x3fff);
    }
    const std::string arch = opencl::device_architecture(d);
    std::printf("  kernel options:    %s%s\n", opencl::build_options(opencl::select_tuning(d)).c_str(),
                arch.empty() ? "" : (" (" + arch + " tuning)").c_str());
    if (show_extensions) {
      std::printf("  extensions:       ");
      for (const std::string& e : d.extensions) std::printf(" %s", e.c_str());
      std::printf("\n");
    }
  }
  for (const opencl::SkippedEntry& s : list.skipped) std::printf("skipped %s: %s\n", s.what.c_str(), s.reason.c_str());
  const cpu::CpuFeatures& f = cpu::cpu_features();
  const std::optional<cpu::CpuIsa> best = cpu::choose_isa(f, "auto");
  std::string usable;
  for (cpu::CpuIsa isa : cpu::kAllCpuIsas) {
    usable += fmt::format("{}{} {}", usable.empty() ? "" : ", ", cpu::isa_name(isa), yes_no(cpu::has_isa(f, isa)));
  }
  std::printf("cpu: %s\n", f.summary().c_str());
  std::printf("  cpu kernels:       %s (--cpu-isa auto; %s)\n",
              best ? std::string(cpu::isa_name(*best)).c_str() : "scalar reference (no AVX2/FMA/F16C)", usable.c_str());
  return 0;
}

}  // namespace

Subcommand add_devices_command(CLI::App& app) {
  auto show_extensions = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("devices", "List OpenCL devices, their features, and skipped platforms");
  cmd->add_flag("--extensions", *show_extensions, "Also list every OpenCL extension");
  return {cmd, [show_extensions](const Environment&) { return run_devices(*show_extensions); }};
}

}  // namespace xelm::cli
