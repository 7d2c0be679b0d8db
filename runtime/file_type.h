// file_type.h — llama.cpp's "file type" numbers (general.file_type) and the quantization mix names
// users know from llama-quantize (Q4_K_M, Q8_0, ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "runtime/ggml_types.h"

namespace xelm {

enum class FileType : uint32_t {
  ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q4_1 = 3, MOSTLY_Q8_0 = 7, MOSTLY_Q5_0 = 8,
  MOSTLY_Q5_1 = 9, MOSTLY_Q2_K = 10, MOSTLY_Q3_K_S = 11, MOSTLY_Q3_K_M = 12, MOSTLY_Q3_K_L = 13,
  MOSTLY_Q4_K_S = 14, MOSTLY_Q4_K_M = 15, MOSTLY_Q5_K_S = 16, MOSTLY_Q5_K_M = 17, MOSTLY_Q6_K = 18,
  MOSTLY_BF16 = 32,
};

struct FileTypeInfo {
  FileType file_type;
  std::string_view name;   // "Q4_K_M"
  GgmlType base_type;      // the type most tensors get
};

std::optional<FileTypeInfo> file_type_from_name(std::string_view name);  // case-insensitive
std::optional<FileTypeInfo> file_type_info(uint32_t file_type);
// The file type of a model whose matrices are all `type`.
FileType file_type_for(GgmlType type);

}  // namespace xelm
