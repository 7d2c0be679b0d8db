// ggml_types.cpp — type traits, fp16/bf16 conversions and the row (de)quantization entry points of
// ggml_types.h. The per-format kernels live in runtime/quants/; this file validates row lengths and
// dispatches to them.
#include "runtime/ggml_types.h"

#include <array>
#include <bit>
#include <cstring>
#include <string>

#include "runtime/error.h"
#include "runtime/quant_blocks.h"
#include "runtime/quants/quants_internal.h"

namespace xelm {
namespace {

using quant::DequantizeFn;
using quant::QuantizeFn;

// Plain float formats, one element per "block".
void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void quantize_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

template <float (*to_f32)(uint16_t)>
void dequantize_16bit(const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, sizeof h);
    dst[i] = to_f32(h);
  }
}

template <uint16_t (*from_f32)(float)>
void quantize_16bit(const float* src, void* dst, int64_t n) {
  auto* bytes = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = from_f32(src[i]);
    std::memcpy(bytes + 2 * i, &h, sizeof h);
  }
}

struct TypeEntry {
  TypeTraits traits;
  DequantizeFn dequantize;
  QuantizeFn quantize;
};

// The supported types. Block sizes and byte sizes are ggml's (checked against quant_blocks.h).
const std::array<TypeEntry, 15> kTypes = {{
    {{GgmlType::F32, "F32", 1, 4, false, true}, dequantize_f32, quantize_f32},
    {{GgmlType::F16, "F16", 1, 2, false, true}, dequantize_16bit<fp16_to_fp32>, quantize_16bit<fp32_to_fp16>},
    {{GgmlType::Q4_0, "Q4_0", quant::QK4_0, sizeof(quant::block_q4_0), true, true},
     quant::dequantize_q4_0, quant::quantize_q4_0},
    {{GgmlType::Q4_1, "Q4_1", quant::QK4_1, sizeof(quant::block_q4_1), true, true},
     quant::dequantize_q4_1, quant::quantize_q4_1},
    {{GgmlType::Q5_0, "Q5_0", quant::QK5_0, sizeof(quant::block_q5_0), true, true},
     quant::dequantize_q5_0, quant::quantize_q5_0},
    {{GgmlType::Q5_1, "Q5_1", quant::QK5_1, sizeof(quant::block_q5_1), true, true},
     quant::dequantize_q5_1, quant::quantize_q5_1},
    {{GgmlType::Q8_0, "Q8_0", quant::QK8_0, sizeof(quant::block_q8_0), true, true},
     quant::dequantize_q8_0, quant::quantize_q8_0},
    {{GgmlType::Q8_1, "Q8_1", quant::QK8_1, sizeof(quant::block_q8_1), true, true},
     quant::dequantize_q8_1, quant::quantize_q8_1},
    {{GgmlType::Q2_K, "Q2_K", quant::QK_K, sizeof(quant::block_q2_K), true, true},
     quant::dequantize_q2_K, quant::quantize_q2_K},
    {{GgmlType::Q3_K, "Q3_K", quant::QK_K, sizeof(quant::block_q3_K), true, true},
     quant::dequantize_q3_K, quant::quantize_q3_K},
    {{GgmlType::Q4_K, "Q4_K", quant::QK_K, sizeof(quant::block_q4_K), true, true},
     quant::dequantize_q4_K, quant::quantize_q4_K},
    {{GgmlType::Q5_K, "Q5_K", quant::QK_K, sizeof(quant::block_q5_K), true, true},
     quant::dequantize_q5_K, quant::quantize_q5_K},
    {{GgmlType::Q6_K, "Q6_K", quant::QK_K, sizeof(quant::block_q6_K), true, true},
     quant::dequantize_q6_K, quant::quantize_q6_K},
    {{GgmlType::Q8_K, "Q8_K", quant::QK_K, sizeof(quant::block_q8_K), true, true},
     quant::dequantize_q8_K, quant::quantize_q8_K},
    {{GgmlType::BF16, "BF16", 1, 2, false, true}, dequantize_16bit<bf16_to_fp32>,
     quantize_16bit<fp32_to_bf16>},
}};

