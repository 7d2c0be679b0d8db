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

// Products take panels of kPanelRows consecutive weight rows where the type has a PanelKernel (every
// type; float rows a multiple of 8 long), for every batch size, decode included. The weight keeps
// those rows repacked (at its first product) into the kernel's panel layout (gemm_kernels.cpp: quants
// interleaved by row, scales unpacked; about the size of the file's rows); the remaining
// out % kPanelRows rows and odd float widths take the DotKernel, on the file's rows.
inline constexpr int64_t kPanelRows = 8;

// Batch invariance (continuous batching): an output of a product is bit-identical whatever other
// activation rows share the batch. Activations are quantized per row; each kernel computes an output
// independently of its tile's other rows; and which kernel computes an output row depends on the row,
// never on the batch size. (The quantized types' dot and panel kernels also take the same float steps
// per output: simd_util.h add_block*.)

// y[t][o] = dot(weight row o, activation row t) + bias[o] for o < kPanelRows * n_panels, t < n_rows.
struct PanelProduct {
  const uint8_t* panels;  // n_panels repacked panels (PanelKernel::repack), panel_bytes apart
  int64_t n_panels;
  const uint8_t* x;    // prepared activation rows of activation_format(type), x_stride bytes apart
  size_t x_stride;
  int64_t n_rows;
  int64_t n;           // elements per row
  float* y;            // y[0][0]; rows y_stride floats apart
  int64_t y_stride;
  const float* bias;   // [kPanelRows * n_panels], or nullptr
};
// A type's panel layout and product, for rows of n elements.
struct PanelKernel {
  size_t panel_bytes = 0;  // one repacked panel: kPanelRows rows of n elements
  // Repacks the kPanelRows rows at w (w_row_bytes apart, the file's layout) into one panel.
  void (*repack)(const uint8_t* w, size_t w_row_bytes, int64_t n, uint8_t* panel) = nullptr;
  void (*product)(const PanelProduct& product) = nullptr;
  explicit operator bool() const { return product != nullptr; }
};
// The panel kernel for a weight type and row length n compiled for `isa`; empty if there is none
// (types without one; float rows whose length is not a multiple of 8). The panel layout is the same
// for every ISA.
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
