// legacy_quants.cpp — scalar reference (de)quantizers for ggml's 32-element formats:
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the activation format Q8_1.
//
// The quantizers follow ggml's quantize_row_*_ref operation for operation, in fp32, so they produce the
// same bytes: the scale is computed as ggml does (e.g. max / -8), its reciprocal as 1.f / d, and the
// integer codes by truncating float-to-int casts (Q4/Q5) or roundf (Q8). Layouts: quant_blocks.h.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "runtime/ggml_types.h"
#include "runtime/quant_blocks.h"
#include "runtime/quants/quants_internal.h"

// Keep a*b+c as two roundings, as in ggml's reference (GCC in ISO C++ mode already does not contract).
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace xelm::quant {
namespace {

// The element of largest magnitude (first one on ties), with its sign; 0 for an all-zero block.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

struct MinMax {
  float min;
  float max;
};

MinMax min_max(const float* x, int n) {
  MinMax r{FLT_MAX, -FLT_MAX};
  for (int j = 0; j < n; ++j) {
    if (x[j] < r.min) r.min = x[j];
    if (x[j] > r.max) r.max = x[j];
  }
  return r;
}

// Bit 4 of the 5-bit code of element j of a Q5 block, from the packed 32-bit qh field.
int q5_high_bit(const uint8_t qh_bytes[4], int j) {
  const uint32_t qh = static_cast<uint32_t>(qh_bytes[0]) | static_cast<uint32_t>(qh_bytes[1]) << 8 |
                      static_cast<uint32_t>(qh_bytes[2]) << 16 | static_cast<uint32_t>(qh_bytes[3]) << 24;
  return static_cast<int>((qh >> j) & 1u);
}

void store_q5_high_bits(uint32_t qh, uint8_t qh_bytes[4]) {
  for (int b = 0; b < 4; ++b) qh_bytes[b] = static_cast<uint8_t>(qh >> (8 * b));
}

}  // namespace

// ---- dequantize -----------------------------------------------------------------------------------

void dequantize_q4_0(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK4_0) {
    const auto b = load_block<block_q4_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      dst[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
      dst[j + QK4_0 / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK4_1) {
    const auto b = load_block<block_q4_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      dst[j] = static_cast<float>(b.qs[j] & 0x0F) * d + m;
      dst[j + QK4_1 / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK5_0) {
    const auto b = load_block<block_q5_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = (b.qs[j] & 0x0F) | q5_high_bit(b.qh, j) << 4;
      const int q1 = (b.qs[j] >> 4) | q5_high_bit(b.qh, j + QK5_0 / 2) << 4;
      dst[j] = static_cast<float>(q0 - 16) * d;
      dst[j + QK5_0 / 2] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK5_1) {
    const auto b = load_block<block_q5_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int q0 = (b.qs[j] & 0x0F) | q5_high_bit(b.qh, j) << 4;
      const int q1 = (b.qs[j] >> 4) | q5_high_bit(b.qh, j + QK5_1 / 2) << 4;
      dst[j] = static_cast<float>(q0) * d + m;
      dst[j + QK5_1 / 2] = static_cast<float>(q1) * d + m;
    }
  }
}

void dequantize_q8_0(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK8_0) {
    const auto b = load_block<block_q8_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK8_0; ++j) dst[j] = static_cast<float>(b.qs[j]) * d;
  }
}

// ggml has no Q8_1 dequantizer; the value of a Q8_1 element is d * q (s is a cached sum, not data).
void dequantize_q8_1(const void* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += QK8_1) {
    const auto b = load_block<block_q8_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK8_1; ++j) dst[j] = static_cast<float>(b.qs[j]) * d;
  }
}

// ---- quantize ------------------------------------------------------------------------------------

// Q4_0: d = max / -8 so the signed extreme maps to code 0; codes are trunc(x / d + 8.5) capped at 15.
void quantize_q4_0(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK4_0) {
    const float d = signed_absmax(src, QK4_0) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q4_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(src[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(src[j + QK4_0 / 2] * id + 8.5f));
      b.qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
    }
    store_block(dst, i, b);
  }
}

// Q4_1: the block's [min, max] split into 15 steps; codes are trunc((x - min) / d + 0.5) capped at 15.
void quantize_q4_1(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK4_1) {
    const MinMax r = min_max(src, QK4_1);
    const float d = (r.max - r.min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q4_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(r.min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((src[j] - r.min) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((src[j + QK4_1 / 2] - r.min) * id + 0.5f));
      b.qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
    }
    store_block(dst, i, b);
  }
}

// Q5_0: as Q4_0 with d = max / -16, offset 16, codes capped at 31.
void quantize_q5_0(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK5_0) {
    const float d = signed_absmax(src, QK5_0) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q5_0 b{};
    b.d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(src[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(src[j + QK5_0 / 2] * id + 16.5f));
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + QK5_0 / 2);
    }
    store_q5_high_bits(qh, b.qh);
    store_block(dst, i, b);
  }
}

// Q5_1: as Q4_1 with 31 steps. ggml does not cap the code here ((max - min) / d rounds to <= 31).
void quantize_q5_1(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK5_1) {
    const MinMax r = min_max(src, QK5_1);
    const float d = (r.max - r.min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q5_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(r.min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      // ggml truncates to uint8_t and keeps the low five bits; masking the int does the same.
      const int q0 = static_cast<int>((src[j] - r.min) * id + 0.5f) & 0x1F;
      const int q1 = static_cast<int>((src[j + QK5_1 / 2] - r.min) * id + 0.5f) & 0x1F;
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + QK5_1 / 2);
    }
    store_q5_high_bits(qh, b.qh);
    store_block(dst, i, b);
  }
}

// Q8_0: d = absmax / 127, codes roundf(x / d) (half away from zero).
void quantize_q8_0(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK8_0) {
    const float d = absmax(src, QK8_0) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q8_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) b.qs[j] = static_cast<int8_t>(std::round(src[j] * id));
    store_block(dst, i, b);
  }
}

// Q8_1: as Q8_0, plus s = d * (sum of the codes) with d in fp32 (before its fp16 rounding).
void quantize_q8_1(const float* src, void* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += QK8_1) {
    const float d = absmax(src, QK8_1) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    block_q8_1 b{};
    b.d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      b.qs[j] = static_cast<int8_t>(std::round(src[j] * id));
      sum += b.qs[j];
    }
    b.s = fp32_to_fp16(static_cast<float>(sum) * d);
    store_block(dst, i, b);
  }
}

}  // namespace xelm::quant
