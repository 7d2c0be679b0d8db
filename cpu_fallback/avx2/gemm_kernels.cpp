// gemm_kernels.cpp — products of the 32-element quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), the
// K-quants (Q2_K .. Q6_K) and float weights (F32, F16, BF16) with one or many activation rows (decode,
// batched decode, prompt processing), organised as BLAS does, by packing. (Every type xelm multiplies.)
//
// A panel of kPanelRows consecutive weight rows is repacked once, when the weight is prepared, into
// a stored layout about the size of the file's rows (the quant bytes of the 8 rows interleaved in
// 4-byte groups, scales unpacked to a byte per row). Per product call each panel is unpacked into a
// small buffer (2.3-4.3 KiB per 256 elements of a row, so it stays in L1/L2) where one 32-byte
// vector holds 4 consecutive quants of each of the 8 rows: "lanes = output rows". A micro-kernel
// then multiplies two panels with
// a tile of 3 activation rows (Q8_K or Q8Block32): 4 activation bytes are broadcast to every lane and
// multiplied with the packed quants of both panels (maddubs), and the block scales (and min/offset
// terms) are 8-lane vectors too. So 8 outputs of an activation row come out as one vector, without
// horizontal sums; each packed vector serves 3 activation rows and each broadcast 2 panels. A panel
// is unpacked once for all activation rows: the micro-kernel reads 4 activation bytes per 2 maddubs,
// little enough to stream them from L3 while the packed panels stay in L1/L2.
//
// Float weights are unpacked the same way, 8 elements of 8 rows converted to fp32 per block, and meet
// broadcast fp32 activations in an FMA tile of 2 panels × 6 rows.
//
// What depends on the weight type is a panel format (KQuantFormat<traits>, Q8_0Format,
// OffsetBlock32Format<traits>, FloatFormat):
// the stored and packed blocks, the activation block, repack() and unpack(), the product of one block
// (accumulate()), and the
// tile heights its registers allow; the tiling around them is shared.
//
// Compiled once per kernel ISA (kernel_isa.h). What the ISA changes is the integer step (GroupSums,
// dpbusd): AVX2 multiplies with maddubs and keeps pair sums in int16 for as many groups as the
// format's range argument allows, then widens them with madd; VNNI (AVX-VNNI, AVX-512 VNNI) adds every
// group into int32 with one vpdpbusd. The integer sums are the same, and the float epilogue is shared
// code, so every ISA gives bit-identical results.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu_fallback/avx2/kernels.h"
#include "cpu_fallback/avx2/kquant_decode.h"
#include "cpu_fallback/avx2/simd_util.h"
#include "runtime/quant_blocks.h"

