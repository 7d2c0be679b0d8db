// build_options.cpp — the tuning table and the -D options derived from it.
#include "host/build_options.h"

#include <algorithm>
#include <cctype>

#include <spdlog/fmt/fmt.h>

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

const std::vector<TuningEntry>& tuning_table() {
  // Starting points, to be refined by `xelm tune` on real hardware. Xe-LP: 16-wide SIMD threads,
  // 7 threads per EU; 32 items per row keep more rows in flight for decode. CPU devices (PoCL) run
  // a work-group as a loop, so wider groups and more tokens per group amortise the barriers.
  static const std::vector<TuningEntry> table = {
      {"", "", "", KernelTuning{}},
      {"intel", "", "", KernelTuning{.matmul_wg = 32, .matmul_rows = 2, .matmul_tokens = 4, .norm_wg = 64, .attn_wg = 32,
                                      .attn_tile = 64, .attn_split_len = 256}},
      {"intel", "gen12lp", "", KernelTuning{.matmul_wg = 32, .matmul_rows = 2, .matmul_tokens = 8, .norm_wg = 64, .attn_wg = 32,
                                             .attn_tile = 64, .attn_split_len = 128}},
      {"", "cpu", "", KernelTuning{.matmul_wg = 8, .matmul_rows = 16, .matmul_tokens = 8, .norm_wg = 16, .attn_wg = 16,
                                    .attn_tile = 64, .attn_split_len = 512}},
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
  return t;
}

std::string build_options(const KernelTuning& t) {
  return fmt::format(
      "-cl-std=CL1.2 -DMATMUL_WG={} -DMATMUL_ROWS={} -DMATMUL_TOKENS={} -DNORM_WG={} -DATTN_WG={} "
      "-DATTN_TILE={} -DATTN_MAX_HEAD_DIM={}",
      t.matmul_wg, t.matmul_rows, t.matmul_tokens, t.norm_wg, t.attn_wg, t.attn_tile, kMaxHeadDim);
}

}  // namespace xelm::opencl
