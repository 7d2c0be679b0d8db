// build_options.h — the OpenCL C compiler options for xelm's kernels, computed from a DeviceInfo
// alone (no device needed, so a recorded Iris Xe fixture can be fed through it for Intel's offline
// compiler). Tunables come from a table kept as data, searched vendor → architecture → device →
// default, as CLBlast does; never -cl-fast-relaxed-math (attention masking relies on -INFINITY).
// Fast paths (half arithmetic, sub-group reductions, int8 dot products) are chosen from the
// device's features and passed as -D options; without them the kernels are the portable
// OpenCL C 1.2 baseline.
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
  // Prefill GEMM path (host/gemm_path.cpp): products with at least this many activation rows
  // dequantize the weight into a scratch matrix and multiply it with CLBlast; 0 = never.
  int gemm_min_tokens = 0;
  int gemm_scratch_mb = 64;  // bound on the dequantized weight block (rows are taken in blocks)
  int subgroup_size = 0;     // sub-group size to require (intel_reqd_sub_group_size); 0 = the device's
  // Whether `auto` takes the fp16 path where the device has cl_khr_fp16. Off unless measured to win:
  // on Gen12LP its float<->half conversions cost +40-60% instructions per matmul kernel
  // (bench/isa/tgllp.md), and nothing here can run it. `fp16` in the request still forces it.
  bool fp16_math = false;
};

// How the int8 fast path computes its 4×8-bit dot products.
enum class Int8Dot {
  WrittenOut,  // the dot written out in OpenCL C (portable, testable on any device)
  Khr,         // -DXELM_DOT_KHR: cl_khr_integer_dot_product's dot() (DP4A)
  IntelAsm,    // -DXELM_DOT_INTEL_ASM: Intel's dp4a by inline vISA (needs the required sub-group size;
               //   IGC 22.43 cannot build the khr dot() builtin)
};

// The fast paths a program is built with (-D options), chosen from device features by
// select_fast_paths. Each is small and isolated in the kernels (see kernels/common.cl).
struct FastPaths {
  bool fp16 = false;         // -DXELM_FP16: half arithmetic in the chunk dot products (cl_khr_fp16)
  int subgroup_size = 0;     // -DXELM_SUBGROUPS [-DXELM_SUBGROUP_SIZE=n]: sub-group reductions
  bool subgroups = false;    //   in matmul (cl_khr_subgroups / cl_intel_subgroups); size n required on Intel
  bool int8 = false;         // -DXELM_INT8: Q8_0/Q4_0 products on int8-quantized activations
  Int8Dot int8_dot = Int8Dot::WrittenOut;  // ... and their dot products (meaningful with int8 only)
  std::string describe() const;  // "fp16,subgroups16,int8-dp4a-visa" or "none"
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

// The fast paths for this device: every one whose feature the device reports (auto; fp16 only where
// the tuning's fp16_math says so), or as
// `request` says: "auto" or "" (features), "none" (the portable baseline), or a comma list of
// fp16, subgroups, int8 (forced; fp16 and subgroups still need the feature, int8 runs its
// written-out dot where the device lacks cl_khr_integer_dot_product). Throws xelm::Error on a
// request the device cannot build.
FastPaths select_fast_paths(const DeviceInfo& info, const KernelTuning& tuning, const std::string& request = "auto");

// "-cl-std=CL1.2 -DMATMUL_WG=64 ..." for a fitted tuning, plus the fast paths' -D options.
std::string build_options(const KernelTuning& tuning, const FastPaths& fast = {});

}  // namespace xelm::opencl
