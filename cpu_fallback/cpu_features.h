// cpu_features.h — what the host CPU can run, detected once at run time (the binary itself is built
// for baseline x86-64, so the AVX2 path is chosen here, never assumed).
#pragma once

#include <string>

namespace xelm::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512vnni = false;
  int logical_cores = 1;
  int physical_cores = 1;
  std::string summary() const;  // "AVX2 FMA F16C, 2 physical / 2 logical cores"
};

const CpuFeatures& cpu_features();

}  // namespace xelm::cpu