namespace xelm::cpu::avx2::XELM_KERNEL_ISA {
namespace {

using namespace xelm::quant;

static_assert(kPanelRows == 8, "one 32-bit lane of a vector per panel row");

constexpr int kGroups = QK_K / 4;        // 4-element groups per block
constexpr int kChunks = QK_K / 32;       // 32-element chunks (one vector of one row) per block
constexpr int kBsums = QK_K / 16;        // Q8_K bsums per block

// One block (QK_K elements) of every row of a panel, packed. For row r (lane r) of the panel:
//   q[g]      32 bytes: byte 4r + e = quant of row r, element 4g + e (unsigned), g < kGroups
//   scales[j] scale of row r's sub-block j in GroupSums::pack_weights' layout (AVX2: int16 lanes
//             2r and 2r+1, the madd weights of the two maddubs pairs of row r; VNNI: int32 lane r,
//             or (w, 0) in int16 lanes 2r, 2r+1 for the int16 widen)
//   corr[p]   16 int16: lanes 2r, 2r+1 = row r's correction coefficients of the Q8_K bsums 2p, 2p+1
//   d, coef   8 floats: row r's block scale and the scale of its correction
// so that for a Q8_K activation block a:
//   dot(row r, a) = a.d * (d[r] * Σ_j scales[j][r] * Σ_{k in sub-block j} q_k a.qs_k
//                          - coef[r] * Σ_i corr_i[r] * a.bsums_i).
template <int kSubBlocks>
struct PackedBlock {
  __m256i q[kGroups];
  __m256i scales[kSubBlocks];
  __m256i corr[kBsums / 2];
  __m256 d, coef;
};

// Per-type traits of the K-quants (see KQuantFormat below):
//   Block, kSubBlocks (scales per block), kGroupsPerSum (4-element groups whose maddubs pair sums
//   stay in int16 before the madd with the scale: kGroupsPerSum * 2 * q_max * 127 < 32768),
//   kVnniGroupsPerInt16 (groups whose vpdpbusd sums stay in int16: n * 4 * q_max * 127 < 32768);
//   [kQuantBegin, kQuantEnd): the bytes of a block that hold its quants, a multiple of 32;
//   decode(quants, q[kChunks]): the quants (a copy of a block's bytes [kQuantBegin, kQuantEnd)) as
//     bytes in element order, 32 per vector. Each output byte depends only on the quant bytes at its
//     own offset within 32-byte groups (nibbles and bits are extracted in place), so decoding quant
//     bytes interleaved in 4-byte groups of 8 rows yields the packed layout directly;
//   scales(block, scales, mins): the sub-block scales as int8, and with kHasMins the sub-block mins;
//   coef(block): the fp16 scale of the correction (dmin, or d);
//   kCorrShift (without mins): the correction coefficient of Q8_K bsum i is scales[i] << kCorrShift;
//     with mins it is mins[i * kSubBlocks / kBsums].

// Q2_K: 16 sub-blocks of 16, x = d*sc_j*q - dmin*m_j (4-bit sc_j and m_j in one byte). The correction
// is dmin * Σ_j m_j * bsums_j.
struct Q2_KPanel {
  using Block = block_q2_K;
  static constexpr int kSubBlocks = 16;
  static constexpr int kGroupsPerSum = 4;  // a whole sub-block: 4 * 2*3*127 = 3048
  static constexpr int kVnniGroupsPerInt16 = 4;  // 4 * 4*3*127 = 6096
  static constexpr bool kHasMins = true;
  static constexpr int kCorrShift = 0;
  static constexpr size_t kQuantBegin = offsetof(Block, qs);
  static constexpr size_t kQuantEnd = offsetof(Block, d);
  static void decode(const uint8_t* quants, __m256i q[kChunks]) {
    decode_q2_k_half(quants, 0, q);
    decode_q2_k_half(quants, 1, q + 4);
  }
  static void scales(const Block& b, int8_t scales[kSubBlocks], int8_t mins[kSubBlocks]) {
    for (int j = 0; j < kSubBlocks; ++j) {
      scales[j] = static_cast<int8_t>(b.scales[j] & 15);
      mins[j] = static_cast<int8_t>(b.scales[j] >> 4);
    }
  }
  static half_bits coef(const Block& b) { return b.dmin; }
};

// Q3_K: 16 sub-blocks of 16, x = d*s_j*(q - 4) with signed 6-bit s_j. The correction is
// d * Σ_j 4*s_j * bsums_j.
struct Q3_KPanel {
  using Block = block_q3_K;
  static constexpr int kSubBlocks = 16;
  static constexpr int kGroupsPerSum = 4;  // 4 * 2*7*127 = 7112
  static constexpr int kVnniGroupsPerInt16 = 4;  // 4 * 4*7*127 = 14224
  static constexpr bool kHasMins = false;
  static constexpr int kCorrShift = 2;
  static constexpr size_t kQuantBegin = offsetof(Block, hmask);  // hmask, then qs
  static constexpr size_t kQuantEnd = offsetof(Block, scales);
  static void decode(const uint8_t* quants, __m256i q[kChunks]) {
    const uint8_t* qs = quants + (offsetof(Block, qs) - kQuantBegin);
    decode_q3_k_half(quants, qs, 0, q);
    decode_q3_k_half(quants, qs, 1, q + 4);
  }
  static void scales(const Block& b, int8_t scales[kSubBlocks], int8_t* /*mins*/) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(scales), unpack_q3_k_scales(b.scales));
  }
  static half_bits coef(const Block& b) { return b.d; }
};

// Q4_K / Q5_K: 8 sub-blocks of 32, x = d*sc_j*q - dmin*m_j. The correction is dmin * Σ_j m_j *
// (sum of the activations of sub-block j), i.e. both bsums of sub-block j with coefficient m_j.
template <typename BlockType, bool kHighBits>
struct Q45_KPanel {
  using Block = BlockType;
  static constexpr int kSubBlocks = 8;
  static constexpr int kGroupsPerSum = kHighBits ? 4 : 8;  // 4 * 2*31*127 = 31496, 8 * 2*15*127 = 30480
  static constexpr int kVnniGroupsPerInt16 = kHighBits ? 2 : 4;  // 2 * 4*31*127 = 31496, 4 * 4*15*127 = 30480
  static constexpr bool kHasMins = true;
  static constexpr int kCorrShift = 0;
  static constexpr size_t kQuantBegin = offsetof(Block, scales) + sizeof(Block::scales);  // qh (Q5_K), qs
  static constexpr size_t kQuantEnd = sizeof(Block);
  static void decode(const uint8_t* quants, __m256i q[kChunks]) {
    const uint8_t* qs = quants + (offsetof(Block, qs) - kQuantBegin);  // Q5_K: qh is at quants
    for (int p = 0; p < 4; ++p) decode_q45_k_pair<kHighBits>(quants, qs, p, q[2 * p], q[2 * p + 1]);
  }
  static void scales(const Block& b, int8_t scales[kSubBlocks], int8_t mins[kSubBlocks]) {
    uint8_t scales_mins[16];  // scales 0..7, mins 0..7 (6-bit)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(scales_mins), unpack_k_scales_128(b.scales));
    for (int j = 0; j < kSubBlocks; ++j) {
      scales[j] = static_cast<int8_t>(scales_mins[j]);
      mins[j] = static_cast<int8_t>(scales_mins[8 + j]);
    }
  }
  static half_bits coef(const Block& b) { return b.dmin; }
};

