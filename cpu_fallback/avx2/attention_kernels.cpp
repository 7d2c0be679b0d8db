// attention_kernels.cpp — the AVX2 inner step of flash-style attention: a set of query vectors
// ("slots") that share one kv head takes in one tile of keys and values with an online softmax.
//
// The tile is done as two small matrix products with register tiles instead of one dot product per
// (query, key): scores S = Q·Kᵀ [slots, keys] two slots × four keys at a time, so each loaded key
// vector serves two queries and each query vector four keys (6 loads per 8 FMAs instead of 10 per 8);
// then the softmax of each slot's row; then O += P·V two slots × 32 dimensions at a time (6 loads per
// 8 FMAs instead of 9 per 8). K and V of a tile stay in L1/L2 while all slots pass over them.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_fallback/avx2/kernels.h"
#include "cpu_fallback/avx2/simd_util.h"

namespace xelm::cpu::avx2 {
namespace {

// Makes the compiler hold v in a register: without it GCC folds the load into every FMA that uses
// v, reading it from memory once per slot and undoing the register tile.
inline void keep_in_register(__m256& v) { __asm__("" : "+x"(v)); }

// [Σa, Σb, Σc, Σd] of four 8-lane vectors.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// out[s][j] = scale * dot(q[s], keys[j]) for s < NS and j < round_up(n_keys, 4); keys is [*, d]
// with rows up to the multiple of 4 readable (kAttentionKeyTile rows are allocated).
template <int NS>
void score_rows(const float* const q[NS], const float* keys, int64_t n_keys, int64_t d, float scale,
                float* const out[NS]) {
  const int64_t d8 = d - d % 8;
  for (int64_t j = 0; j < n_keys; j += 4) {
    const float* k[4];
    __m256 acc[NS][4];
    for (int kk = 0; kk < 4; ++kk) {
      k[kk] = keys + (j + kk) * d;
      for (int s = 0; s < NS; ++s) acc[s][kk] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < d8; i += 8) {
      __m256 kv[4];
      for (int kk = 0; kk < 4; ++kk) {
        kv[kk] = _mm256_loadu_ps(k[kk] + i);
        keep_in_register(kv[kk]);
      }
      for (int s = 0; s < NS; ++s) {
        const __m256 qv = _mm256_loadu_ps(q[s] + i);
        for (int kk = 0; kk < 4; ++kk) acc[s][kk] = _mm256_fmadd_ps(qv, kv[kk], acc[s][kk]);
      }
    }
    for (int s = 0; s < NS; ++s) {
      __m128 sums = hsum4(acc[s][0], acc[s][1], acc[s][2], acc[s][3]);
      if (d8 < d) {
        float tail[4] = {};
        for (int kk = 0; kk < 4; ++kk) {
          for (int64_t i = d8; i < d; ++i) tail[kk] += q[s][i] * k[kk][i];
        }
        sums = _mm_add_ps(sums, _mm_loadu_ps(tail));
      }
      _mm_storeu_ps(out[s] + j, _mm_mul_ps(sums, _mm_set1_ps(scale)));
    }
  }
}

// acc[s][0, d) += Σ_j p[s][j] * values[j, :] over j < n_keys, for s < NS; values is [n_keys, d].
// Dimensions go in chunks of 32 (four accumulators per slot held across all keys), then 8, then 1.
template <int NS>
void accumulate_rows(float* const acc[NS], const float* const p[NS], const float* values, int64_t n_keys, int64_t d) {
  int64_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m256 a[NS][4];
    for (int s = 0; s < NS; ++s) {
      for (int c = 0; c < 4; ++c) a[s][c] = _mm256_loadu_ps(acc[s] + i + 8 * c);
    }
    for (int64_t j = 0; j < n_keys; ++j) {
      const float* v = values + j * d + i;
      __m256 vv[4];
      for (int c = 0; c < 4; ++c) {
        vv[c] = _mm256_loadu_ps(v + 8 * c);
        keep_in_register(vv[c]);
      }
      for (int s = 0; s < NS; ++s) {
        const __m256 w = _mm256_broadcast_ss(p[s] + j);
        for (int c = 0; c < 4; ++c) a[s][c] = _mm256_fmadd_ps(w, vv[c], a[s][c]);
      }
    }
    for (int s = 0; s < NS; ++s) {
      for (int c = 0; c < 4; ++c) _mm256_storeu_ps(acc[s] + i + 8 * c, a[s][c]);
    }
  }
  for (; i + 8 <= d; i += 8) {
    __m256 a[NS];
    for (int s = 0; s < NS; ++s) a[s] = _mm256_loadu_ps(acc[s] + i);
    for (int64_t j = 0; j < n_keys; ++j) {
      const __m256 vv = _mm256_loadu_ps(values + j * d + i);
      for (int s = 0; s < NS; ++s) a[s] = _mm256_fmadd_ps(_mm256_broadcast_ss(p[s] + j), vv, a[s]);
    }
    for (int s = 0; s < NS; ++s) _mm256_storeu_ps(acc[s] + i, a[s]);
  }
  for (; i < d; ++i) {
    for (int s = 0; s < NS; ++s) {
      float a = acc[s][i];
      for (int64_t j = 0; j < n_keys; ++j) a += p[s][j] * values[j * d + i];
      acc[s][i] = a;
    }
  }
}

// Slot s's scores row (n_keys wide, the first `visible` valid) becomes its softmax weights under the
// updated running max: p_j = e^(score_j - max) for j < visible, 0 beyond; denom and acc are rescaled
// by e^(old max - new max).
void softmax_update(float* row, int64_t n_keys, int64_t visible, float& running_max, float& denom, float* acc,
                    int64_t d) {
  if (visible <= 0) {  // nothing of this tile is visible: weights 0, state unchanged
    std::fill(row, row + n_keys, 0.0f);
    return;
  }
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 limit = _mm256_set1_ps(static_cast<float>(visible));
  const __m256 minus_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  // Keys j >= visible are masked out; n_keys is rounded up to whole vectors (the row has room).
  const int64_t n8 = (n_keys + 7) / 8 * 8;
  __m256 max8 = minus_inf;
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 valid = _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(static_cast<float>(j))), limit, _CMP_LT_OQ);
    max8 = _mm256_max_ps(max8, _mm256_blendv_ps(minus_inf, _mm256_loadu_ps(row + j), valid));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps(max8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float new_max = std::max(running_max, _mm_cvtss_f32(m4));
  const float correction = std::exp(running_max - new_max);  // 0 on the first tile (max = -inf)
  running_max = new_max;
  const __m256 shift = _mm256_set1_ps(new_max);
  __m256 sum8 = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 valid = _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(static_cast<float>(j))), limit, _CMP_LT_OQ);
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), shift)), valid);
    _mm256_storeu_ps(row + j, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  denom = denom * correction + hsum(sum8);
  if (correction != 1.0f) {
    const __m256 c = _mm256_set1_ps(correction);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(acc + i, _mm256_mul_ps(c, _mm256_loadu_ps(acc + i)));
    for (; i < d; ++i) acc[i] *= correction;
  }
}

}  // namespace