const TypeEntry* find_entry(uint32_t type_id) {
  for (const TypeEntry& e : kTypes) {
    if (static_cast<uint32_t>(e.traits.type) == type_id) return &e;
  }
  return nullptr;
}

const TypeEntry& entry(GgmlType type) {
  const TypeEntry* e = find_entry(static_cast<uint32_t>(type));
  if (e == nullptr) throw Error("unknown ggml type id " + std::to_string(static_cast<uint32_t>(type)));
  return *e;
}

// Number of blocks in a row of n elements; throws unless n is a non-negative multiple of the block size.
int64_t block_count(const TypeTraits& t, int64_t n, const char* what) {
  if (n < 0 || n % t.block_size != 0) {
    throw Error(std::string(what) + "(" + std::string(t.name) + "): row length " + std::to_string(n) +
                " is not a multiple of the block size " + std::to_string(t.block_size));
  }
  return n / t.block_size;
}

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t type_id) {
  const TypeEntry* e = find_entry(type_id);
  if (e == nullptr) return std::nullopt;
  return e->traits;
}

const TypeTraits& type_traits(GgmlType type) { return entry(type).traits; }

std::optional<GgmlType> type_from_name(std::string_view name) {
  for (const TypeEntry& e : kTypes) {
    const std::string_view candidate = e.traits.name;
    if (candidate.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) same = ascii_upper(name[i]) == candidate[i];
    if (same) return e.traits.type;
  }
  return std::nullopt;
}

size_t row_bytes(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  return static_cast<size_t>(block_count(t, n, "row_bytes")) * t.block_bytes;
}

// IEEE binary16 -> binary32 is exact. Subnormal halves are renormalised; NaNs keep sign and payload
// and come out quiet (as x86 F16C's vcvtph2ps does).
float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {  // inf / NaN
    bits = sign | 0x7F800000u | mantissa << 13 | (mantissa != 0 ? 0x00400000u : 0u);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    bits = sign | (exponent + 112) << 23 | mantissa << 13;
  } else if (mantissa == 0) {  // +-0
    bits = sign;
  } else {  // subnormal: value = mantissa * 2^-24; shift the leading 1 up to the implicit bit
    uint32_t e = 113;  // biased fp32 exponent of 2^-14, the smallest normal half
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | e << 23 | (mantissa & 0x3FFu) << 13;
  }
  return std::bit_cast<float>(bits);
}

// binary32 -> binary16, round to nearest, ties to even; overflow gives inf; NaNs keep sign and the top
// payload bits and come out quiet (as F16C's vcvtps2ph does).
uint16_t fp32_to_fp16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((abs_bits >> 13) & 0x3FFu));
  const uint32_t exponent = abs_bits >> 23;  // biased fp32 exponent
  if (exponent >= 143) return static_cast<uint16_t>(sign | 0x7C00u);  // |f| >= 2^16 (or inf)
  const uint32_t mantissa = abs_bits & 0x7FFFFFu;
  if (exponent >= 113) {  // normal half range, |f| >= 2^-14: drop 13 mantissa bits
    uint32_t h = (exponent - 112) << 10 | mantissa >> 13;
    const uint32_t rest = mantissa & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may roll over into inf: right
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal half: units of 2^-24. |f| = (mantissa | 2^23) * 2^(exponent - 150).
  const uint32_t shift = 126 - exponent;  // >= 14
  if (shift > 24) return sign;            // below half the smallest subnormal (or fp32 zero/subnormal)
  const uint32_t full = mantissa | 0x800000u;
  uint32_t h = full >> shift;
  const uint32_t rest = full & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (h & 1u))) ++h;  // may carry into the smallest normal: right
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// As ggml: NaNs are truncated and forced quiet; everything else rounds to nearest even (overflow to inf).
uint16_t fp32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + (0x7FFFu + ((bits >> 16) & 1u))) >> 16);
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const TypeEntry& e = entry(type);
  e.dequantize(src, dst, block_count(e.traits, n, "dequantize_row"));
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const TypeEntry& e = entry(type);
  e.quantize(src, dst, block_count(e.traits, n, "quantize_row"));
}

}  // namespace xelm
