// cpu_features.h — what the host CPU can run, detected once at run time (the binary itself is built
// for baseline x86-64, so the AVX2 path and its VNNI kernels are chosen here, never assumed), and the
// instruction set the CPU backend's integer kernels use (CpuIsa).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xelm::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avxvnni = false;     // AVX-VNNI: VEX vpdpbusd on ymm (CPUID.(7,1):EAX[4]; Alder/Raptor Lake)
  bool avx512f = false;     // the AVX-512 bits are set only where the OS saves the ZMM state (XGETBV)
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;  // EVEX vpdpbusd (Tiger Lake, Ice Lake, Sapphire Rapids, Zen 4)
  int logical_cores = 1;
  int physical_cores = 1;
  std::string summary() const;  // "AVX2 FMA F16C AVX-VNNI, 2 physical / 2 logical cores"
};

const CpuFeatures& cpu_features();

// The instruction set of the AVX2 backend's quantized-product kernels (cpu_fallback/avx2/kernels.h):
//   Avx2     maddubs + madd (AVX2, FMA, F16C)
//   AvxVnni  vpdpbusd / vpdpwssd on ymm, VEX-encoded (AVX2 + AVX-VNNI)
//   Avx512   the same on ymm, EVEX-encoded, with AVX-512's 32 vector registers (AVX2 + AVX-512 F/BW/VL/VNNI)
enum class CpuIsa { Avx2, AvxVnni, Avx512 };
inline constexpr CpuIsa kAllCpuIsas[] = {CpuIsa::Avx2, CpuIsa::AvxVnni, CpuIsa::Avx512};

std::string_view isa_name(CpuIsa isa);                      // "avx2", "avxvnni", "avx512"
std::optional<CpuIsa> parse_isa(std::string_view name);     // the inverse; nullopt for other names
bool has_isa(const CpuFeatures& f, CpuIsa isa);             // every instruction set isa needs
std::string_view isa_requirements(CpuIsa isa);              // "AVX2, FMA, F16C and AVX-VNNI", for errors
// The ISA for a request: "auto" (or "") gives the best the CPU has (avx512 > avxvnni > avx2), nullopt
// when it lacks AVX2/FMA/F16C; a named ISA the CPU lacks throws xelm::Error with a one-line message.
std::optional<CpuIsa> choose_isa(const CpuFeatures& f, std::string_view request);

}  // namespace xelm::cpu
