// cpu_backend.h — picks the CPU backend for this machine at run time: the AVX2 backend when the CPU
// has AVX2, FMA and F16C (with the best product kernels it has: AVX-512 VNNI, AVX-VNNI or AVX2), the
// scalar reference backend otherwise.
#pragma once

#include <memory>
#include <string_view>

#include "runtime/backend.h"

namespace xelm::cpu {

// n_threads <= 0: one per physical core (the reference backend is single-threaded). isa: "auto" (the
// best the CPU has), or "avx2", "avxvnni", "avx512" to force one (--cpu-isa; xelm::Error with a
// one-line message when the CPU lacks it).
std::unique_ptr<Backend> make_cpu_backend(int n_threads, std::string_view isa = "auto");

}  // namespace xelm::cpu
