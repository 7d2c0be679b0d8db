// surgery.cpp — writing a GGUF with a layer plan applied (see surgery.h).
#include "runtime/surgery.h"

#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {
namespace {

// "blk.12.attn_q.weight" -> (12, "attn_q.weight"); nullopt for tensors outside the layers.
std::optional<std::pair<int64_t, std::string>> split_layer_name(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return std::nullopt;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return std::nullopt;
  int64_t layer = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    layer = layer * 10 + (name[i] - '0');
    if (layer > (1 << 20)) return std::nullopt;
  }
  return std::make_pair(layer, name.substr(dot + 1));
}

}  // namespace

SurgeryStats write_surgery(const gguf::GgufFile& in, const LayerPlan& plan, const std::string& out_path) {
  const std::string arch = in.get_string("general.architecture");
  const std::string block_count_key = arch + ".block_count";
  const int64_t n_source = in.get_int(block_count_key);
  if (plan.n_source != n_source) {
    throw Error(fmt::format("{}: the layer plan is for {} layers, the model has {}", in.path(), plan.n_source, n_source));
  }
  // Each source layer's tensors by suffix, in file order.
  std::vector<std::vector<std::pair<std::string, const gguf::TensorInfo*>>> layer_tensors(static_cast<size_t>(n_source));
  for (const gguf::TensorInfo& t : in.tensors()) {
    if (const auto split = split_layer_name(t.name)) {
      if (split->first >= n_source) {
        throw Error(fmt::format("{}: tensor '{}' is beyond the {} layers of block_count", in.path(), t.name, n_source));
      }
      layer_tensors[static_cast<size_t>(split->first)].emplace_back(split->second, &t);
    }
  }

  gguf::GgufWriter w;
  w.copy_metadata_from(in);
  w.set_u32(block_count_key, static_cast<uint32_t>(plan.size()));
  // Provenance: earlier surgery on the source is kept in front of this one.
  const std::string previous = in.find_string(kSurgeryOperationsKey).value_or("");
  w.set_string(kSurgeryOperationsKey, previous.empty() ? plan.operations : previous + "; " + plan.operations);
  w.set_string(kSurgeryLayersKey, plan.describe());
  w.set_string(kSurgerySourceKey, std::filesystem::path(in.path()).filename().string());

  SurgeryStats stats;
  std::deque<OwnedTensor> mixed;  // alive until write() returns
  bool layers_written = false;
  auto write_layers = [&] {
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const LayerMix& mix = plan.layers[i];
      for (const auto& entry : layer_tensors[static_cast<size_t>(mix.source())]) {
        const std::string name = fmt::format("blk.{}.{}", i, entry.first);
        if (mix.is_plain()) {
          w.add_tensor(name, entry.second->type, entry.second->shape, entry.second->data);
          ++stats.tensors_copied;
          stats.bytes_written += entry.second->n_bytes;
          continue;
        }
        std::vector<std::pair<const gguf::TensorInfo*, float>> terms;
        for (const auto& term : mix.terms) {
          const std::string source_name = fmt::format("blk.{}.{}", term.first, entry.first);
          const gguf::TensorInfo* t = in.find_tensor(source_name);
          if (t == nullptr) throw Error(fmt::format("{}: missing tensor '{}' to interpolate", in.path(), source_name));
          terms.emplace_back(t, term.second);
        }
        const OwnedTensor& m = mixed.emplace_back(mix_tensors(terms, name));
        w.add_tensor(name, m.info.type, m.info.shape, m.info.data);
        ++stats.tensors_mixed;
        stats.bytes_written += m.info.n_bytes;
      }
    }
  };
  for (const gguf::TensorInfo& t : in.tensors()) {
    if (split_layer_name(t.name)) {
      if (!layers_written) write_layers();
      layers_written = true;
      continue;
    }
    w.add_tensor(t.name, t.type, t.shape, t.data);
    ++stats.tensors_copied;
    stats.bytes_written += t.n_bytes;
  }
  if (!layers_written) write_layers();
  w.write(out_path);
  return stats;
}

}  // namespace xelm
