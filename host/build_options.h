// build_options.h — the OpenCL C compiler options for xelm's kernels, computed from a DeviceInfo
// alone (no device needed, so a recorded Iris Xe fixture can be fed through it for Intel's offline
// compiler). Tunables come from a table kept as data, searched vendor → architecture → device →
// default, as CLBlast does; never -cl-fast-relaxed-math (attention masking relies on -INFINITY).
#pragma once

#include <string>
#include <vector>

#include "host/device_info.h"

namespace xelm::opencl {

struct KernelTuning {
  int matmul_wg = 64;       // work-items per output row of a product (power of two)
  int matmul_rows = 1;      // output rows per work-group (one after the other)
  int matmul_tokens = 4;    // activation rows per work-group (weights read once per this many tokens)
  int norm_wg = 64;         // work-items per normalised row/group (power of two)
  int attn_wg = 64;         // work-items per (split, head, query row) of attention (power of two)
  int attn_tile = 64;       // keys scored per local-memory tile
  int attn_split_len = 256; // keys per work-group in split (flash-decoding) attention
};

// One row of the tuning table. Empty match fields match anything; the most specific matching row wins
// (device > architecture > vendor > default).
struct TuningEntry {
  std::string vendor;        // substring of DeviceInfo::vendor, lower case ("intel", "portable")
  std::string architecture;  // "gen12lp" (Intel IP version family) or a device type ("cpu")
  std::string device;        // substring of DeviceInfo::name, lower case
  KernelTuning tuning;
};

const std::vector<TuningEntry>& tuning_table();

// "gen12lp" for Intel IP versions of Xe-LP (Tiger Lake, Alder Lake, ...), "cpu" for CPU devices,
// "" otherwise.
std::string device_architecture(const DeviceInfo& info);

// The table's choice for this device, fitted to its limits (fit_tuning).
KernelTuning select_tuning(const DeviceInfo& info);
// Clamps work-group sizes to the device's max work-group size.
KernelTuning fit_tuning(const DeviceInfo& info, KernelTuning tuning);

// The largest head_dim the attention kernels accept.
inline constexpr int kMaxHeadDim = 256;

// "-cl-std=CL1.2 -DMATMUL_WG=64 ..." for a fitted tuning.
std::string build_options(const KernelTuning& tuning);

}  // namespace xelm::opencl
