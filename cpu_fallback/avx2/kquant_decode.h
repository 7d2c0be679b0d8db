// kquant_decode.h — decoding of K-quant weight blocks (Q2_K .. Q6_K) into vectors of one
// unsigned quant per byte, in element order, and the traits of the 32-element blocks with an offset
// (Q4_0, Q4_1, Q5_0, Q5_1), shared by the dot kernels (dot_kernels.cpp) and the panel packer of the
// prompt-processing kernels (gemm_kernels.cpp). Include only from files compiled
// with -mavx2 -mfma -mf16c; like simd_util.h, in the namespace of the ISA being compiled for.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu_fallback/avx2/simd_util.h"
#include "runtime/quant_blocks.h"

namespace xelm::cpu::avx2::XELM_KERNEL_ISA {

// The decoders take pointers to a block's quant fields (qs, qh, ...), so that they also decode the
// interleaved copies of them that the panel kernels keep (gemm_kernels.cpp).

// Q2_K: elements 128*half + 32*shift + l (l < 32) of a block with quants qs into q[shift], values 0..3.
inline void decode_q2_k_half(const uint8_t* qs_bytes, int half, __m256i q[4]) {
  const __m256i qs = load256(qs_bytes + 32 * half);
  for (int shift = 0; shift < 4; ++shift) {
    q[shift] = _mm256_and_si256(shift_right16(qs, 2 * shift), _mm256_set1_epi8(3));
  }
}

// Q3_K: the same elements into q[shift], values 0..7 (value q - 4): two low bits from qs, the third
// from bit 4*half + shift of hmask.
inline void decode_q3_k_half(const uint8_t* hmask_bytes, const uint8_t* qs_bytes, int half, __m256i q[4]) {
  const __m256i qs = load256(qs_bytes + 32 * half), hmask = load256(hmask_bytes);
  for (int shift = 0; shift < 4; ++shift) {
    const __m256i low2 = _mm256_and_si256(shift_right16(qs, 2 * shift), _mm256_set1_epi8(3));
    const __m256i high = _mm256_and_si256(shift_right16(hmask, 4 * half + shift), _mm256_set1_epi8(1));
    q[shift] = _mm256_or_si256(low2, _mm256_slli_epi16(high, 2));
  }
}

// Q3_K's 16 6-bit scales, minus 32, as bytes: the low 4 bits of scale j are nibble j / 8 of byte
// j % 8, the high 2 bits are bits 2 * (j / 4) of byte 8 + j % 4; four at a time in 32-bit words.
inline __m128i unpack_q3_k_scales(const uint8_t* packed) {
  constexpr uint32_t kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t in[3];
  std::memcpy(in, packed, sizeof(in));
  const __m128i scales = _mm_setr_epi32(static_cast<int>((in[0] & kLow4) | ((in[2] & kLow2) << 4)),
                                        static_cast<int>((in[1] & kLow4) | (((in[2] >> 2) & kLow2) << 4)),
                                        static_cast<int>(((in[0] >> 4) & kLow4) | (((in[2] >> 4) & kLow2) << 4)),
                                        static_cast<int>(((in[1] >> 4) & kLow4) | (((in[2] >> 6) & kLow2) << 4)));
  return _mm_sub_epi8(scales, _mm_set1_epi8(32));
}

// Q4_K / Q5_K 6-bit scales and mins of the 8 sub-blocks of 32, as bytes: 0..7 = scales, 8..15 = mins.
// Reads 16 bytes at `packed` (the 12 bytes of scales and 4 bytes after them, still inside a Q4_K /
// Q5_K block). In the 32-bit words in0..in2 of `packed`, bytewise:
//   scales 0-3 = in0 & 0x3f,                  mins 0-3 = in1 & 0x3f,
//   scales 4-7 = in2 & 0x0f | (in0 >> 6) << 4, mins 4-7 = (in2 >> 4) & 0x0f | (in1 >> 6) << 4.
inline __m128i unpack_k_scales_128(const uint8_t* packed) {
  alignas(16) static constexpr uint32_t kShifts[4] = {0, 0, 0, 4};
  alignas(16) static constexpr uint32_t kLowMasks[4] = {0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f};
  alignas(16) static constexpr uint32_t kHighMasks[4] = {0, 0x30303030, 0, 0x30303030};
  auto constant = [](const uint32_t* c) { return _mm_load_si128(reinterpret_cast<const __m128i*>(c)); };
  const __m128i in = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));  // in0 in1 in2 (next)
  const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(in, _MM_SHUFFLE(2, 1, 2, 0)), constant(kShifts));
  const __m128i b = _mm_shuffle_epi32(in, _MM_SHUFFLE(1, 1, 0, 0));
  const __m128i low = _mm_and_si128(a, constant(kLowMasks));
  const __m128i high = _mm_and_si128(_mm_srli_epi32(b, 2), constant(kHighMasks));
  return _mm_or_si128(low, high);
}

