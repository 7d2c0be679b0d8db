// quants_internal.h — per-type scalar reference row kernels behind xelm::quantize_row / dequantize_row.
//
// Private to runtime/: ggml_types.cpp validates the row length and dispatches here with a block count.
// Kernels read and write blocks through memcpy (load_block / store_block), so src and dst need no
// particular alignment. Every quantizer reproduces ggml's *_ref quantizer bit for bit (no imatrix).
#pragma once

#include <cstdint>
#include <cstring>

namespace xelm::quant {

// Copies block i out of a packed array of Block (no alignment requirement on base).
template <class Block>
Block load_block(const void* base, int64_t i) {
  Block block;
  std::memcpy(&block, static_cast<const unsigned char*>(base) + i * static_cast<int64_t>(sizeof(Block)),
              sizeof(Block));
  return block;
}

// Copies block into slot i of a packed array of Block.
template <class Block>
void store_block(void* base, int64_t i, const Block& block) {
  std::memcpy(static_cast<unsigned char*>(base) + i * static_cast<int64_t>(sizeof(Block)), &block,
              sizeof(Block));
}

// Row kernels: nblocks whole blocks from src to dst.
using DequantizeFn = void (*)(const void* src, float* dst, int64_t nblocks);
using QuantizeFn = void (*)(const float* src, void* dst, int64_t nblocks);

// Legacy 32-element formats (legacy_quants.cpp).
void dequantize_q4_0(const void* src, float* dst, int64_t nblocks);
void dequantize_q4_1(const void* src, float* dst, int64_t nblocks);
void dequantize_q5_0(const void* src, float* dst, int64_t nblocks);
void dequantize_q5_1(const void* src, float* dst, int64_t nblocks);
void dequantize_q8_0(const void* src, float* dst, int64_t nblocks);
void dequantize_q8_1(const void* src, float* dst, int64_t nblocks);
void quantize_q4_0(const float* src, void* dst, int64_t nblocks);
void quantize_q4_1(const float* src, void* dst, int64_t nblocks);
void quantize_q5_0(const float* src, void* dst, int64_t nblocks);
void quantize_q5_1(const float* src, void* dst, int64_t nblocks);
void quantize_q8_0(const float* src, void* dst, int64_t nblocks);
void quantize_q8_1(const float* src, void* dst, int64_t nblocks);

// K-quants, 256-element super-blocks (k_quants.cpp).
void dequantize_q2_K(const void* src, float* dst, int64_t nblocks);
void dequantize_q3_K(const void* src, float* dst, int64_t nblocks);
void dequantize_q4_K(const void* src, float* dst, int64_t nblocks);
void dequantize_q5_K(const void* src, float* dst, int64_t nblocks);
void dequantize_q6_K(const void* src, float* dst, int64_t nblocks);
void dequantize_q8_K(const void* src, float* dst, int64_t nblocks);
void quantize_q2_K(const float* src, void* dst, int64_t nblocks);
void quantize_q3_K(const float* src, void* dst, int64_t nblocks);
void quantize_q4_K(const float* src, void* dst, int64_t nblocks);
void quantize_q5_K(const float* src, void* dst, int64_t nblocks);
void quantize_q6_K(const float* src, void* dst, int64_t nblocks);
void quantize_q8_K(const float* src, void* dst, int64_t nblocks);

}  // namespace xelm::quant
