// offload_plan.cpp — -ngl semantics, layer lists, the memory estimate and the auto choice.
#include "runtime/offload_plan.h"

#include <algorithm>
#include <set>
#include <sstream>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "runtime/error.h"

namespace xelm {

int64_t OffloadPlan::n_gpu_layers() const { return std::count(layer_on_gpu.begin(), layer_on_gpu.end(), true); }

bool OffloadPlan::any_gpu() const { return embedding_on_gpu || head_on_gpu || n_gpu_layers() > 0; }

OffloadPlan OffloadPlan::last_n_layers(int64_t n_layer, int64_t n_gpu_layers) {
  if (n_gpu_layers < 0) throw Error(fmt::format("-ngl must be 0 or more (got {})", n_gpu_layers));
  OffloadPlan p;
  p.layer_on_gpu.assign(static_cast<size_t>(n_layer), false);
  const int64_t n = std::min(n_gpu_layers, n_layer);
  for (int64_t i = n_layer - n; i < n_layer; ++i) p.layer_on_gpu[static_cast<size_t>(i)] = true;
  p.head_on_gpu = n_gpu_layers >= 1;
  p.embedding_on_gpu = n_gpu_layers > n_layer;  // "everything" (llama.cpp keeps the lookup on the CPU; so do we below that)
  return p;
}

OffloadPlan OffloadPlan::from_layer_list(int64_t n_layer, const std::string& list, bool embedding_on_gpu, bool head_on_gpu) {
  OffloadPlan p;
  p.layer_on_gpu.assign(static_cast<size_t>(n_layer), false);
  p.embedding_on_gpu = embedding_on_gpu;
  p.head_on_gpu = head_on_gpu;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const size_t dash = item.find('-');
    int64_t first = 0, last = 0;
    try {
      size_t used = 0;
      first = std::stoll(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash)) throw std::invalid_argument(item);
      last = first;
      if (dash != std::string::npos) {
        last = std::stoll(item.substr(dash + 1), &used);
        if (used != item.size() - dash - 1) throw std::invalid_argument(item);
      }
    } catch (const std::exception&) {
      throw Error(fmt::format("--layers-gpu: '{}' is not a layer or range like 4-27", item));
    }
    if (first < 0 || last >= n_layer || first > last) {
      throw Error(fmt::format("--layers-gpu: '{}' is outside the model's layers 0-{}", item, n_layer - 1));
    }
    for (int64_t i = first; i <= last; ++i) p.layer_on_gpu[static_cast<size_t>(i)] = true;
  }
  return p;
}

std::string OffloadPlan::describe() const {
  auto ranges = [&](bool on_gpu) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < layer_on_gpu.size();) {
      if (layer_on_gpu[i] != on_gpu) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j + 1 < layer_on_gpu.size() && layer_on_gpu[j + 1] == on_gpu) ++j;
      parts.push_back(i == j ? fmt::format("{}", i) : fmt::format("{}-{}", i, j));
      i = j + 1;
    }
    return parts;
  };
  auto side = [&](bool on_gpu) {
    std::vector<std::string> parts;
    if (embedding_on_gpu == on_gpu) parts.push_back("embedding");
    const auto layers = ranges(on_gpu);
    if (!layers.empty()) parts.push_back("layers " + fmt::format("{}", fmt::join(layers, ",")));
    if (head_on_gpu == on_gpu) parts.push_back("output head");
    return parts.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(parts, ", "));
  };
  return fmt::format("GPU: {}; CPU: {}", side(true), side(false));
}

Placement place(const OffloadPlan& plan, Backend& cpu, Backend* gpu) {
  auto pick = [&](bool on_gpu) { return on_gpu && gpu != nullptr ? gpu : &cpu; };
  Placement p;
  p.embedding = pick(plan.embedding_on_gpu);
  p.head = pick(plan.head_on_gpu);
  for (bool on_gpu : plan.layer_on_gpu) p.layers.push_back(pick(on_gpu));
  return p;
}

MemoryEstimate estimate_memory(const Model& model, const OffloadPlan& plan, const RunShape& shape) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  MemoryEstimate e;
  std::set<WeightTensor> on_cpu, on_gpu;
  auto place = [&](bool gpu, WeightTensor t) {
    if (t != nullptr && (gpu ? on_gpu : on_cpu).insert(t).second) (gpu ? e.gpu : e.cpu).weight_bytes += t->n_bytes;
  };
  place(plan.embedding_on_gpu, w.token_embd);
  place(plan.head_on_gpu, w.output_norm);
  place(plan.head_on_gpu, w.output);
  const uint64_t kv_per_layer =
      2 * static_cast<uint64_t>(shape.n_ctx) * row_bytes(shape.kv_type, c.kv_dim());
  const uint64_t scratch = static_cast<uint64_t>(shape.n_batch) * sizeof(float) *
                           static_cast<uint64_t>(3 * c.n_embd + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff);
  const uint64_t logits = static_cast<uint64_t>(shape.n_batch) * sizeof(float) * static_cast<uint64_t>(c.n_vocab);
  bool cpu_used = !plan.embedding_on_gpu || !plan.head_on_gpu, gpu_used = plan.embedding_on_gpu || plan.head_on_gpu;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const bool gpu = plan.layer_on_gpu[static_cast<size_t>(i)];
    (gpu ? gpu_used : cpu_used) = true;
    const LayerWeights& l = w.layers[static_cast<size_t>(i)];
    for (WeightTensor t : {l.attn_norm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.wo, l.ffn_norm,
                           l.w_gate, l.w_up, l.w_down}) {
      place(gpu, t);
    }
    (gpu ? e.gpu : e.cpu).kv_bytes += kv_per_layer;
  }
  if (cpu_used) e.cpu.scratch_bytes = scratch + (plan.head_on_gpu ? 0 : logits);
  if (gpu_used) e.gpu.scratch_bytes = scratch + (plan.head_on_gpu ? logits : 0);
  return e;
}

void check_fits(const MemoryEstimate& estimate, const DeviceBudget& device) {
  if (estimate.gpu.total() > device.memory_bytes) {
    throw Error(fmt::format("the plan needs {} on {} (weights {}, KV cache {}, scratch {}) but the device offers {}; "
                            "use fewer GPU layers (-ngl), a smaller context (-c) or -ngl auto",
                            format_bytes(estimate.gpu.total()), device.name, format_bytes(estimate.gpu.weight_bytes),
                            format_bytes(estimate.gpu.kv_bytes), format_bytes(estimate.gpu.scratch_bytes),
                            format_bytes(device.memory_bytes)));
  }
}

int64_t auto_gpu_layers(const Model& model, const RunShape& shape, const DeviceBudget& device) {
  const int64_t n_layer = model.config().n_layer;
  for (int64_t n = n_layer + 1; n >= 1; --n) {  // n_layer + 1: the embedding too
    if (estimate_memory(model, OffloadPlan::last_n_layers(n_layer, n), shape).gpu.total() <= device.memory_bytes) {
      return n;
    }
  }
  return 0;
}

DeviceBudget apply_memory_cap(DeviceBudget device, uint64_t cap_bytes) {
  if (cap_bytes > 0 && cap_bytes < device.memory_bytes) {
    device.memory_bytes = cap_bytes;
    device.name += " (capped by XELM_DEVICE_MEMORY_MB)";
  }
  return device;
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < (1u << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024.0);
  if (bytes < (1ull << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1ull << 30));
}

}  // namespace xelm
