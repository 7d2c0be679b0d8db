// dot_kernels.cpp — dot products of one weight row with up to kMaxTileRows activation rows, one
// kernel per weight type. Compiled once per kernel ISA (kernel_isa.h): AVX2, AVX-VNNI, AVX-512 VNNI.
// Products take the panel kernels (gemm_kernels.cpp) for every whole panel of 8 weight rows; these
// serve the rows of a matrix after its last whole panel, and float rows of a width the panels lack.
//
// Quantized weights meet activations quantized to 8 bits (Q8Block32 for the 32-element types, Q8_K
// with per-16 sums for the K-quants; activation_kernels.cpp) and multiply as integers, reduced to
// exact per-block sums and scaled to fp32 once per block by the float steps the panel kernels take
// too (simd_util.h add_block*), bias first and then block by block: an output is the same float
// computation in either kernel and any tile, so batch size does not change it (batch invariance). The integer steps are simd_util.h's dpbusd (u8 × s8, 4 products per int32 lane:
// maddubs + madd on AVX2, vpdpbusd with VNNI) and dpwssd (int16 pair sums × int16 sub-block scales:
// madd + add, or vpdpwssd); the sums are exact, and the float epilogue is the same code for every
// ISA, so the ISAs give bit-identical results. Float weights (F32/F16/BF16) use fp32 FMA.
// Each weight block is decoded once and used for every activation row of the tile. Float weights
// keep lanes = elements (16 partial sums, a horizontal sum, then the bias), an order the panel
// kernels cannot take: their matmuls use the panel kernel for every batch size (avx2_backend.cpp).
#include <algorithm>

#include "cpu_fallback/avx2/kernels.h"
#include "cpu_fallback/avx2/kquant_decode.h"
#include "cpu_fallback/avx2/simd_util.h"
#include "runtime/quant_blocks.h"

namespace xelm::cpu::avx2::XELM_KERNEL_ISA {
namespace {

using namespace xelm::quant;

// ---- Float weights --------------------------------------------------------------------------

template <typename W>
struct FloatKernel {
  template <int NR>
  static void run(const uint8_t* w_row, const uint8_t* x, size_t x_stride, int64_t n, float bias, float* out) {
    const auto* w = reinterpret_cast<const typename W::Elem*>(w_row);
    const float* xr[NR];
    __m256 acc0[NR], acc1[NR];
    for (int r = 0; r < NR; ++r) {
      xr[r] = reinterpret_cast<const float*>(x + r * x_stride);
      acc0[r] = _mm256_setzero_ps();
      acc1[r] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 w0 = W::load8(w + i), w1 = W::load8(w + i + 8);
      for (int r = 0; r < NR; ++r) {
        acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr[r] + i), acc0[r]);
        acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr[r] + i + 8), acc1[r]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      float sum = hsum(_mm256_add_ps(acc0[r], acc1[r]));
      for (int64_t j = i; j < n; ++j) sum += W::scalar(w[j]) * xr[r][j];
      out[r] = sum + bias;
    }
  }
};

// ---- 32-element blocks × Q8Block32 ------------------------------------------------------------
// Per block S = Σ q · a.qs as one exact integer, then add_block (Q8_0, signed quants) or
// add_block_with_offset (the unsigned quants of kquant_decode.h's traits with their offset).

struct Q8_0Signed {
  using Block = block_q8_0;
  static __m256i quants(const Block& b) { return load256(b.qs); }
};

