// cpu_backend.h — picks the CPU backend for this machine at run time: the AVX2 backend when the CPU
// has AVX2, FMA and F16C, the scalar reference backend otherwise.
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace xelm::cpu {

// n_threads <= 0: one per physical core (the reference backend is single-threaded).
std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace xelm::cpu
