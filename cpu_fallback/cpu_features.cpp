// cpu_features.cpp — CPUID-based feature detection (with the OS's saved register state from XGETBV),
// the choice of the kernel instruction set, and the physical core count from sysfs.
#include "cpu_fallback/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "runtime/error.h"

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

#if defined(__x86_64__) || defined(__i386__)
struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};
// CPUID leaf/subleaf; zeros when the leaf is beyond the CPU's highest one.
CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx) == 0) return CpuidRegs{};
  return r;
}
bool bit(unsigned reg, int n) { return ((reg >> n) & 1u) != 0; }
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  const CpuidRegs leaf1 = cpuid(1, 0), leaf7 = cpuid(7, 0), leaf7_1 = cpuid(7, 1);
  // The OS must save the vector state before any of it can be used: XCR0 bits 1-2 (XMM, YMM) for
  // AVX, and bits 5-7 (opmask, upper ZMM0-15, ZMM16-31) for AVX-512. XGETBV exists with OSXSAVE.
  uint64_t xcr0 = 0;
  if (bit(leaf1.ecx, 27)) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
  const bool avx = os_ymm && bit(leaf1.ecx, 28);
  f.fma = avx && bit(leaf1.ecx, 12);
  f.f16c = avx && bit(leaf1.ecx, 29);
  f.avx2 = avx && bit(leaf7.ebx, 5);
  f.avxvnni = avx && bit(leaf7_1.eax, 4);
  f.avx512f = os_zmm && bit(leaf7.ebx, 16);
  f.avx512bw = f.avx512f && bit(leaf7.ebx, 30);
  f.avx512vl = f.avx512f && bit(leaf7.ebx, 31);
  f.avx512vnni = f.avx512f && bit(leaf7.ecx, 11);
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
  add(avxvnni, "AVX-VNNI");
  add(avx512f, "AVX512F");
  add(avx512bw, "AVX512BW");
  add(avx512vl, "AVX512VL");
  add(avx512vnni, "AVX512-VNNI");
  if (s.empty()) s = "baseline x86-64";
  return s + ", " + std::to_string(physical_cores) + " physical / " + std::to_string(logical_cores) +
         " logical cores";
}

std::string_view isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::AvxVnni: return "avxvnni";
    case CpuIsa::Avx512: return "avx512";
  }
  return "?";
}

std::optional<CpuIsa> parse_isa(std::string_view name) {
  for (CpuIsa isa : kAllCpuIsas) {
    if (isa_name(isa) == name) return isa;
  }
  return std::nullopt;
}

bool has_isa(const CpuFeatures& f, CpuIsa isa) {
  const bool base = f.avx2 && f.fma && f.f16c;
  switch (isa) {
    case CpuIsa::Avx2: return base;
    case CpuIsa::AvxVnni: return base && f.avxvnni;
    case CpuIsa::Avx512: return base && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  }
  return false;
}

std::string_view isa_requirements(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx2: return "AVX2, FMA and F16C";
    case CpuIsa::AvxVnni: return "AVX2, FMA, F16C and AVX-VNNI";
    case CpuIsa::Avx512: return "AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI (with the OS saving ZMM state)";
  }
  return "?";
}

std::optional<CpuIsa> choose_isa(const CpuFeatures& f, std::string_view request) {
  if (request.empty() || request == "auto") {
    for (CpuIsa isa : {CpuIsa::Avx512, CpuIsa::AvxVnni, CpuIsa::Avx2}) {
      if (has_isa(f, isa)) return isa;
    }
    return std::nullopt;
  }
  const std::optional<CpuIsa> isa = parse_isa(request);
  if (!isa) throw Error("--cpu-isa: '" + std::string(request) + "' is not auto, avx2, avxvnni or avx512");
  if (!has_isa(f, *isa)) {
    throw Error("--cpu-isa " + std::string(request) + ": this CPU lacks it (it needs " +
                std::string(isa_requirements(*isa)) + "; the CPU has " + f.summary() + ")");
  }
  return isa;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace xelm::cpu
