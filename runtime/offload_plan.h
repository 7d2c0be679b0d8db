// offload_plan.h — which parts of a model run on the GPU and which on the CPU, and what each
// device must hold for that, computed before anything is loaded.
//
// Semantics follow llama.cpp's -ngl: the last N repeating layers go to the GPU, the output norm +
// head too once N >= 1, N above the layer count means everything; the token embedding lookup stays
// on the CPU unless asked for. `auto` picks the largest N whose weights, KV cache and scratch fit
// the device's memory and allocation limits. An explicit plan names the GPU layers ("4-27,30").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/transformer.h"

namespace xelm {

struct OffloadPlan {
  bool embedding_on_gpu = false;
  std::vector<bool> layer_on_gpu;   // one per repeating layer
  bool head_on_gpu = false;

  int64_t n_gpu_layers() const;
  bool any_gpu() const;
  std::string describe() const;     // "layers 20-27 + head on GPU; embedding, layers 0-19 on CPU"

  static OffloadPlan last_n_layers(int64_t n_layer, int64_t n_gpu_layers);  // -ngl N
  // "4-27,30" (inclusive ranges, any order); throws xelm::Error naming the bad item.
  static OffloadPlan from_layer_list(int64_t n_layer, const std::string& list, bool embedding_on_gpu, bool head_on_gpu);
};

// The backends that run each part under `plan` (gpu may be null: everything on the CPU).
Placement place(const OffloadPlan& plan, Backend& cpu, Backend* gpu);

// What one device offers: total memory usable for xelm and the largest single buffer.
struct DeviceBudget {
  std::string name;
  uint64_t memory_bytes = 0;
  uint64_t max_alloc_bytes = 0;
};

struct DeviceUsage {
  uint64_t weight_bytes = 0;   // each tensor once (tied embeddings shared by lookup and head)
  uint64_t kv_bytes = 0;
  uint64_t scratch_bytes = 0;  // activations for one batch (+ logits on the head's device)
  uint64_t total() const { return weight_bytes + kv_bytes + scratch_bytes; }
};

struct MemoryEstimate {
  DeviceUsage cpu, gpu;
};

struct RunShape {
  int64_t n_ctx = 4096;
  int64_t n_batch = 512;
  GgmlType kv_type = GgmlType::F16;
};

MemoryEstimate estimate_memory(const Model& model, const OffloadPlan& plan, const RunShape& shape);

// Throws xelm::Error naming the limit when the plan's GPU part cannot fit the device.
void check_fits(const MemoryEstimate& estimate, const DeviceBudget& device);

// The largest -ngl whose GPU part fits (0 when not even one layer does).
int64_t auto_gpu_layers(const Model& model, const RunShape& shape, const DeviceBudget& device);

// `device` with its memory capped at cap_bytes (0 = no cap), to simulate a small GPU; the CLI takes
// the cap from XELM_DEVICE_MEMORY_MB (tools/xelm/environment.h), which the capped name mentions.
DeviceBudget apply_memory_cap(DeviceBudget device, uint64_t cap_bytes);

std::string format_bytes(uint64_t bytes);  // "1.23 GiB"

}  // namespace xelm