// Blocks are taken 4 at a time, so that one hsum4_epi32 reduces the integer sums of 4 (per row).
template <typename T, bool kSigned>
struct Block32Kernel {
  static constexpr int kGroup = 4;
  template <int NR>
  static void run(const uint8_t* w_row, const uint8_t* x, size_t x_stride, int64_t n, float bias, float* out) {
    const auto* blocks = reinterpret_cast<const typename T::Block*>(w_row);
    const Q8Block32* xb[NR];
    float acc[NR];
    for (int r = 0; r < NR; ++r) {
      xb[r] = reinterpret_cast<const Q8Block32*>(x + r * x_stride);
      acc[r] = bias;
    }
    const int64_t n_blocks = n / 32;
    for (int64_t i0 = 0; i0 < n_blocks; i0 += kGroup) {
      const int group = static_cast<int>(std::min<int64_t>(kGroup, n_blocks - i0));
      __m256i dots[NR][kGroup];  // [row][block of the group]: int32 lanes of Σ q · a.qs
      float d[kGroup] = {}, off[kGroup] = {};
      for (int k = 0; k < kGroup; ++k) {
        if (k >= group) {
          for (int r = 0; r < NR; ++r) dots[r][k] = _mm256_setzero_si256();
          continue;
        }
        const typename T::Block& b = blocks[i0 + k];
        const __m256i q = T::quants(b);
        d[k] = half_to_float(b.d);
        if constexpr (!kSigned) off[k] = T::offset(b);
        // Signed × signed goes through |q| × (x with q's sign), computed once per block.
        const __m256i q_u8 = kSigned ? _mm256_sign_epi8(q, q) : q;
        for (int r = 0; r < NR; ++r) {
          const __m256i xq = load256(xb[r][i0 + k].qs);
          dots[r][k] = dot_u8s8(q_u8, kSigned ? _mm256_sign_epi8(xq, q) : xq);
        }
      }
      for (int r = 0; r < NR; ++r) {
        alignas(16) float s[kGroup];
        _mm_store_ps(s, _mm_cvtepi32_ps(hsum4_epi32(dots[r])));
        for (int k = 0; k < group; ++k) {
          const Q8Block32& a = xb[r][i0 + k];
          if constexpr (kSigned) {
            acc[r] = add_block(acc[r], s[k], d[k], a.d);
          } else {
            acc[r] = add_block_with_offset(acc[r], s[k], d[k], a.d, off[k], a.s);
          }
        }
      }
    }
    for (int r = 0; r < NR; ++r) out[r] = acc[r];
  }
};

// ---- K-quants × Q8_K ------------------------------------------------------------------------

// pshufb masks that fill the low 128-bit half of a vector with its int16 lane `low` and the high half
// with lane `high` (lanes counted within a half): with both halves of the source holding the same 8
// scales, one shuffle gives the scale vector of a 32-byte chunk. As tables, so that the shuffles take
// them from memory (GCC rebuilds computed constants inside the loop when registers run short).
struct Int16BroadcastMasks {
  alignas(32) uint8_t bytes[8][32];
  // Mask k: lane `k` in both halves (broadcast), or, for the pairs, lanes 2k, 2k+1.
  static constexpr Int16BroadcastMasks make(bool pairs) {
    Int16BroadcastMasks m{};
    for (int k = 0; k < 8; ++k) {
      for (int byte = 0; byte < 32; ++byte) {
        const int lane = pairs ? (byte < 16 ? 2 * k : 2 * k + 1) % 8 : k;
        m.bytes[k][byte] = static_cast<uint8_t>(2 * lane + byte % 2);
      }
    }
    return m;
  }
  __m256i operator[](int k) const { return load256(bytes[k]); }
};
constexpr Int16BroadcastMasks kBroadcastLane = Int16BroadcastMasks::make(false);
constexpr Int16BroadcastMasks kBroadcastPair = Int16BroadcastMasks::make(true);

// The K-quant kernels below are written per block: Step::accumulate<NR>(block, xb, acc) adds the
// products of one weight block with block i of NR activation rows (xb[r] points at it) to acc[r];
// KQuantKernel<Step> walks the blocks of a weight row.

// sumi[r] += Σ_j scale_j · Σ_{k in sub-block j} q_k x_k for a block of 16 sub-blocks of 16 (Q2_K,
// Q3_K, Q6_K): decode_half(half, q) gives elements 128*half + 32c .. +31 in q[c]; scales16 holds the
// 16 scales as int16. Each 32-byte chunk spans two sub-blocks, and its scale vector is one shuffle of
// the half of the scales it falls in.
template <int NR, typename DecodeHalf>
inline void accumulate_16_sub_blocks(DecodeHalf decode_half, __m256i scales16, const block_q8_K* const xb[NR],
                                     __m256i sumi[NR]) {
  for (int half = 0; half < 2; ++half) {
    __m256i q[4];
    decode_half(half, q);
    // (Two calls: the selector must be an immediate even in unoptimised builds.)
    const __m256i half_scales = half == 0 ? _mm256_permute2x128_si256(scales16, scales16, 0x00)
                                          : _mm256_permute2x128_si256(scales16, scales16, 0x11);
    for (int c = 0; c < 4; ++c) {
      const __m256i sc = _mm256_shuffle_epi8(half_scales, kBroadcastPair[c]);
      for (int r = 0; r < NR; ++r) {  // q <= 63: the maddubs pair sums are exact
        const __m256i prod = _mm256_maddubs_epi16(q[c], load256(xb[r]->qs + 128 * half + 32 * c));
        sumi[r] = dpwssd(sumi[r], prod, sc);
      }
    }
  }
}

