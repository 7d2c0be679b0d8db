// k_quants.cpp — scalar reference (de)quantizers for ggml's K-quants (Q2_K .. Q6_K) and Q8_K.
//
// The quantizers reproduce ggml's quantize_row_q{2..6}_K_ref and quantize_row_q8_K_ref (no importance
// matrix) bit for bit. That needs the same fp32 operations in the same order: products such as
// w*x*l are evaluated left to right exactly as written, integers are converted to float where ggml's
// C expressions convert them, and rounding to int uses nearest_int (the 1.5*2^23 trick). Each
// super-block is quantized in two passes: a per-sub-block scale search (make_* helpers), then the
// sub-block scales are themselves quantized and the codes recomputed against the quantized scales.
// Layouts: quant_blocks.h.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/ggml_types.h"
#include "runtime/quant_blocks.h"
#include "runtime/quants/quants_internal.h"

// Keep a*b+c as two roundings, as in ggml's reference (GCC in ISO C++ mode already does not contract).
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace xelm::quant {
namespace {

// Blocks whose largest magnitude is below this are treated as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |v| <= 2^22 - 1: adding 1.5 * 2^23 leaves the rounded integer in
// the low mantissa bits. Identical to ggml's nearest_int (not to lroundf, which rounds ties away).
int nearest_int(float v) {
  const float biased = v + 12582912.0f;
  const int32_t bits = std::bit_cast<int32_t>(biased);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// The element of largest magnitude (first one on ties), keeping its sign.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Symmetric scale search (ggml's make_qx_quants with rmse_type 1, no importance weights): codes
// L[i] in [0, 2*nmax) for x ~ scale * (L[i] - nmax). Tries iscale = -(nmax + 0.1*is) / max for
// is = -9..9 and keeps the one maximising (sum w x l)^2 / (sum w l^2) with weights w = x^2.
// Returns the least-squares scale for the chosen codes (0 and all codes 0 for an all-zero group).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = 0.0f;
    suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = static_cast<int8_t>(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric 3-bit scale search (ggml's make_q3_quants with do_rmse): start from the absmax scale, then
// up to 5 sweeps of coordinate descent, moving one code at a time when that raises
// (sum w x l)^2 / (sum w l^2), w = x^2. Codes L[i] in [0, 2*nmax); returns the least-squares scale.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);  // signed code during the search
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0.0f) {
        float sl2 = suml2 - w * li * li;
        const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const float nl = static_cast<float>(new_l);
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Parameters of the asymmetric scale search: iscale candidates (rmin + rdelta*is + nmax) / (max - min)
// for is = 0..nstep; use_mad selects weighted absolute (true) or squared (false) error.
struct QkxSearch {
  float rmin;
  float rdelta;
  int nstep;
  bool use_mad;
};

// Asymmetric scale search (ggml's make_qkx2_quants): x ~ scale * L[i] - the_min with codes L[i] in
// [0, nmax] and the_min >= 0. For each candidate iscale, codes are rounded and (scale, min) refit by
// weighted least squares; the candidate with the least weighted error wins. Returns scale.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       const QkxSearch& p) {
  uint8_t Laux[32];  // codes of the current candidate (n <= 32)
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *the_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::clamp(l, 0, nmax));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = p.use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= p.nstep; ++is) {
    iscale = (p.rmin + p.rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float lf = static_cast<float>(l);
      sum_l += w * lf;
      sum_l2 += w * lf * lf;
      sum_xl += w * lf * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = p.use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// 6-bit scale and min of sub-block j (0..7) from the packed 12-byte field of Q4_K / Q5_K.
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4);
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | (q[j] >> 6) << 4);
  }
}

// Packs 6-bit scales ls[8] and mins lm[8] into the 12-byte Q4_K / Q5_K field (inverse of the above).
void pack_scale_min_k4(const uint8_t ls[8], const uint8_t lm[8], uint8_t* q) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0x0F) | (lm[j] & 0x0F) << 4);
      q[j - 4] = static_cast<uint8_t>(q[j - 4] | (ls[j] >> 4) << 6);
      q[j] = static_cast<uint8_t>(q[j] | (lm[j] >> 4) << 6);
    }
  }
}

