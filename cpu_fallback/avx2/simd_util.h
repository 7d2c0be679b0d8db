// simd_util.h — small AVX2 helpers shared by the kernel files of cpu_fallback/avx2/ (include only
// from files compiled with -mavx2 -mfma -mf16c), among them the integer dot steps that the VNNI
// builds of the product kernels turn into one instruction (dpbusd, dpwssd). Everything here lives in
// the namespace of the ISA the including file is compiled for (kernel_isa.h).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu_fallback/avx2/kernel_isa.h"

namespace xelm::cpu::avx2::XELM_KERNEL_ISA {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for 8 floats (Cephes' expf: range reduction by ln 2, degree-5 polynomial; about 1 ulp).
// Inputs below -87.3 give 0, above 88.3 are clamped; meant for softmax, where x <= 0.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  // x = n ln2 + r, |r| <= ln2 / 2; ln2 split in two parts so that n * ln2 stays exact.
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n built in the exponent field; n = -127 (inputs near the lower clamp) gives 0.
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

inline __m256 half_to_float8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Float weight element types: 8 consecutive elements as fp32 (load8) and one (scalar).
struct F32Weights {
  using Elem = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float scalar(float v) { return v; }
};
struct F16Weights {
  using Elem = uint16_t;
  static __m256 load8(const uint16_t* p) { return half_to_float8(p); }
  static float scalar(uint16_t v) { return half_to_float(v); }
};
struct BF16Weights {
  using Elem = uint16_t;
  static __m256 load8(const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float scalar(uint16_t v) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
};

// Logical right shift of each 16-bit lane by a run-time bit count.
inline __m256i shift_right16(__m256i v, int bits) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(bits)); }

// 16 packed nibble bytes -> 32 bytes: low nibbles first (elements 0..15), then high (16..31).
inline __m256i unpack_nibbles_16(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0F));
  return _mm256_set_m128i(high, low);
}

// Bit j of the little-endian uint32 at p -> byte j = 0xFF if set, 0 otherwise.
inline __m256i bytes_from_bits_32(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i with_other_bits = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(with_other_bits, _mm256_set1_epi64x(-1));
}

// The 32 unsigned 5-bit quants of a Q5_0 / Q5_1 block in element order: the nibbles of qs, plus 16
// where bit j of qh is set.
inline __m256i unpack_q5_32(const uint8_t* qs, const uint8_t* qh) {
  return _mm256_or_si256(unpack_nibbles_16(qs), _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10)));
}

// ---- Integer dot steps: one instruction with VNNI (AVX-VNNI's VEX or AVX-512's EVEX vpdpbusd /
// vpdpwssd on ymm), two or three with AVX2. Integer sums are exact, so every ISA's kernels give the
// same sums, and with the same float epilogue bit-identical results.
inline constexpr bool kVnni = XELM_KERNEL_VNNI != 0;

// acc + per int32 lane the sum of the 4 products of the unsigned bytes of u with the signed bytes of s.
// AVX2 computes it as maddubs + madd, and maddubs saturates each pair of products to int16: it is
// exact only while |u_2k*s_2k + u_2k+1*s_2k+1| <= 32767. Every caller's ranges guarantee that (the
// activations are |s| <= 127, the weights u <= 128: 2*128*127 = 32512); vpdpbusd never saturates,
// so within those ranges both give the same sums.
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// acc + per int32 lane the sum of the 2 products of the int16 lanes of a and b (madd + add).
inline __m256i dpwssd(__m256i acc, __m256i a, __m256i b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, a, b);
#elif defined(__AVXVNNI__)
  return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// Pairwise sums of unsigned(u) * signed(s) bytes, widened to 8 int32 lanes (see dpbusd).
inline __m256i dot_u8s8(__m256i u, __m256i s) { return dpbusd(_mm256_setzero_si256(), u, s); }

// [Σ lanes of v[0], ..., Σ lanes of v[3]] (exact, modulo 2^32 like every integer step here).
inline __m128i hsum4_epi32(const __m256i v[4]) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// [Σ lanes of a, Σ lanes of b] as floats in lanes 0 and 1 (integer sums exact, then converted).
inline __m128 hsum2_epi32_ps(__m256i a, __m256i b) {
  const __m256i h = _mm256_hadd_epi32(a, b);
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  return _mm_cvtepi32_ps(_mm_hadd_epi32(s, s));
}

// ---- The float steps of one block of a quantized product (batch invariance) -------------------
// The dot kernels (one output at a time, V = float) and the panel kernels (8 outputs in the lanes of
// a vector, V = __m256) reduce a block to exact integer sums s (and c), then take these steps, so
// that every output of a product is the same float computation, bias first and then block by
// block, whichever kernel and tile computes it: a row's result never depends on the other rows of
// its batch. Scalar and vector fma/mul round alike (one rounding each), as do the int -> float
// conversions.
inline float fmadd(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}
inline float fnmadd(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fnmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}
inline float mul(float a, float b) { return a * b; }
inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256 fnmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fnmadd_ps(a, b, c); }
inline __m256 mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }

// acc + s·(d·dx): a block of scale d (Q8_0), dx the activation block's scale.
template <typename V>
inline V add_block(V acc, V s, V d, V dx) {
  return fmadd(s, mul(d, dx), acc);
}
// acc + (s·(d·dx) + off·sx): a block with an offset (Q4_0, Q4_1, Q5_0, Q5_1), sx = dx·Σ activation
// quants. The block's value first, so that a chain of blocks waits for one add per block.
template <typename V>
inline V add_block_with_offset(V acc, V s, V d, V dx, V off, V sx) {
  return acc + fmadd(s, mul(d, dx), mul(off, sx));
}
// acc + s·(d·dx) - c·(coef·dx): a K-quant block, c its correction sum (mins or offsets × bsums).
template <typename V>
inline V add_block_with_correction(V acc, V s, V d, V dx, V c, V coef) {
  return fnmadd(c, mul(coef, dx), add_block(acc, s, d, dx));
}

}  // namespace xelm::cpu::avx2::XELM_KERNEL_ISA

namespace xelm::cpu::avx2 {
using namespace XELM_KERNEL_ISA;
}  // namespace xelm::cpu::avx2
