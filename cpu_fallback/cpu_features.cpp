// cpu_features.cpp — CPUID-based feature detection and physical core count from sysfs.
#include "cpu_fallback/cpu_features.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace xelm::cpu {
namespace {

int count_physical_cores() {
  // Distinct (package, core) pairs; falls back to the logical count when sysfs is not readable.
  std::set<std::pair<std::string, std::string>> cores;
  for (unsigned cpu = 0; cpu < 4096; ++cpu) {
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream package(base + "physical_package_id"), core(base + "core_id");
    if (!package || !core) break;
    std::string p, c;
    package >> p;
    core >> c;
    cores.emplace(p, c);
  }
  return cores.empty() ? 0 : static_cast<int>(cores.size());
}

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
  f.f16c = (ecx >> 29) & 1u;
#endif
  f.logical_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int physical = count_physical_cores();
  f.physical_cores = physical > 0 ? physical : f.logical_cores;
  return f;
}

}  // namespace

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += s.empty() ? name : std::string(" ") + name;
  };
  add(avx2, "AVX2");
  add(fma, "FMA");
  add(f16c, "F16C");
  add(avx512f, "AVX512F");
  add(avx512vnni, "AVX512-VNNI");
  if (s.empty()) s = "baseline x86-64";
  return s + ", " + std::to_string(physical_cores) + " physical / " + std::to_string(logical_cores) +
         " logical cores";
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace xelm::cpu