// Packs 2-bit codes L[256] into qs[64] the Q2_K / Q3_K way: per 128 elements, byte l holds elements
// l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
  }
}

// 6-bit scale of sub-block j (0..15) of a Q3_K block, minus its bias of 32.
int q3_K_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? scales[j] & 0x0F : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | high << 4) - 32;
}

// Asymmetric K-quant (Q4_K / Q5_K) first pass: per 32-element sub-block, weights w = rms + |x| and
// make_qkx2_quants. Fills codes L[256], scales[8] and mins[8].
void search_qkx_sub_blocks(const float* x, int nmax, const QkxSearch& p, uint8_t* L, float* scales,
                           float* mins) {
  float weights[32];
  for (int j = 0; j < QK_K / 32; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], p);
  }
}

// Q4_K / Q5_K second pass: quantizes scales and mins to 6 bits against their maxima, stores them and the
// fp16 super-scales, then recomputes codes L (0..nmax) from the stored (quantized) values.
void quantize_scales_k4(const float* x, int nmax, const float* scales, const float* mins, uint8_t* L,
                        half_bits* d_out, half_bits* dmin_out, uint8_t* packed) {
  float max_scale = 0.0f;  // scales are positive as the min is subtracted
  float max_min = 0.0f;
  for (int j = 0; j < QK_K / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  uint8_t ls[8];
  uint8_t lm[8];
  for (int j = 0; j < QK_K / 32; ++j) {
    // ggml stores nearest_int into a uint8_t before capping at 63; keep that wrap-around.
    ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
  }
  pack_scale_min_k4(ls, lm, packed);
  *d_out = fp32_to_fp16(max_scale / 63.0f);
  *dmin_out = fp32_to_fp16(max_min / 63.0f);

  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc;
    uint8_t m;
    get_scale_min_k4(j, packed, &sc, &m);
    const float d = fp16_to_fp32(*d_out) * static_cast<float>(sc);
    if (d == 0.0f) continue;  // keep the first-pass codes
    const float dm = fp16_to_fp32(*dmin_out) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::clamp(l, 0, nmax));
    }
  }
}

}  // namespace

// ---- dequantize -----------------------------------------------------------------------------------

void dequantize_q2_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q2_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
      const int half = e / 128;
      const int l = e % 32;
      const int shift = 2 * ((e % 128) / 32);
      const uint8_t sc = b.scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0x0F);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const int q = (b.qs[32 * half + l] >> shift) & 3;
      *dst++ = dl * static_cast<float>(q) - ml;
    }
  }
}

void dequantize_q3_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q3_K>(src, i);
    const float d_all = fp16_to_fp32(b.d);
    for (int e = 0; e < QK_K; ++e) {
      const int half = e / 128;
      const int l = e % 32;
      const int shift = 2 * ((e % 128) / 32);
      const float dl = d_all * static_cast<float>(q3_K_scale(b.scales, e / 16));
      const int low = (b.qs[32 * half + l] >> shift) & 3;
      const bool high = (b.hmask[l] >> (e / 32)) & 1;
      *dst++ = dl * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}

void dequantize_q4_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q4_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int j = 0; j < QK_K / 32; ++j) {  // sub-block j: 32 elements
      uint8_t sc;
      uint8_t m;
      get_scale_min_k4(j, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      const uint8_t* q = b.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) *dst++ = d1 * static_cast<float>((q[l] >> shift) & 0x0F) - m1;
    }
  }
}

void dequantize_q5_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q5_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc;
      uint8_t m;
      get_scale_min_k4(j, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      const uint8_t* ql = b.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        const int q = ((ql[l] >> shift) & 0x0F) + (((b.qh[l] >> j) & 1) ? 16 : 0);
        *dst++ = d1 * static_cast<float>(q) - m1;
      }
    }
  }
}

void dequantize_q6_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q6_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < QK_K; ++e) {
      const int half = e / 128;
      const int quarter = (e % 128) / 32;  // which of the four 32-element runs of this half
      const int l = e % 32;
      const uint8_t ql = b.ql[64 * half + l + 32 * (quarter % 2)];
      const int low = quarter < 2 ? ql & 0x0F : ql >> 4;
      const int high = (b.qh[32 * half + l] >> (2 * quarter)) & 3;
      const int q = (low | high << 4) - 32;
      *dst++ = d * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q);
    }
  }
}

