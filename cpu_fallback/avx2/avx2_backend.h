// avx2_backend.h — the AVX2/FMA/F16C CPU backend: integer-dot quantized matmuls, fp32 FMA for float
// weights, tiled online-softmax attention, all spread over a persistent thread pool.
// Only call make_avx2_backend when has_isa(cpu_features(), isa) (see cpu_backend.h).
#pragma once

#include <memory>

#include "cpu_fallback/cpu_features.h"
#include "runtime/backend.h"

namespace xelm::cpu {

// n_threads <= 0: one per physical core. isa: the instruction set of the product kernels (the other
// ops are AVX2 whatever it is); name() says which, "cpu-avx2", "cpu-avx2+avxvnni" or "cpu-avx2+avx512".
std::unique_ptr<Backend> make_avx2_backend(int n_threads, CpuIsa isa = CpuIsa::Avx2);

}  // namespace xelm::cpu