// Q4_K (kHighBits = false, quants 0..15; qh unused) and Q5_K (true, 0..31): elements 64p .. 64p+31
// of a block into `low` (sub-block 2p) and 64p+32 .. 64p+63 into `high` (sub-block 2p+1), p < 4.
template <bool kHighBits>
inline void decode_q45_k_pair(const uint8_t* qh_bytes, const uint8_t* qs_bytes, int p, __m256i& low, __m256i& high) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0F);
  const __m256i bytes = load256(qs_bytes + 32 * p);
  low = _mm256_and_si256(bytes, low_nibble);
  high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibble);
  if constexpr (kHighBits) {
    const __m256i qh = load256(qh_bytes);
    const __m256i one = _mm256_set1_epi8(1);
    low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(shift_right16(qh, 2 * p), one), 4));
    high = _mm256_or_si256(high, _mm256_slli_epi16(_mm256_and_si256(shift_right16(qh, 2 * p + 1), one), 4));
  }
}

// Q6_K: elements 128*half + 32c .. +31 of a block into q[c], c < 4, as bytes 0..63 (value q - 32).
inline void decode_q6_k_half(const uint8_t* ql, const uint8_t* qh_bytes, int half, __m256i q[4]) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(3);
  const __m256i ql0 = load256(ql + 64 * half), ql1 = load256(ql + 64 * half + 32);
  const __m256i qh = load256(qh_bytes + 32 * half);
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low_nibble), _mm256_slli_epi16(_mm256_and_si256(qh, two_bits), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low_nibble),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two_bits), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_nibble),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two_bits), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_nibble),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two_bits), 4));
}

// Q4_0, Q4_1, Q5_0, Q5_1: blocks of 32 unsigned quants q (4 or 5 bits) with value d*q + offset, the
// offset -8d (Q4_0), -16d (Q5_0) or the block's m (Q4_1, Q5_1). Traits: Block, kGroupsPerSum
// (4-element groups whose maddubs pair sums stay in int16: kGroupsPerSum * 2 * q_max * 127 < 32768),
// quants(block) (the 32 quants as bytes in element order) and offset(block).
struct Q4_0Offset {
  using Block = quant::block_q4_0;
  static constexpr int kGroupsPerSum = 8;  // 8 * 2*15*127 = 30480
  static __m256i quants(const Block& b) { return unpack_nibbles_16(b.qs); }
  static float offset(const Block& b) { return -8.0f * half_to_float(b.d); }
};
struct Q4_1Offset {
  using Block = quant::block_q4_1;
  static constexpr int kGroupsPerSum = 8;
  static __m256i quants(const Block& b) { return unpack_nibbles_16(b.qs); }
  static float offset(const Block& b) { return half_to_float(b.m); }
};
struct Q5_0Offset {
  using Block = quant::block_q5_0;
  static constexpr int kGroupsPerSum = 4;  // 4 * 2*31*127 = 31496
  static __m256i quants(const Block& b) { return unpack_q5_32(b.qs, b.qh); }
  static float offset(const Block& b) { return -16.0f * half_to_float(b.d); }
};
struct Q5_1Offset {
  using Block = quant::block_q5_1;
  static constexpr int kGroupsPerSum = 4;
  static __m256i quants(const Block& b) { return unpack_q5_32(b.qs, b.qh); }
  static float offset(const Block& b) { return half_to_float(b.m); }
};

}  // namespace xelm::cpu::avx2::XELM_KERNEL_ISA