void dequantize_q8_K(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) {
    const auto b = load_block<block_q8_K>(src, i);
    for (int j = 0; j < QK_K; ++j) *dst++ = b.d * static_cast<float>(b.qs[j]);
  }
}

// ---- quantize ------------------------------------------------------------------------------------

// Q2_K: per 16-element sub-block an asymmetric 2-bit fit (weights |x|, absolute error), then 4-bit
// scales and mins relative to their maxima (super-scales d = max_scale/15, dmin = max_min/15).
void quantize_q2_K(const float* src, void* dst, int64_t nblocks) {
  constexpr QkxSearch kSearch{-0.5f, 0.1f, 15, true};
  constexpr float q4scale = 15.0f;
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    uint8_t L[QK_K];
    float scales[QK_K / 16];
    float mins[QK_K / 16];
    float weights[16];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(src[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], kSearch);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }

    block_q2_K b{};
    if (max_scale > 0.0f) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      b.d = fp32_to_fp16(max_scale / q4scale);
    } else {
      b.d = fp32_to_fp16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) {
        b.scales[j] = static_cast<uint8_t>(b.scales[j] | nearest_int(iscale * mins[j]) << 4);
      }
      b.dmin = fp32_to_fp16(max_min / q4scale);
    } else {
      b.dmin = fp32_to_fp16(0.0f);
    }

    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(b.d) * static_cast<float>(b.scales[j] & 0x0F);
      if (d == 0.0f) continue;  // keep the first-pass codes
      const float dm = fp16_to_fp32(b.dmin) * static_cast<float>(b.scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((src[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(std::clamp(l, 0, 3));
      }
    }
    pack_2bit(L, b.qs);
    store_block(dst, i, b);
  }
}

// Q3_K: per 16-element sub-block a symmetric 3-bit fit (make_q3_quants), then signed 6-bit scales
// relative to the scale of largest magnitude (d = -max_scale/32, so that one maps to -32).
void quantize_q3_K(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0.0f;
    float amax = 0.0f;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, src + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }

    block_q3_K b{};
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        // ggml narrows nearest_int to int8_t before clamping; the value is within [-32, 32] here.
        const int l = std::clamp<int>(static_cast<int8_t>(nearest_int(iscale * scales[j])), -32, 31) + 32;
        if (j < 8) {
          b.scales[j] = static_cast<uint8_t>(l & 0x0F);
        } else {
          b.scales[j - 8] = static_cast<uint8_t>(b.scales[j - 8] | (l & 0x0F) << 4);
        }
        b.scales[j % 4 + 8] = static_cast<uint8_t>(b.scales[j % 4 + 8] | (l >> 4) << (2 * (j / 4)));
      }
      b.d = fp32_to_fp16(1.0f / iscale);
    } else {
      b.d = fp32_to_fp16(0.0f);
    }

    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(b.d) * static_cast<float>(q3_K_scale(b.scales, j));
      if (d == 0.0f) continue;  // keep the first-pass codes
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(src[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::clamp(l, -4, 3) + 4);
      }
    }

    // Codes 4..7 set the high bit: element e goes to bit e/32 of hmask[e%32]; the low two bits are
    // packed like Q2_K.
    uint8_t low[QK_K];
    for (int e = 0; e < QK_K; ++e) {
      const int code = L[e];
      if (code > 3) b.hmask[e % 32] = static_cast<uint8_t>(b.hmask[e % 32] | 1u << (e / 32));
      low[e] = static_cast<uint8_t>(code > 3 ? code - 4 : code);
    }
    pack_2bit(low, b.qs);
    store_block(dst, i, b);
  }
}