// Q2_K, Q4_K and Q5_K: acc += d * sumi - dmin * Σ_j m_j * bsum_j (add_block_with_correction), with
// mins16 the min of each of the 16 bsums (Q4_K/Q5_K's 8 mins duplicated).
template <int NR>
inline void accumulate_min_block(__m256i sumi[NR], __m256i mins16, float d, float dmin, const block_q8_K* const xb[NR],
                                 float acc[NR]) {
  for (int r = 0; r < NR; ++r) {
    const __m128 sums = hsum2_epi32_ps(sumi[r], _mm256_madd_epi16(load256(xb[r]->bsums), mins16));
    acc[r] = add_block_with_correction(acc[r], _mm_cvtss_f32(sums), d, xb[r]->d,
                                       _mm_cvtss_f32(_mm_movehdup_ps(sums)), dmin);
  }
}

struct Q2_KStep {
  using Block = block_q2_K;
  template <int NR>
  static void accumulate(const Block& b, const block_q8_K* const xb[NR], float acc[NR]) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    const __m256i scales16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0F)));
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    accumulate_16_sub_blocks<NR>([&](int half, __m256i q[4]) { decode_q2_k_half(b.qs, half, q); }, scales16, xb, sumi);
    accumulate_min_block<NR>(sumi, mins16, half_to_float(b.d), half_to_float(b.dmin), xb, acc);
  }
};

// Q3_K and Q6_K store q + offset (4 and 32): the offset's share is offset * Σ_j s_j * bsum_j, the
// correction of add_block_with_correction (coefficient d).
template <int kOffsetShift, int NR>
inline void accumulate_offset_block(__m256i sumi[NR], __m256i scales16, float d, const block_q8_K* const xb[NR],
                                    float acc[NR]) {
  for (int r = 0; r < NR; ++r) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(xb[r]->bsums), scales16), kOffsetShift);
    const __m128 sums = hsum2_epi32_ps(sumi[r], offset);
    acc[r] = add_block_with_correction(acc[r], _mm_cvtss_f32(sums), d, xb[r]->d,
                                       _mm_cvtss_f32(_mm_movehdup_ps(sums)), d);
  }
}

struct Q3_KStep {
  using Block = block_q3_K;
  template <int NR>
  static void accumulate(const Block& b, const block_q8_K* const xb[NR], float acc[NR]) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(unpack_q3_k_scales(b.scales));  // s_j - 32
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    // q in 0..7, value q - 4
    accumulate_16_sub_blocks<NR>([&](int half, __m256i q[4]) { decode_q3_k_half(b.hmask, b.qs, half, q); }, scales16, xb, sumi);
    accumulate_offset_block<2, NR>(sumi, scales16, half_to_float(b.d), xb, acc);
  }
};

// Q4_K (kHighBits = false) and Q5_K (true): 8 sub-blocks of 32, x = d*sc*q - dmin*m. The 8 scales
// are widened to int16 once per block and each sub-block's scale vector is one shuffle of them; the
// mins meet the Q8_K bsums (sums of 16 activations) in one madd, against each min duplicated.
template <typename BlockType, bool kHighBits>
struct Q45_KStep {
  using Block = BlockType;
  static const uint8_t* high_bits(const Block& b) {
    if constexpr (kHighBits) {
      return b.qh;
    } else {
      return nullptr;
    }
  }
  template <int NR>
  static void accumulate(const Block& b, const block_q8_K* const xb[NR], float acc[NR]) {
    // Bytes 8..15 of the unpacked scales (the mins) as m0 m0 m1 m1 ... m7 m7.
    const __m128i duplicate_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    const __m128i scales_mins = unpack_k_scales_128(b.scales);  // scales 0..7, mins 0..7, one byte each
    const __m256i scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales_mins));  // sc0..sc7 in each half
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scales_mins, duplicate_mins));
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {  // elements 64p .. 64p+63: sub-blocks 2p (low nibbles), 2p+1 (high)
      __m256i low, high;
      decode_q45_k_pair<kHighBits>(high_bits(b), b.qs, p, low, high);
      const __m256i scale_low = _mm256_shuffle_epi8(scales16, kBroadcastLane[2 * p]);
      const __m256i scale_high = _mm256_shuffle_epi8(scales16, kBroadcastLane[2 * p + 1]);
      for (int r = 0; r < NR; ++r) {
        const int8_t* xq = xb[r]->qs + 64 * p;
        sumi[r] = dpwssd(sumi[r], _mm256_maddubs_epi16(low, load256(xq)), scale_low);  // q <= 31: exact
        sumi[r] = dpwssd(sumi[r], _mm256_maddubs_epi16(high, load256(xq + 32)), scale_high);
      }
    }
    accumulate_min_block<NR>(sumi, mins16, half_to_float(b.d), half_to_float(b.dmin), xb, acc);
  }
};

