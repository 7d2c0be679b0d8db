// quant_blocks.h — byte-exact C++ mirrors of ggml's quantization block structs.
//
// Every struct here has exactly the size and field order ggml uses, so a GGUF tensor's bytes can be
// read as an array of these blocks. Half-precision fields are raw IEEE binary16 bit patterns (uint16_t);
// convert them with xelm::fp16_to_fp32. All multi-byte fields are little-endian, as in GGUF files.
// Included by the scalar reference (ggml_types.cpp), and later by the AVX2 and OpenCL kernels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xelm::quant {

using half_bits = uint16_t;  // IEEE binary16 bit pattern

// Elements per block.
inline constexpr int QK4_0 = 32;
inline constexpr int QK4_1 = 32;
inline constexpr int QK5_0 = 32;
inline constexpr int QK5_1 = 32;
inline constexpr int QK8_0 = 32;
inline constexpr int QK8_1 = 32;
inline constexpr int QK_K = 256;          // super-block size of the K-quants
inline constexpr int K_SCALE_SIZE = 12;   // packed 6-bit scales+mins of Q4_K / Q5_K

// ---- Legacy 32-element blocks --------------------------------------------------------------------

// Q4_0: x = d * (q - 8), q in [0, 15]. qs[j] holds element j in its low nibble, element j+16 high.
struct block_q4_0 {
  half_bits d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// Q4_1: x = d * q + m, q in [0, 15]. Nibble packing as Q4_0.
struct block_q4_1 {
  half_bits d;
  half_bits m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20);

// Q5_0: x = d * (q - 16), q in [0, 31]. Low 4 bits packed as Q4_0; bit 4 of element j is bit j of
// the little-endian uint32 stored in qh.
struct block_q5_0 {
  half_bits d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22);

// Q5_1: x = d * q + m, q in [0, 31]. Bit packing as Q5_0.
struct block_q5_1 {
  half_bits d;
  half_bits m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24);

// Q8_0: x = d * q, q a signed byte.
struct block_q8_0 {
  half_bits d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34);

// Q8_1 (activation format for dot products with Q4_1/Q5_1): as Q8_0 plus s = d * sum(qs).
struct block_q8_1 {
  half_bits d;
  half_bits s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 36);

// ---- K-quants: 256-element super-blocks --------------------------------------------------------

// Q2_K: 16 sub-blocks of 16. scales[j] = (4-bit min << 4) | 4-bit scale of sub-block j.
// x = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in [0, 3].
// qs: for each half (128 elements) 32 bytes; byte l holds elements l, l+32, l+64, l+96 of that half
// in bit pairs 0-1, 2-3, 4-5, 6-7.
struct block_q2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  half_bits d;
  half_bits dmin;
};
static_assert(sizeof(block_q2_K) == 84);

// Q3_K: 16 sub-blocks of 16, x = d * (s_j - 32) * (q - 4), q in [0, 7].
// Low two bits of q packed in qs as Q2_K. The high bit of element e (0..255) is bit (e / 32) of
// hmask[e % 32]; it is SET when q >= 4. The 6-bit scales s_j: low nibble of s_j is nibble
// (j / 8) of scales[j % 8]; its top two bits are bits 2*(j/4)..2*(j/4)+1 of scales[8 + j % 4].
struct block_q3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  half_bits d;
};
static_assert(sizeof(block_q3_K) == 110);

// Q4_K: 8 sub-blocks of 32, x = d * sc_j * q - dmin * m_j, q in [0, 15], sc_j/m_j 6-bit.
// scales (K_SCALE_SIZE bytes), for j < 4: sc_j = scales[j] & 63, m_j = scales[j+4] & 63;
// for j >= 4: sc_j = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
//             m_j  = (scales[j+4] >> 4) | (scales[j] >> 6) << 4.
// qs: per 64 elements 32 bytes; byte l holds element l (low nibble) and element l+32 (high).
struct block_q4_K {
  half_bits d;
  half_bits dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144);

// Q5_K: as Q4_K with q in [0, 31]. The high bit of element 64*p + l (l < 32) is bit 2p of qh[l],
// of element 64*p + 32 + l it is bit 2p+1 of qh[l].
struct block_q5_K {
  half_bits d;
  half_bits dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176);

// Q6_K: 16 sub-blocks of 16, x = d * scales[j] * (q - 32), q in [0, 63].
// Per half (128 elements): ql gets 64 bytes, qh 32 bytes. For l < 32 in half h:
//   element l     : low nibble of ql[l],      high bits  (qh[l] >> 0) & 3
//   element l + 32: low nibble of ql[l + 32], high bits  (qh[l] >> 2) & 3
//   element l + 64: high nibble of ql[l],     high bits  (qh[l] >> 4) & 3
//   element l + 96: high nibble of ql[l + 32], high bits (qh[l] >> 6) & 3
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  half_bits d;
};
static_assert(sizeof(block_q6_K) == 210);

// Q8_K (activation format for K-quant dot products): x = d * q with an fp32 scale;
// bsums[j] = sum of qs[16j .. 16j+15].
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292);

}  // namespace xelm::quant
