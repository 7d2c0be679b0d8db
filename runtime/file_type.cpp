// file_type.cpp — the table behind file_type.h.
#include "runtime/file_type.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace xelm {
namespace {

constexpr std::array<FileTypeInfo, 17> kFileTypes{{
    {FileType::ALL_F32, "F32", GgmlType::F32},
    {FileType::MOSTLY_F16, "F16", GgmlType::F16},
    {FileType::MOSTLY_BF16, "BF16", GgmlType::BF16},
    {FileType::MOSTLY_Q4_0, "Q4_0", GgmlType::Q4_0},
    {FileType::MOSTLY_Q4_1, "Q4_1", GgmlType::Q4_1},
    {FileType::MOSTLY_Q5_0, "Q5_0", GgmlType::Q5_0},
    {FileType::MOSTLY_Q5_1, "Q5_1", GgmlType::Q5_1},
    {FileType::MOSTLY_Q8_0, "Q8_0", GgmlType::Q8_0},
    {FileType::MOSTLY_Q2_K, "Q2_K", GgmlType::Q2_K},
    {FileType::MOSTLY_Q3_K_S, "Q3_K_S", GgmlType::Q3_K},
    {FileType::MOSTLY_Q3_K_M, "Q3_K_M", GgmlType::Q3_K},
    {FileType::MOSTLY_Q3_K_L, "Q3_K_L", GgmlType::Q3_K},
    {FileType::MOSTLY_Q4_K_S, "Q4_K_S", GgmlType::Q4_K},
    {FileType::MOSTLY_Q4_K_M, "Q4_K_M", GgmlType::Q4_K},
    {FileType::MOSTLY_Q5_K_S, "Q5_K_S", GgmlType::Q5_K},
    {FileType::MOSTLY_Q5_K_M, "Q5_K_M", GgmlType::Q5_K},
    {FileType::MOSTLY_Q6_K, "Q6_K", GgmlType::Q6_K},
}};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<FileTypeInfo> file_type_from_name(std::string_view name) {
  for (const FileTypeInfo& info : kFileTypes) {
    if (iequals(info.name, name)) return info;
  }
  return std::nullopt;
}

std::optional<FileTypeInfo> file_type_info(uint32_t file_type) {
  for (const FileTypeInfo& info : kFileTypes) {
    if (static_cast<uint32_t>(info.file_type) == file_type) return info;
  }
  return std::nullopt;
}

FileType file_type_for(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return FileType::ALL_F32;
    case GgmlType::F16: return FileType::MOSTLY_F16;
    case GgmlType::BF16: return FileType::MOSTLY_BF16;
    case GgmlType::Q4_0: return FileType::MOSTLY_Q4_0;
    case GgmlType::Q4_1: return FileType::MOSTLY_Q4_1;
    case GgmlType::Q5_0: return FileType::MOSTLY_Q5_0;
    case GgmlType::Q5_1: return FileType::MOSTLY_Q5_1;
    case GgmlType::Q8_0: return FileType::MOSTLY_Q8_0;
    case GgmlType::Q2_K: return FileType::MOSTLY_Q2_K;
    case GgmlType::Q3_K: return FileType::MOSTLY_Q3_K_M;
    case GgmlType::Q4_K: return FileType::MOSTLY_Q4_K_M;
    case GgmlType::Q5_K: return FileType::MOSTLY_Q5_K_M;
    case GgmlType::Q6_K: return FileType::MOSTLY_Q6_K;
    default: return FileType::ALL_F32;
  }
}

}  // namespace xelm