// Q4_K: per 32-element sub-block an asymmetric 4-bit fit (weights rms + |x|, squared error), then
// 6-bit scales and mins.
void quantize_q4_K(const float* src, void* dst, int64_t nblocks) {
  constexpr QkxSearch kSearch{-1.0f, 0.1f, 20, false};
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    uint8_t L[QK_K];
    float scales[QK_K / 32];
    float mins[QK_K / 32];
    search_qkx_sub_blocks(src, 15, kSearch, L, scales, mins);

    block_q4_K b{};
    quantize_scales_k4(src, 15, scales, mins, L, &b.d, &b.dmin, b.scales);
    // Per 64 elements 32 bytes: element l in the low nibble, element l+32 in the high nibble.
    for (int j = 0; j < QK_K; j += 64) {
      for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | L[j + l + 32] << 4);
    }
    store_block(dst, i, b);
  }
}

// Q5_K: as Q4_K with 5-bit codes (search rmin -0.5, 15 steps); bit 4 goes to qh.
void quantize_q5_K(const float* src, void* dst, int64_t nblocks) {
  constexpr QkxSearch kSearch{-0.5f, 0.1f, 15, false};
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    uint8_t L[QK_K];
    float scales[QK_K / 32];
    float mins[QK_K / 32];
    search_qkx_sub_blocks(src, 31, kSearch, L, scales, mins);

    block_q5_K b{};
    quantize_scales_k4(src, 31, scales, mins, L, &b.d, &b.dmin, b.scales);
    for (int p = 0; p < QK_K / 64; ++p) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * p + l];
        const int hi = L[64 * p + l + 32];
        b.qs[32 * p + l] = static_cast<uint8_t>((lo & 0x0F) | (hi & 0x0F) << 4);
        b.qh[l] = static_cast<uint8_t>(b.qh[l] | (lo >> 4) << (2 * p) | (hi >> 4) << (2 * p + 1));
      }
    }
    store_block(dst, i, b);
  }
}

// Q6_K: per 16-element sub-block a symmetric 6-bit fit (make_qx_quants), then int8 scales relative to
// the scale of largest magnitude (d = -max_scale/128). An all-zero super-block is stored as zeros.
void quantize_q6_K(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      scales[ib] = make_qx_quants(16, 32, src + 16 * ib, L + 16 * ib);
      const float abs_scale = std::fabs(scales[ib]);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scales[ib];
      }
    }

    block_q6_K b{};
    if (max_abs_scale < kGroupMaxEps) {
      store_block(dst, i, b);
      continue;
    }
    const float iscale = -128.0f / max_scale;
    b.d = fp32_to_fp16(1.0f / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      b.scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    }

    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(b.d) * static_cast<float>(b.scales[j]);
      if (d == 0.0f) continue;  // keep the first-pass codes
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(src[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::clamp(l, -32, 31) + 32);
      }
    }

    for (int half = 0; half < 2; ++half) {
      const int8_t* Lh = L + 128 * half;
      uint8_t* ql = b.ql + 64 * half;
      uint8_t* qh = b.qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        const int q1 = Lh[l];
        const int q2 = Lh[l + 32];
        const int q3 = Lh[l + 64];
        const int q4 = Lh[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0x0F) | (q3 & 0x0F) << 4);
        ql[l + 32] = static_cast<uint8_t>((q2 & 0x0F) | (q4 & 0x0F) << 4);
        qh[l] = static_cast<uint8_t>(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
      }
    }
    store_block(dst, i, b);
  }
}

// Q8_K: d = -max/127 in fp32 (max the signed absmax), codes nearest_int(x / d) capped at 127, and
// bsums the per-16 sums of codes. An all-zero block is stored as zeros (ggml leaves bsums unset there).
void quantize_q8_K(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK_K) {
    block_q8_K b{};
    const float max = signed_absmax(src, QK_K);
    if (max != 0.0f) {
      const float iscale = -127.0f / max;
      for (int j = 0; j < QK_K; ++j) b.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * src[j])));
      for (int j = 0; j < QK_K / 16; ++j) {
        int sum = 0;
        for (int ii = 0; ii < 16; ++ii) sum += b.qs[16 * j + ii];
        b.bsums[j] = static_cast<int16_t>(sum);
      }
      b.d = 1.0f / iscale;
    }
    store_block(dst, i, b);
  }
}

}  // namespace xelm::quant
