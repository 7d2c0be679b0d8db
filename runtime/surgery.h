// surgery.h — writes a model with a LayerPlan applied as a new GGUF file (`xelm surgery`): layer
// tensors renumbered in the plan's order, <arch>.block_count updated, every other metadata key and
// the tokenizer kept, the plan recorded as provenance in general.surgery.* keys. Tensor bytes of
// plain layers are copied as they are (no dequantization); interpolated layers are dequantized,
// mixed and requantized to the lowest-numbered source layer's type (mix_tensors, as at load time).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/gguf.h"
#include "runtime/layer_plan.h"

namespace xelm {

struct SurgeryStats {
  int64_t tensors_copied = 0;   // written byte for byte
  int64_t tensors_mixed = 0;    // interpolated (requantized)
  uint64_t bytes_written = 0;   // tensor data
};

// Provenance keys written by write_surgery.
inline constexpr const char* kSurgeryOperationsKey = "general.surgery.operations";
inline constexpr const char* kSurgeryLayersKey = "general.surgery.layers";
inline constexpr const char* kSurgerySourceKey = "general.surgery.source";

// Writes `in` with `plan` applied to out_path (atomically). Throws xelm::Error on a plan for another
// layer count, a missing layer tensor or an I/O failure.
SurgeryStats write_surgery(const gguf::GgufFile& in, const LayerPlan& plan, const std::string& out_path);

}  // namespace xelm