// Q6_K: 16 sub-blocks of 16, x = d*s_j*(q - 32).
struct Q6_KStep {
  using Block = block_q6_K;
  template <int NR>
  static void accumulate(const Block& b, const block_q8_K* const xb[NR], float acc[NR]) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    __m256i sumi[NR];
    for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    // q in 0..63, value q - 32
    accumulate_16_sub_blocks<NR>([&](int half, __m256i q[4]) { decode_q6_k_half(b.ql, b.qh, half, q); }, scales16, xb, sumi);
    accumulate_offset_block<5, NR>(sumi, scales16, half_to_float(b.d), xb, acc);
  }
};

template <typename Step>
struct KQuantKernel {
  template <int NR>
  static void run(const uint8_t* w_row, const uint8_t* x, size_t x_stride, int64_t n, float bias, float* out) {
    const auto* blocks = reinterpret_cast<const typename Step::Block*>(w_row);
    const block_q8_K* x_rows[NR];
    float acc[NR];
    for (int r = 0; r < NR; ++r) {
      x_rows[r] = reinterpret_cast<const block_q8_K*>(x + r * x_stride);
      acc[r] = bias;
    }
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q8_K* xb[NR];
      for (int r = 0; r < NR; ++r) xb[r] = x_rows[r] + i;
      Step::template accumulate<NR>(blocks[i], xb, acc);
    }
    for (int r = 0; r < NR; ++r) out[r] = acc[r];
  }
};

// Picks the compile-time tile height for a runtime row count.
template <typename Kernel>
void dispatch_rows(const uint8_t* w_row, const uint8_t* x, size_t x_stride, int n_rows, int64_t n, float bias,
                   float* out) {
  static_assert(kMaxTileRows == 4);
  switch (n_rows) {
    case 1: Kernel::template run<1>(w_row, x, x_stride, n, bias, out); break;
    case 2: Kernel::template run<2>(w_row, x, x_stride, n, bias, out); break;
    case 3: Kernel::template run<3>(w_row, x, x_stride, n, bias, out); break;
    default: Kernel::template run<4>(w_row, x, x_stride, n, bias, out); break;
  }
}

}  // namespace

DotKernel dot_kernel(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: return &dispatch_rows<FloatKernel<F32Weights>>;
    case GgmlType::F16: return &dispatch_rows<FloatKernel<F16Weights>>;
    case GgmlType::BF16: return &dispatch_rows<FloatKernel<BF16Weights>>;
    case GgmlType::Q4_0: return &dispatch_rows<Block32Kernel<Q4_0Offset, false>>;
    case GgmlType::Q4_1: return &dispatch_rows<Block32Kernel<Q4_1Offset, false>>;
    case GgmlType::Q5_0: return &dispatch_rows<Block32Kernel<Q5_0Offset, false>>;
    case GgmlType::Q5_1: return &dispatch_rows<Block32Kernel<Q5_1Offset, false>>;
    case GgmlType::Q8_0: return &dispatch_rows<Block32Kernel<Q8_0Signed, true>>;
    case GgmlType::Q2_K: return &dispatch_rows<KQuantKernel<Q2_KStep>>;
    case GgmlType::Q3_K: return &dispatch_rows<KQuantKernel<Q3_KStep>>;
    case GgmlType::Q4_K: return &dispatch_rows<KQuantKernel<Q45_KStep<block_q4_K, false>>>;
    case GgmlType::Q5_K: return &dispatch_rows<KQuantKernel<Q45_KStep<block_q5_K, true>>>;
    case GgmlType::Q6_K: return &dispatch_rows<KQuantKernel<Q6_KStep>>;
    default: return nullptr;
  }
}

}  // namespace xelm::cpu::avx2::XELM_KERNEL_ISA
