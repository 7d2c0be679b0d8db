// ref_backend.h — the scalar CPU reference backend: every op written the obvious way with fp32
// accumulation, supporting every weight type by dequantizing rows with the reference routines.
// It is the oracle that the AVX2 and OpenCL backends are tested against; it is not meant to be fast.
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace xelm::cpu {

std::unique_ptr<Backend> make_reference_backend();

}  // namespace xelm::cpu