void attend_key_tile(const AttentionSlots& slots, const float* keys, const float* values, int64_t n_keys, int64_t d,
                     float scale) {
  const int64_t stride = kAttentionKeyTile;
  auto scores_of = [&](int64_t s) { return slots.scores + s * stride; };
  auto pick = [&](auto&& kernel2, auto&& kernel1) {
    int64_t s = 0;
    for (; s + 2 <= slots.n; s += 2) kernel2(s);
    if (s < slots.n) kernel1(s);
  };
  // S = scale · Q Kᵀ
  pick(
      [&](int64_t s) {
        const float* q[2] = {slots.q[s], slots.q[s + 1]};
        float* out[2] = {scores_of(s), scores_of(s + 1)};
        score_rows<2>(q, keys, n_keys, d, scale, out);
      },
      [&](int64_t s) {
        const float* q[1] = {slots.q[s]};
        float* out[1] = {scores_of(s)};
        score_rows<1>(q, keys, n_keys, d, scale, out);
      });
  // P = online softmax of each row
  for (int64_t s = 0; s < slots.n; ++s) {
    softmax_update(scores_of(s), n_keys, std::min(slots.visible[s], n_keys), slots.running_max[s], slots.denom[s],
                   slots.acc + s * d, d);
  }
  // O += P V
  pick(
      [&](int64_t s) {
        float* acc[2] = {slots.acc + s * d, slots.acc + (s + 1) * d};
        const float* p[2] = {scores_of(s), scores_of(s + 1)};
        accumulate_rows<2>(acc, p, values, n_keys, d);
      },
      [&](int64_t s) {
        float* acc[1] = {slots.acc + s * d};
        const float* p[1] = {scores_of(s)};
        accumulate_rows<1>(acc, p, values, n_keys, d);
      });
}

}  // namespace xelm::cpu::avx2
