// activation_kernels.cpp — AVX2 preparation of activation rows for the integer products of the
// product kernels (8-bit quantization to Q8Block32 / Q8_K, shared by every ISA's kernels, so compiled
// once) and fp32 <-> fp16 row conversion (F16C).
#include <cstring>

#include "cpu_fallback/avx2/kernels.h"
#include "cpu_fallback/avx2/simd_util.h"
#include "runtime/quant_blocks.h"

namespace xelm::cpu::avx2 {
namespace {

using namespace xelm::quant;

// Symmetric 8-bit quantization of n values (a multiple of 32): returns d with x ≈ d * q,
// q = round-to-nearest-even(x * 127 / amax), |q| <= 127.
inline float quantize_symmetric(const float* x, int8_t* q, int n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 amax8 = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) amax8 = _mm256_max_ps(amax8, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float amax = _mm_cvtss_f32(m);
  const __m256 inv_d = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
  // packs interleave 128-bit lanes; this permutation restores element order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int i = 0; i < n; i += 32) {
    __m256i v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), inv_d));
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(bytes, order));
  }
  return amax / 127.0f;
}

// Sum of 16 signed bytes: biased to unsigned, summed by psadbw, bias removed.
inline int sum16(const int8_t* q) {
  const __m128i biased = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), _mm_set1_epi8(-128));
  const __m128i sums = _mm_sad_epu8(biased, _mm_setzero_si128());
  return _mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4) - 16 * 128;
}

}  // namespace

ActivationFormat activation_format(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
      return ActivationFormat::Q8Block32;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return ActivationFormat::Q8K;
    default:
      return ActivationFormat::F32;
  }
}

size_t activation_row_bytes(ActivationFormat format, int64_t n) {
  switch (format) {
    case ActivationFormat::Q8Block32: return static_cast<size_t>(n / 32) * sizeof(Q8Block32);
    case ActivationFormat::Q8K: return static_cast<size_t>(n / QK_K) * sizeof(block_q8_K);
    case ActivationFormat::F32: break;
  }
  return static_cast<size_t>(n) * sizeof(float);
}

void quantize_activation_row(ActivationFormat format, const float* x, void* dst, int64_t n) {
  switch (format) {
    case ActivationFormat::F32:
      std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case ActivationFormat::Q8Block32: {
      auto* blocks = static_cast<Q8Block32*>(dst);
      for (int64_t i = 0; i < n / 32; ++i) {
        Q8Block32& b = blocks[i];
        b.d = quantize_symmetric(x + 32 * i, b.qs, 32);
        b.s = b.d * static_cast<float>(sum16(b.qs) + sum16(b.qs + 16));
      }
      return;
    }
    case ActivationFormat::Q8K: {
      auto* blocks = static_cast<block_q8_K*>(dst);
      for (int64_t i = 0; i < n / QK_K; ++i) {
        block_q8_K& b = blocks[i];
        b.d = quantize_symmetric(x + QK_K * i, b.qs, QK_K);
        for (int j = 0; j < QK_K / 16; ++j) b.bsums[j] = static_cast<int16_t>(sum16(b.qs + 16 * j));
      }
      return;
    }
  }
}

void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, half_to_float8(src + i));
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

}  // namespace xelm::cpu::avx2