// Q6_K: 16 sub-blocks of 16, x = d*s_j*(q - 32). The correction is d * Σ_j 32*s_j * bsums_j.
struct Q6_KPanel {
  using Block = block_q6_K;
  static constexpr int kSubBlocks = 16;
  static constexpr int kGroupsPerSum = 2;  // 2 * 2*63*127 = 32004
  static constexpr int kVnniGroupsPerInt16 = 1;  // 4*63*127 = 32004
  static constexpr bool kHasMins = false;
  static constexpr int kCorrShift = 5;
  static constexpr size_t kQuantBegin = offsetof(Block, ql);
  static constexpr size_t kQuantEnd = offsetof(Block, scales);
  static void decode(const uint8_t* quants, __m256i q[kChunks]) {
    const uint8_t* qh = quants + (offsetof(Block, qh) - kQuantBegin);
    decode_q6_k_half(quants, qh, 0, q);
    decode_q6_k_half(quants, qh, 1, q + 4);
  }
  static void scales(const Block& b, int8_t scales[kSubBlocks], int8_t* /*mins*/) {
    std::memcpy(scales, b.scales, kSubBlocks);
  }
  static half_bits coef(const Block& b) { return b.d; }
};

// Transposes an 8×8 matrix of 32-bit elements held in 8 vectors (v[i] lane k <-> v[k] lane i).
inline void transpose_8x8_epi32(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// The 4 bytes at p in every 32-bit lane.
inline __m256i broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// Sums of u8 × s8 products over runs of 4-byte groups (one group: 4 quants of each of the 8 rows of a
// panel times 4 broadcast activation bytes), added into int32 sums with one weight per row (a
// sub-block scale, or 1). AVX2: maddubs pair sums accumulate in int16 for a run of kGroupsPerSum
// groups (the format's range argument keeps them exact), then one madd widens them with the weights
// as int16 pairs (w, w). VNNI: vpdpbusd adds each group straight into int32, exact for any run, so a
// run is a whole sub-block; where that sum still fits int16 (Q2_K, Q3_K: kVnniGroupsPerInt16), one
// vpdpwssd applies the weight to its int32 lanes read as int16 pairs (v, sign) against (w, 0), exact
// since |v| < 2^15; otherwise one vpmulld (two uops) does. (Two int16 runs per sub-block with a
// vpdpwssd each measured 6% slower than the vpmulld for Q4_K.) Same integers every way.
struct GroupSums {
  // Whether a VNNI sub-block sum fits int16 (kVnniGroupsPerInt16 groups do: 4 * q_max * 127 each).
  static constexpr bool int16_widen(int groups_per_int16_vnni, int groups_per_sub_block) {
    return kVnni && groups_per_sub_block <= groups_per_int16_vnni;
  }
  // Groups per partial sum: the format's int16 limit (AVX2), or a whole sub-block (VNNI).
  static constexpr int run_length(int groups_per_int16_sum, int groups_per_sub_block) {
    return kVnni ? groups_per_sub_block : groups_per_int16_sum;
  }
  static __m256i add(__m256i partial, __m256i u, __m256i s) {
    if constexpr (kVnni) {
      return dpbusd(partial, u, s);
    } else {
      return _mm256_add_epi16(partial, _mm256_maddubs_epi16(u, s));
    }
  }
  // sumi + partial × weights, the weights as pack_weights<kInt16Widen> laid them out.
  template <bool kInt16Widen>
  static __m256i widen(__m256i sumi, __m256i partial, __m256i weights) {
    if constexpr (kVnni && !kInt16Widen) {
      return _mm256_add_epi32(sumi, _mm256_mullo_epi32(partial, weights));
    } else {
      return dpwssd(sumi, partial, weights);
    }
  }
  static __m256i widen_unit(__m256i sumi, __m256i partial) {
    if constexpr (kVnni) {
      return _mm256_add_epi32(sumi, partial);
    } else {
      return dpwssd(sumi, partial, _mm256_set1_epi16(1));
    }
  }
  // The weights of the 8 rows (int16 w[r]) for widen: int16 pairs (w[r], w[r]) (AVX2), (w[r], 0)
  // (VNNI, int16 widen) or int32 lanes.
  template <bool kInt16Widen>
  static __m256i pack_weights(__m128i w) {
    if constexpr (!kVnni) {
      return _mm256_set_m128i(_mm_unpackhi_epi16(w, w), _mm_unpacklo_epi16(w, w));
    } else if constexpr (kInt16Widen) {
      return _mm256_cvtepu16_epi32(w);
    } else {
      return _mm256_cvtepi16_epi32(w);
    }
  }
};

// A panel format F, for the weight types with a panel kernel:
//   Stored: one block of the kPanelRows rows of a panel as the weight keeps it, repacked at load
//     (about the size of the rows' blocks in the file, so decode reads no more bytes);
//   Packed: the same block unpacked for the micro-kernel (one byte or float per element), made per
//     product call into a buffer that stays in L1/L2 while every activation row passes over it;
//   Activation: the prepared activation block (activation_format of the type), kBlockSize elements;
//   repack(w, w_row_bytes, i, Stored&): block i of the kPanelRows rows starting at w;
//   unpack(const Stored&, Packed&);
//   accumulate<NP, NT>(pb, xb, acc): acc[p][t] lane r += dot(row r of pb[p], xb[t]) for NP packed
//     blocks and NT activation blocks.

// The K-quants, from their traits T (above). Stored, for row r of the panel:
//   quants[k]  the rows' quant bytes interleaved in 4-byte groups: byte 32m + 4r + e is byte
//              32m + 4k + e of row r's quants, so that T::decode(quants[k]) gives the groups 8c + k
//              (c < kChunks) of the packed layout;
//   scales[j][r], mins[j][r]  row r's sub-block scales and mins (T::scales);
//   d[r], coef[r]  row r's fp16 block scale and correction scale.
// Q4_K: 1184 bytes for 8 rows' 1152 in the file.
template <typename T>
struct StoredKQuantBlock {
  uint8_t quants[kPanelRows][T::kQuantEnd - T::kQuantBegin];
  int8_t scales[T::kSubBlocks][kPanelRows];
  int8_t mins[T::kHasMins ? T::kSubBlocks : 1][kPanelRows];
  half_bits d[kPanelRows], coef[kPanelRows];
};

template <typename T>
struct KQuantFormat {
  using Stored = StoredKQuantBlock<T>;
  using Packed = PackedBlock<T::kSubBlocks>;
  using Activation = block_q8_K;
  static constexpr int64_t kBlockSize = QK_K;
  static constexpr int kTileRowsOnePanel = 4, kTileRowsTwoPanels = 3;
  static constexpr int kGroupsPerSub = kGroups / T::kSubBlocks;
  static constexpr bool kInt16Widen = GroupSums::int16_widen(T::kVnniGroupsPerInt16, kGroupsPerSub);
  static constexpr int kRun = GroupSums::run_length(T::kGroupsPerSum, kGroupsPerSub);

  static void repack(const uint8_t* w, size_t w_row_bytes, int64_t i, Stored& out) {
    using Block = typename T::Block;
    static_assert((T::kQuantEnd - T::kQuantBegin) % 32 == 0);
    const Block* rows[kPanelRows];
    for (int r = 0; r < kPanelRows; ++r) {
      rows[r] = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * w_row_bytes) + i;
    }
    for (size_t m = 0; m < T::kQuantEnd - T::kQuantBegin; m += 32) {
      __m256i v[kPanelRows];
      for (int r = 0; r < kPanelRows; ++r) v[r] = load256(reinterpret_cast<const uint8_t*>(rows[r]) + T::kQuantBegin + m);
      transpose_8x8_epi32(v);
      for (int k = 0; k < kPanelRows; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.quants[k] + m), v[k]);
    }
    for (int r = 0; r < kPanelRows; ++r) {
      int8_t scales[T::kSubBlocks], mins[T::kSubBlocks] = {};
      T::scales(*rows[r], scales, mins);
      for (int j = 0; j < T::kSubBlocks; ++j) {
        out.scales[j][r] = scales[j];
        if constexpr (T::kHasMins) out.mins[j][r] = mins[j];
      }
      out.d[r] = rows[r]->d;
      out.coef[r] = T::coef(*rows[r]);
    }
  }

  // The correction coefficients of Q8_K bsum i for the 8 rows, as int16.
  static __m128i correction(const Stored& s, int i) {
    if constexpr (T::kHasMins) {
      return _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s.mins[i * T::kSubBlocks / kBsums])));
    } else {
      return _mm_slli_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s.scales[i]))), T::kCorrShift);
    }
  }

  static void unpack(const Stored& s, Packed& out) {
    for (int k = 0; k < kPanelRows; ++k) {
      __m256i q[kChunks];
      T::decode(s.quants[k], q);
      for (int c = 0; c < kChunks; ++c) out.q[8 * c + k] = q[c];
    }
    for (int j = 0; j < T::kSubBlocks; ++j) {
      out.scales[j] = GroupSums::pack_weights<kInt16Widen>(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s.scales[j]))));
    }
    for (int p = 0; p < kBsums / 2; ++p) {
      const __m128i even = correction(s, 2 * p), odd = correction(s, 2 * p + 1);
      out.corr[p] = _mm256_set_m128i(_mm_unpackhi_epi16(even, odd), _mm_unpacklo_epi16(even, odd));
    }
    out.d = half_to_float8(s.d);
    out.coef = half_to_float8(s.coef);
  }

  // Per run of groups (GroupSums) a partial sum, added into sumi with its sub-block's scales; the
  // correction is a madd of the bsums with the correction coefficients.
  template <int NP, int NT>
  static void accumulate(const Packed* const pb[NP], const Activation* const xb[NT], __m256 acc[NP][NT]) {
    static_assert(kGroupsPerSub % kRun == 0 && 8 % kRun == 0);
    __m256i sumi[NP][NT];
    for (int p = 0; p < NP; ++p) {
      for (int t = 0; t < NT; ++t) sumi[p][t] = _mm256_setzero_si256();
    }
    // Per chunk of 32 elements (8 groups, the loop body for every type) one partial sum per run of
    // kRun groups, each added into sumi with its sub-block's scales.
    for (int c = 0; c < kChunks; ++c) {
      for (int g0 = 8 * c; g0 < 8 * (c + 1); g0 += kRun) {
        const int j = g0 / kGroupsPerSub;
        __m256i partial[NP][NT];
        for (int p = 0; p < NP; ++p) {
          for (int t = 0; t < NT; ++t) partial[p][t] = _mm256_setzero_si256();
        }
        for (int g = g0; g < g0 + kRun; ++g) {
          __m256i q[NP];
          for (int p = 0; p < NP; ++p) q[p] = pb[p]->q[g];
          for (int t = 0; t < NT; ++t) {
            const __m256i x4 = broadcast4(xb[t]->qs + 4 * g);
            for (int p = 0; p < NP; ++p) partial[p][t] = GroupSums::add(partial[p][t], q[p], x4);
          }
        }
        for (int p = 0; p < NP; ++p) {
          for (int t = 0; t < NT; ++t) sumi[p][t] = GroupSums::widen<kInt16Widen>(sumi[p][t], partial[p][t], pb[p]->scales[j]);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const block_q8_K& a = *xb[t];
      __m256i corr[NP];
      for (int p = 0; p < NP; ++p) corr[p] = _mm256_setzero_si256();
      for (int k = 0; k < kBsums / 2; ++k) {
        const __m256i bsums = broadcast4(a.bsums + 2 * k);
        for (int p = 0; p < NP; ++p) corr[p] = dpwssd(corr[p], pb[p]->corr[k], bsums);
      }
      const __m256 dx = _mm256_set1_ps(a.d);
      for (int p = 0; p < NP; ++p) {
        acc[p][t] = add_block_with_correction(acc[p][t], _mm256_cvtepi32_ps(sumi[p][t]), pb[p]->d, dx,
                                              _mm256_cvtepi32_ps(corr[p]), pb[p]->coef);
      }
    }
  }
};

// Q8_0: blocks of 32 signed quants w with a scale. Packed, for row r (lane r) of the panel:
//   q[g]      32 bytes: byte 4r + e = w of row r, element 4g + e (signed, as in the file), g < 8
//   u[g]      the same bytes as the unsigned operand: AVX2 |w| (|-128| = 128 as u8 is still right),
//             VNNI w + 128
//   d         8 floats: row r's block scale
// maddubs / vpdpbusd want an unsigned first operand. AVX2 multiplies a group as |w| × (x with w's
// sign) (|x| <= 127); signed pair sums reach 2·128·127, so two groups cannot share an int16 sum: each
// maddubs is widened at once (madd with ones). VNNI has no int16 step to saturate, so it takes
// (w + 128) × x and subtracts 128 Σx, Σx summed alongside (one vpdpbusd per activation row and group
// against bytes of 1, instead of a sign per panel and row). Both give Σ w·x exactly.
// Stored: q[g] as above (the transposed quants, 256 bytes) and the rows' fp16 scales, as in the file.
struct Q8_0Format {
  struct Stored {
    int8_t q[8][32];
    half_bits d[kPanelRows];
  };
  struct Packed {
    __m256i q[8];
    __m256i u[8];
    __m256 d;
  };
  using Activation = Q8Block32;
  static constexpr int64_t kBlockSize = QK8_0;
  static constexpr int kTileRowsOnePanel = 4, kTileRowsTwoPanels = 3;

  static void repack(const uint8_t* w, size_t w_row_bytes, int64_t i, Stored& out) {
    __m256i q[kPanelRows];
    for (int r = 0; r < kPanelRows; ++r) {
      const block_q8_0& b = reinterpret_cast<const block_q8_0*>(w + static_cast<size_t>(r) * w_row_bytes)[i];
      q[r] = load256(b.qs);
      out.d[r] = b.d;
    }
    transpose_8x8_epi32(q);  // q[r] lane g (bytes 4g..4g+3 of row r) -> q[g] lane r
    for (int g = 0; g < 8; ++g) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q[g]), q[g]);
  }

  static void unpack(const Stored& s, Packed& out) {
    for (int g = 0; g < 8; ++g) {
      out.q[g] = load256(s.q[g]);
      out.u[g] = kVnni ? _mm256_xor_si256(out.q[g], _mm256_set1_epi8(-128)) : _mm256_sign_epi8(out.q[g], out.q[g]);
    }
    out.d = half_to_float8(s.d);
  }

  template <int NP, int NT>
  static void accumulate(const Packed* const pb[NP], const Activation* const xb[NT], __m256 acc[NP][NT]) {
    __m256i sumi[NP][NT], x_sum[NT];
    for (int t = 0; t < NT; ++t) {
      x_sum[t] = _mm256_setzero_si256();
      for (int p = 0; p < NP; ++p) sumi[p][t] = _mm256_setzero_si256();
    }
    for (int g = 0; g < 8; ++g) {
      for (int t = 0; t < NT; ++t) {
        const __m256i x4 = broadcast4(xb[t]->qs + 4 * g);
        if constexpr (kVnni) {
          x_sum[t] = dpbusd(x_sum[t], _mm256_set1_epi8(1), x4);
          for (int p = 0; p < NP; ++p) sumi[p][t] = dpbusd(sumi[p][t], pb[p]->u[g], x4);
        } else {
          for (int p = 0; p < NP; ++p) sumi[p][t] = dpbusd(sumi[p][t], pb[p]->u[g], _mm256_sign_epi8(x4, pb[p]->q[g]));
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m256 dx = _mm256_set1_ps(xb[t]->d);
      const __m256i offset = _mm256_slli_epi32(x_sum[t], 7);  // 128 Σx (VNNI; 0 with AVX2)
      for (int p = 0; p < NP; ++p) {
        const __m256i dot = kVnni ? _mm256_sub_epi32(sumi[p][t], offset) : sumi[p][t];
        acc[p][t] = add_block(acc[p][t], _mm256_cvtepi32_ps(dot), pb[p]->d, dx);
      }
    }
  }
};

// The panel format of Q4_0, Q4_1, Q5_0, Q5_1, from their traits T (kquant_decode.h). Packed, for row r (lane r) of the panel:
//   q[g]    32 bytes: byte 4r + e = quant of row r, element 4g + e (unsigned), g < 8
//   d, off  8 floats: row r's scale and offset
// so that for a Q8Block32 activation block a (x = a.d * a.qs, a.s = a.d * Σ a.qs):
//   dot(row r, a) = d[r] * a.d * Σ q * a.qs + off[r] * a.s.
// Unsigned quants need no sign trick, and a run of groups (GroupSums: kGroupsPerSum with AVX2, the
// whole block with VNNI) shares a partial sum.
// Stored: the rows' blocks side by side, as in the file.
template <typename T>
struct OffsetBlock32Format {
  struct Stored {
    typename T::Block rows[kPanelRows];
  };
  struct Packed {
    __m256i q[8];
    __m256 d, off;
  };
  using Activation = Q8Block32;
  static constexpr int64_t kBlockSize = 32;
  static constexpr int kTileRowsOnePanel = 4, kTileRowsTwoPanels = 3;

  static void repack(const uint8_t* w, size_t w_row_bytes, int64_t i, Stored& out) {
    for (int r = 0; r < kPanelRows; ++r) {
      out.rows[r] = reinterpret_cast<const typename T::Block*>(w + static_cast<size_t>(r) * w_row_bytes)[i];
    }
  }

  static void unpack(const Stored& s, Packed& out) {
    float d[kPanelRows], off[kPanelRows];
    for (int r = 0; r < kPanelRows; ++r) {
      const typename T::Block& b = s.rows[r];
      out.q[r] = T::quants(b);
      d[r] = half_to_float(b.d);
      off[r] = T::offset(b);
    }
    transpose_8x8_epi32(out.q);  // q[r] lane g (elements 4g..4g+3 of row r) -> q[g] lane r
    out.d = _mm256_loadu_ps(d);
    out.off = _mm256_loadu_ps(off);
  }

  template <int NP, int NT>
  static void accumulate(const Packed* const pb[NP], const Activation* const xb[NT], __m256 acc[NP][NT]) {
    __m256i sumi[NP][NT];
    for (int p = 0; p < NP; ++p) {
      for (int t = 0; t < NT; ++t) sumi[p][t] = _mm256_setzero_si256();
    }
    constexpr int kRun = GroupSums::run_length(T::kGroupsPerSum, 8);
    for (int g0 = 0; g0 < 8; g0 += kRun) {
      __m256i partial[NP][NT];
      for (int p = 0; p < NP; ++p) {
        for (int t = 0; t < NT; ++t) partial[p][t] = _mm256_setzero_si256();
      }
      for (int g = g0; g < g0 + kRun; ++g) {
        for (int t = 0; t < NT; ++t) {
          const __m256i x4 = broadcast4(xb[t]->qs + 4 * g);
          for (int p = 0; p < NP; ++p) partial[p][t] = GroupSums::add(partial[p][t], pb[p]->q[g], x4);
        }
      }
      for (int p = 0; p < NP; ++p) {
        for (int t = 0; t < NT; ++t) sumi[p][t] = GroupSums::widen_unit(sumi[p][t], partial[p][t]);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m256 dx = _mm256_set1_ps(xb[t]->d), sx = _mm256_set1_ps(xb[t]->s);
      for (int p = 0; p < NP; ++p) {
        acc[p][t] = add_block_with_offset(acc[p][t], _mm256_cvtepi32_ps(sumi[p][t]), pb[p]->d, dx, pb[p]->off, sx);
      }
    }
  }
};

// Float weights (F32, F16, BF16): blocks of 8 elements, converted to fp32 when packed, so the
// micro-kernel is a plain fp32 FMA tile (as in BLIS/OpenBLAS sgemm). Packed, for row r (lane r):
//   w[e]  8 floats: lane r = element 8i + e of row r, e < 8
// Activations are fp32 rows; each activation element is broadcast to all lanes and meets both panels.
// Stored: w[e][r] = element 8i + e of row r in the file's type (transposed; converted when unpacked).
template <typename W>
struct FloatFormat {
  struct Stored {
    typename W::Elem w[8][kPanelRows];
  };
  struct Packed {
    __m256 w[8];
  };
  struct Activation {
    float v[8];
  };
  static constexpr int64_t kBlockSize = 8;
  static constexpr int kTileRowsOnePanel = 8, kTileRowsTwoPanels = 6;  // 8 or 12 accumulators

  static void repack(const uint8_t* w, size_t w_row_bytes, int64_t i, Stored& out) {
    for (int r = 0; r < kPanelRows; ++r) {
      const auto* row = reinterpret_cast<const typename W::Elem*>(w + static_cast<size_t>(r) * w_row_bytes);
      for (int e = 0; e < 8; ++e) std::memcpy(&out.w[e][r], row + 8 * i + e, sizeof(typename W::Elem));
    }
  }

  static void unpack(const Stored& s, Packed& out) {
    for (int e = 0; e < 8; ++e) out.w[e] = W::load8(s.w[e]);
  }

  template <int NP, int NT>
  static void accumulate(const Packed* const pb[NP], const Activation* const xb[NT], __m256 acc[NP][NT]) {
    for (int e = 0; e < 8; ++e) {
      __m256 w[NP];
      for (int p = 0; p < NP; ++p) w[p] = pb[p]->w[e];
      for (int t = 0; t < NT; ++t) {
        const __m256 x = _mm256_broadcast_ss(&xb[t]->v[e]);
        for (int p = 0; p < NP; ++p) acc[p][t] = _mm256_fmadd_ps(w[p], x, acc[p][t]);
      }
    }
  }
};

// The operands of the tiles of one or two packed panels.
template <typename F>
struct PanelTiles {
  const typename F::Packed* panels;  // [1 or 2][n_blocks]
  int64_t n_blocks;
  const uint8_t* x;  // activation row 0, rows x_stride bytes apart
  size_t x_stride;
  float* y;          // y[0][first output of the panels], rows y_stride floats apart
  int64_t y_stride;
  __m256 bias[2];    // per panel
};

// y[t][8p + r] = row r of panel p (p < NP) times activation row t0 + t (t < NT), + bias. Each
// broadcast of 4 activation bytes serves NP maddubs, each packed vector NT.
template <typename F, int NP, int NT>
void multiply_tile(const PanelTiles<F>& tiles, int64_t t0) {
  using Activation = typename F::Activation;
  const Activation* x[NT];
  __m256 acc[NP][NT];
  for (int t = 0; t < NT; ++t) {
    x[t] = reinterpret_cast<const Activation*>(tiles.x + static_cast<size_t>(t0 + t) * tiles.x_stride);
    for (int p = 0; p < NP; ++p) acc[p][t] = tiles.bias[p];
  }
  for (int64_t i = 0; i < tiles.n_blocks; ++i) {
    const typename F::Packed* pb[NP];
    for (int p = 0; p < NP; ++p) pb[p] = tiles.panels + p * tiles.n_blocks + i;
    const Activation* xb[NT];
    for (int t = 0; t < NT; ++t) xb[t] = x[t] + i;
    F::template accumulate<NP, NT>(pb, xb, acc);
  }
  for (int t = 0; t < NT; ++t) {
    for (int p = 0; p < NP; ++p) _mm256_storeu_ps(tiles.y + (t0 + t) * tiles.y_stride + kPanelRows * p, acc[p][t]);
  }
}

// Activation rows [t0, t0 + n), n <= NT, as one tile.
template <typename F, int NP, int NT>
void multiply_last_tile(const PanelTiles<F>& tiles, int64_t t0, int64_t n) {
  if constexpr (NT > 0) {
    if (n == NT) {
      multiply_tile<F, NP, NT>(tiles, t0);
    } else {
      multiply_last_tile<F, NP, NT - 1>(tiles, t0, n);
    }
  }
}

// All n_rows activation rows times NP panels, in tiles of as many rows as the registers hold (the
// format's kTileRows*): NP * NT accumulators, NP packed vectors and a broadcast within 16 ymm registers.
// (AVX-512's 32 registers would hold taller tiles; 4-8 rows measured no faster than 3-4 for the
// K-quants and Q8_0, so every ISA keeps these.)
template <typename F, int NP>
void multiply_panels(const PanelTiles<F>& tiles, int64_t n_rows) {
  constexpr int kTileRows = NP == 1 ? F::kTileRowsOnePanel : F::kTileRowsTwoPanels;
  int64_t t = 0;
  for (; t + kTileRows <= n_rows; t += kTileRows) multiply_tile<F, NP, kTileRows>(tiles, t);
  multiply_last_tile<F, NP, kTileRows - 1>(tiles, t, n_rows - t);
}

template <typename F>
void panel_product(const PanelProduct& p) {
  const int64_t n_blocks = p.n / F::kBlockSize;
  const auto* stored = reinterpret_cast<const typename F::Stored*>(p.panels);  // [n_panels][n_blocks]
  // Two panels at a time (one when a single one is left), unpacked: [2][n_blocks].
  std::vector<typename F::Packed> packed(static_cast<size_t>(2 * n_blocks));
  for (int64_t first = 0; first < p.n_panels; first += 2) {
    const int np = static_cast<int>(std::min<int64_t>(2, p.n_panels - first));
    const int64_t o = kPanelRows * first;
    PanelTiles<F> tiles{packed.data(), n_blocks, p.x, p.x_stride, p.y + o, p.y_stride, {}};
    for (int k = 0; k < np; ++k) {
      const typename F::Stored* panel = stored + (first + k) * n_blocks;
      for (int64_t i = 0; i < n_blocks; ++i) F::unpack(panel[i], packed[static_cast<size_t>(k * n_blocks + i)]);
      tiles.bias[k] = p.bias != nullptr ? _mm256_loadu_ps(p.bias + o + kPanelRows * k) : _mm256_setzero_ps();
    }
    if (np == 2) {
      multiply_panels<F, 2>(tiles, p.n_rows);
    } else {
      multiply_panels<F, 1>(tiles, p.n_rows);
    }
  }
}

template <typename F>
void repack_panel(const uint8_t* w, size_t w_row_bytes, int64_t n, uint8_t* panel) {
  static_assert(std::is_trivially_copyable_v<typename F::Stored> && alignof(typename F::Stored) <= 16);
  auto* out = reinterpret_cast<typename F::Stored*>(panel);
  for (int64_t i = 0; i < n / F::kBlockSize; ++i) F::repack(w, w_row_bytes, i, out[i]);
}

template <typename F>
PanelKernel panel_kernel_of(int64_t n) {
  return {sizeof(typename F::Stored) * static_cast<size_t>(n / F::kBlockSize), &repack_panel<F>, &panel_product<F>};
}

}  // namespace

PanelKernel panel_kernel(GgmlType weight_type, int64_t n) {
  switch (weight_type) {
    case GgmlType::Q8_0: return panel_kernel_of<Q8_0Format>(n);
    case GgmlType::Q4_0: return panel_kernel_of<OffsetBlock32Format<Q4_0Offset>>(n);
    case GgmlType::Q4_1: return panel_kernel_of<OffsetBlock32Format<Q4_1Offset>>(n);
    case GgmlType::Q5_0: return panel_kernel_of<OffsetBlock32Format<Q5_0Offset>>(n);
    case GgmlType::Q5_1: return panel_kernel_of<OffsetBlock32Format<Q5_1Offset>>(n);
    case GgmlType::Q2_K: return panel_kernel_of<KQuantFormat<Q2_KPanel>>(n);
    case GgmlType::Q3_K: return panel_kernel_of<KQuantFormat<Q3_KPanel>>(n);
    case GgmlType::Q4_K: return panel_kernel_of<KQuantFormat<Q45_KPanel<block_q4_K, false>>>(n);
    case GgmlType::Q5_K: return panel_kernel_of<KQuantFormat<Q45_KPanel<block_q5_K, true>>>(n);
    case GgmlType::Q6_K: return panel_kernel_of<KQuantFormat<Q6_KPanel>>(n);
    default: break;
  }
  if (n % 8 != 0) return {};  // float rows are packed in blocks of 8 elements
  switch (weight_type) {
    case GgmlType::F32: return panel_kernel_of<FloatFormat<F32Weights>>(n);
    case GgmlType::F16: return panel_kernel_of<FloatFormat<F16Weights>>(n);
    case GgmlType::BF16: return panel_kernel_of<FloatFormat<BF16Weights>>(n);
    default: return {};
  }
}

}  // namespace xelm::cpu::avx2::XELM_KERNEL_ISA
