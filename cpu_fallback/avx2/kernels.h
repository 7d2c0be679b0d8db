// kernels.h — the AVX2 compute kernels behind the AVX2 backend. Declared here without intrinsics;
// defined only in cpu_fallback/avx2/*.cpp (compiled with -mavx2 -mfma -mf16c, the product kernels
// once more per wider ISA: CMakeLists.txt), so callers must check cpu_features() (has_isa) before
// reaching any of them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_fallback/cpu_features.h"
#include "runtime/ggml_types.h"

namespace xelm::cpu::avx2 {

// Activation block for products with the 32-element weight types: x ≈ d * qs, s = d * sum(qs)
// (s serves the offset term of Q4_1/Q5_1).
struct Q8Block32 {
  float d;
  float s;
  int8_t qs[32];
};
static_assert(sizeof(Q8Block32) == 40);

// How activations are prepared for a product with a weight type.
enum class ActivationFormat { F32, Q8Block32, Q8K };
ActivationFormat activation_format(GgmlType weight_type);
// Bytes of one prepared activation row of n elements.
size_t activation_row_bytes(ActivationFormat format, int64_t n);
// Converts one fp32 row of n elements to `format` (F32: a copy).
void quantize_activation_row(ActivationFormat format, const float* x, void* dst, int64_t n);

// Most activation rows one DotKernel call handles (its register tile).
inline constexpr int kMaxTileRows = 4;

// out[r] = bias + dot(weight row w_row, activation row r) for r < n_rows (1..kMaxTileRows). Activation
// rows are prepared rows of activation_format(type), x_stride bytes apart; n = elements per row.
using DotKernel = void (*)(const uint8_t* w_row, const uint8_t* x, size_t x_stride, int n_rows, int64_t n,
                           float bias, float* out);
// The kernel for a weight type compiled for `isa`; nullptr if the type has none (the same types for
// every ISA).
inline DotKernel dot_kernel(GgmlType weight_type, CpuIsa isa);

// Products with at least panel_min_rows(type) activation rows (gemm_kernels.cpp) take panels of
// kPanelRows consecutive weight rows, packed on the fly, where there is a PanelKernel (every type;
// float rows a multiple of 8 long); the remaining out % kPanelRows rows, smaller batches and odd
// float widths take the DotKernel.
inline constexpr int64_t kPanelRows = 8;

// Batch invariance (continuous batching): an output of a product is bit-identical whatever other
// activation rows share the batch. Activations are quantized per row; each kernel computes an output
// independently of its tile's other rows; and the quantized types' dot and panel kernels take the
// same float steps per output (bias, then block by block: simd_util.h add_block*). The float types'
// dot kernel sums in another order (lanes = elements), so their panel rows take the panel kernel for
// every batch size, decode included.
//
// So the kernel for a batch size is a speed choice only: the smallest batch for which panels beat
// the dot kernel's tiles of kMaxTileRows, per type (xelm_microbench matmul2/matmul4 vs matmul8,
// 1 thread, 1024x3072, on a Xeon with AVX-512 VNNI: the 32-element types' panels are 1.5-2.6x
// faster from 2 rows; Q4_K/Q5_K's from 4 rows, 1.1-1.2x; Q2_K, Q3_K and Q6_K's dot tiles stay as
// fast or faster up to 4).
inline int64_t panel_min_rows(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return 1;
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0: return 2;
    case GgmlType::Q4_K: case GgmlType::Q5_K: return 4;
    default: return 8;
  }
}

// y[t][o] = dot(weight row o, activation row t) + bias[o] for o < kPanelRows * n_panels, t < n_rows.
struct PanelProduct {
  const uint8_t* w;    // weight row 0 of the first panel; rows w_row_bytes apart
  size_t w_row_bytes;
  int64_t n_panels;
  const uint8_t* x;    // prepared activation rows of activation_format(type), x_stride bytes apart
  size_t x_stride;
  int64_t n_rows;
  int64_t n;           // elements per row
  float* y;            // y[0][0]; rows y_stride floats apart
  int64_t y_stride;
  const float* bias;   // [kPanelRows * n_panels], or nullptr
};
using PanelKernel = void (*)(const PanelProduct& product);
// The panel kernel for a weight type and row length n compiled for `isa`; nullptr if there is none
// (types without one; float rows whose length is not a multiple of 8).
inline PanelKernel panel_kernel(GgmlType weight_type, int64_t n, CpuIsa isa);

// dot_kernels.cpp and gemm_kernels.cpp compiled for each ISA (kernel_isa.h names the namespaces).
namespace isa_avx2 {
DotKernel dot_kernel(GgmlType weight_type);
PanelKernel panel_kernel(GgmlType weight_type, int64_t n);
}  // namespace isa_avx2
namespace isa_avxvnni {
DotKernel dot_kernel(GgmlType weight_type);
PanelKernel panel_kernel(GgmlType weight_type, int64_t n);
}  // namespace isa_avxvnni
namespace isa_avx512 {
DotKernel dot_kernel(GgmlType weight_type);
PanelKernel panel_kernel(GgmlType weight_type, int64_t n);
}  // namespace isa_avx512

inline DotKernel dot_kernel(GgmlType weight_type, CpuIsa isa) {
  switch (isa) {
    case CpuIsa::AvxVnni: return isa_avxvnni::dot_kernel(weight_type);
    case CpuIsa::Avx512: return isa_avx512::dot_kernel(weight_type);
    case CpuIsa::Avx2: break;
  }
  return isa_avx2::dot_kernel(weight_type);
}

inline PanelKernel panel_kernel(GgmlType weight_type, int64_t n, CpuIsa isa) {
  switch (isa) {
    case CpuIsa::AvxVnni: return isa_avxvnni::panel_kernel(weight_type, n);
    case CpuIsa::Avx512: return isa_avx512::panel_kernel(weight_type, n);
    case CpuIsa::Avx2: break;
  }
  return isa_avx2::panel_kernel(weight_type, n);
}

// Attention (attention_kernels.cpp): one step of flash-style attention. `n` query vectors ("slots")
// sharing one kv head take in a tile of at most kAttentionKeyTile keys and values with an online
// softmax: running_max, denom and the unnormalized output acc are updated; out = acc / denom once
// every tile is in.
inline constexpr int64_t kAttentionKeyTile = 64;
struct AttentionSlots {
  int64_t n;
  const float* const* q;   // [n] query vectors of d floats
  const int64_t* visible;  // [n] keys of the tile slot s may see: the first visible[s] (causal)
  float* acc;              // [n][d]
  float* running_max;      // [n], -inf before the first tile
  float* denom;            // [n], 0 before the first tile
  float* scores;           // scratch [n][kAttentionKeyTile]
};
// keys, values: [n_keys, d] fp32 with kAttentionKeyTile rows allocated; n_keys <= kAttentionKeyTile.
void attend_key_tile(const AttentionSlots& slots, const float* keys, const float* values, int64_t n_keys, int64_t d,
                     float scale);

// Converts n floats to IEEE half and back (F16C).
void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n);
void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);

}  // namespace xelm::cpu::avx2
