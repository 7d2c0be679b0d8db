// avx2_backend.h — the AVX2/FMA/F16C CPU backend: integer-dot quantized matmuls, fp32 FMA for float
// weights, tiled online-softmax attention, all spread over a persistent thread pool.
// Only call make_avx2_backend when cpu_features() reports avx2, fma and f16c (see cpu_backend.h).
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace xelm::cpu {

// n_threads <= 0: one per physical core.
std::unique_ptr<Backend> make_avx2_backend(int n_threads);

}  // namespace xelm::cpu
