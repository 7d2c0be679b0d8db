// ggml_types.h — tensor element types as stored in GGUF files (ggml's type ids and block layouts),
// and the scalar reference conversions between them and fp32.
//
// Block layouts are byte-exact with ggml so any GGUF published for llama.cpp loads. The reference
// quantizers reproduce ggml's rounding and scale search, so re-quantizing gives the files users know.
// These routines are the oracle the AVX2 and OpenCL paths are tested against: obvious, not fast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace xelm {

// Numeric ids are ggml's (they are what GGUF files store). Ids not listed are unsupported.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeTraits {
  GgmlType type;
  std::string_view name;      // ggml's spelling: "F32", "Q4_K", ...
  int64_t block_size;         // elements per block (1 for F32/F16/BF16, 32 or 256 for quants)
  size_t block_bytes;         // bytes per block
  bool is_quantized;
  bool can_quantize;          // quantize_row() is implemented for it (Q8_1 is activation-only etc.)
};

// Traits of a type id read from a file; nullopt for ids xelm does not know (unsupported type).
std::optional<TypeTraits> type_traits(uint32_t type_id);
const TypeTraits& type_traits(GgmlType type);  // for known types (always succeeds)
std::optional<GgmlType> type_from_name(std::string_view name);  // case-insensitive "q4_k" -> Q4_K

// Bytes of a row of n elements; n must be a multiple of the block size (throws xelm::Error otherwise).
size_t row_bytes(GgmlType type, int64_t n);

// fp16 / bf16 scalar conversions (IEEE half, round-to-nearest-even; bf16 like ggml: RNE, NaN kept quiet).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

// Reference conversions of one row of n elements (n a multiple of the block size).
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace xelm
