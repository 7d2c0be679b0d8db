// build_options.cpp — the tuning table and the -D options derived from it.
#include "host/build_options.h"

#include <algorithm>
#include <cctype>

#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm::opencl {
namespace {

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return needle.empty() || lowercase(haystack).find(needle) != std::string::npos;
}

}  // namespace

// Prefill GEMM thresholds (activation rows from which dequantize + CLBlast SGEMM replaces the matmul
// kernel). CPU devices, measured on PoCL 3.1 (2 loaded cores, `xelm bench -p N -n 0 --backend opencl
// -ngl 99`, Qwen3-0.6B shape, 4 layers, Q8_0; XELM_OPENCL_GEMM_MIN_TOKENS=0 vs 1), tok/s kernel vs
// GEMM: pp8 30/9, pp16 34/19, pp32 38/30, pp48 ~even, pp64 39/48, pp512 20-38/79-85: from 64.
// Intel Gen12LP is not measured (no Iris Xe here): a starting point for `xelm tune`; other GPUs: a
// tuned GEMM beats a matvec kernel well before 64 rows.
constexpr int GEMM_DEFAULT = 64;
constexpr int GEMM_GEN12LP = 32;
constexpr int GEMM_CPU = 64;

const std::vector<TuningEntry>& tuning_table() {
  // Starting points, to be refined by `xelm tune` on real hardware. Xe-LP: 16-wide SIMD threads,
  // 7 threads per EU; 32 items per row keep more rows in flight for decode. CPU devices (PoCL) run
  // a work-group as a loop, so wider groups and more tokens per group amortise the barriers.
  static const std::vector<TuningEntry> table = {
      {"", "", "", KernelTuning{.gemm_min_tokens = GEMM_DEFAULT}},
      {"intel", "", "", KernelTuning{.matmul_wg = 32, .matmul_rows = 2, .matmul_tokens = 4, .norm_wg = 64, .attn_wg = 32,
                                      .attn_tile = 64, .attn_split_len = 256, .gemm_min_tokens = GEMM_DEFAULT}},
      {"intel", "gen12lp", "", KernelTuning{.matmul_wg = 32, .matmul_rows = 2, .matmul_tokens = 8, .norm_wg = 64, .attn_wg = 32,
                                             .attn_tile = 64, .attn_split_len = 128, .gemm_min_tokens = GEMM_GEN12LP,
                                             .gemm_scratch_mb = 64, .subgroup_size = 16}},
      {"", "cpu", "", KernelTuning{.matmul_wg = 8, .matmul_rows = 16, .matmul_tokens = 8, .norm_wg = 16, .attn_wg = 16,
                                    .attn_tile = 64, .attn_split_len = 512, .gemm_min_tokens = GEMM_CPU}},
  };
  return table;
}

std::string device_architecture(const DeviceInfo& info) {
  if (info.type == DeviceType::Cpu) return "cpu";
  // cl_intel_device_attribute_query IP version: major << 22 | minor << 14 | revision. Xe-LP is 12.0 and 12.1
  // (Tiger Lake 12.0.0, Rocket Lake/Alder Lake/DG1 12.1 / 12.2 with the same EU ISA).
  const uint32_t major = info.intel_ip_version >> 22, minor = (info.intel_ip_version >> 14) & 0xff;
  if (info.is_intel() && major == 12 && minor <= 2) return "gen12lp";
  if (info.is_intel() && info.intel_ip_version == 0 && contains(info.name, "iris(r) xe")) return "gen12lp";
  return "";
}

KernelTuning select_tuning(const DeviceInfo& info) {
  const std::string arch = device_architecture(info);
  const TuningEntry* best = nullptr;
  int best_score = -1;
  for (const TuningEntry& e : tuning_table()) {
    if (!contains(info.vendor, e.vendor) || !(e.architecture.empty() || e.architecture == arch) ||
        !contains(info.name, e.device)) {
      continue;
    }
    const int score = (e.device.empty() ? 0 : 4) + (e.architecture.empty() ? 0 : 2) + (e.vendor.empty() ? 0 : 1);
    if (score > best_score) {
      best = &e;
      best_score = score;
    }
  }
  return fit_tuning(info, best->tuning);  // the default row always matches
}

KernelTuning fit_tuning(const DeviceInfo& info, KernelTuning t) {
  // Halve work-group sizes until the device accepts them (they stay powers of two).
  const auto fit = [&](int& wg) {
    while (wg > 1 && static_cast<uint64_t>(wg) > info.max_work_group_size) wg /= 2;
  };
  fit(t.matmul_wg);
  fit(t.norm_wg);
  fit(t.attn_wg);
  if (t.subgroup_size != 0 &&
      std::find(info.subgroup_sizes.begin(), info.subgroup_sizes.end(), static_cast<uint32_t>(t.subgroup_size)) ==
          info.subgroup_sizes.end()) {
    t.subgroup_size = 0;
  }
  if (t.subgroup_size > t.matmul_wg) t.subgroup_size = 0;
  return t;
}

std::string FastPaths::describe() const {
  std::string s;
  const auto add = [&](const std::string& name) { s += (s.empty() ? "" : ",") + name; };
  if (fp16) add("fp16");
  if (subgroups) add(subgroup_size != 0 ? fmt::format("subgroups{}", subgroup_size) : "subgroups");
  if (int8) {
    switch (int8_dot) {
      case Int8Dot::WrittenOut: add("int8"); break;
      case Int8Dot::Khr: add("int8-dot-khr"); break;
      case Int8Dot::IntelAsm: add("int8-dp4a-visa"); break;
    }
  }
  return s.empty() ? "none" : s;
}

FastPaths select_fast_paths(const DeviceInfo& info, const KernelTuning& tuning, const std::string& request) {
  // Sub-groups on Intel need a required size (the reduction is laid out for it); other devices
  // with cl_khr_subgroups take whatever size the compiler picks.
  const bool subgroups_ok = info.intel_subgroups ? info.required_subgroup_size && tuning.subgroup_size != 0
                                                 : info.has_extension("cl_khr_subgroups");
  FastPaths f;
  if (request.empty() || request == "auto") {
    f.fp16 = info.fp16 && tuning.fp16_math;
    f.subgroups = subgroups_ok;
    f.int8 = info.integer_dot_product;
  } else if (request != "none") {
    std::stringstream words(request);
    for (std::string w; std::getline(words, w, ',');) {
      if (w == "fp16") {
        if (!info.fp16) throw Error(fmt::format("fast path fp16: {} lacks cl_khr_fp16", info.name));
        f.fp16 = true;
      } else if (w == "subgroups") {
        if (!subgroups_ok) throw Error(fmt::format("fast path subgroups: {} lacks usable sub-groups", info.name));
        f.subgroups = true;
      } else if (w == "int8") {
        f.int8 = true;
      } else {
        throw Error(fmt::format("XELM_OPENCL_FAST_PATHS '{}': unknown fast path '{}' (auto, none, or a list of "
                                "fp16, subgroups, int8)", request, w));
      }
    }
  }
  f.subgroup_size = f.subgroups && info.intel_subgroups ? tuning.subgroup_size : 0;
  // Intel: dp4a through inline vISA (the SIMD width is the required sub-group size): IGC 22.43 does
  // not build the extension's dot() from OpenCL C (undefined __builtin_spirv_OpDot_v4i8_v4i8), so
  // Intel without a required sub-group size gets the written-out dot. Elsewhere the extension's dot().
  if (f.int8 && info.integer_dot_product) {
    if (!info.is_intel()) {
      f.int8_dot = Int8Dot::Khr;
    } else if (f.subgroup_size != 0) {
      f.int8_dot = Int8Dot::IntelAsm;
    }
  }
  return f;
}

std::string build_options(const KernelTuning& t, const FastPaths& f) {
  std::string s = fmt::format(
      "-cl-std=CL1.2 -DMATMUL_WG={} -DMATMUL_ROWS={} -DMATMUL_TOKENS={} -DNORM_WG={} -DATTN_WG={} "
      "-DATTN_TILE={} -DATTN_MAX_HEAD_DIM={}",
      t.matmul_wg, t.matmul_rows, t.matmul_tokens, t.norm_wg, t.attn_wg, t.attn_tile, kMaxHeadDim);
  if (f.fp16) s += " -DXELM_FP16";
  if (f.subgroups) s += " -DXELM_SUBGROUPS";
  if (f.subgroup_size != 0) s += fmt::format(" -DXELM_SUBGROUP_SIZE={}", f.subgroup_size);
  if (f.int8) {
    s += " -DXELM_INT8";
    if (f.int8_dot == Int8Dot::Khr) s += " -DXELM_DOT_KHR";
    if (f.int8_dot == Int8Dot::IntelAsm) s += " -DXELM_DOT_INTEL_ASM";
  }
  return s;
}

}  // namespace xelm::opencl
