// model.cpp — binds GGUF tensors to their roles (llama.cpp's tensor names) and checks each shape.
#include "runtime/model.h"

#include <algorithm>
#include <set>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "runtime/error.h"

namespace xelm {
namespace {

class Binder {
 public:
  explicit Binder(const gguf::GgufFile& file) : file_(file) {}

  WeightTensor required(const std::string& name, std::vector<int64_t> shape) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (t == nullptr) throw Error(fmt::format("{}: missing tensor '{}'", file_.path(), name));
    return check(*t, shape);
  }
  WeightTensor optional(const std::string& name, std::vector<int64_t> shape) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    return t == nullptr ? nullptr : check(*t, shape);
  }
  WeightTensor forbidden(const std::string& name, std::string_view why) {
    if (file_.find_tensor(name) != nullptr) {
      throw Error(fmt::format("{}: unexpected tensor '{}' ({})", file_.path(), name, why));
    }
    return nullptr;
  }

 private:
  WeightTensor check(const gguf::TensorInfo& t, const std::vector<int64_t>& shape) {
    if (t.shape != shape) {
      throw Error(fmt::format("{}: tensor '{}' has shape {}, expected [{}]", file_.path(), t.name, t.shape_string(),
                              fmt::join(shape, ", ")));
    }
    return &t;
  }
  const gguf::GgufFile& file_;
};

// The tensor name after "blk.N." ("attn_q.weight").
std::string_view role_suffix(const std::string& name) {
  const size_t dot = name.find('.', 4);
  return dot == std::string::npos ? std::string_view(name) : std::string_view(name).substr(dot + 1);
}

// Every tensor slot of a layer, for walking them in one loop.
std::vector<WeightTensor LayerWeights::*> layer_slots() {
  return {&LayerWeights::attn_norm, &LayerWeights::wq,     &LayerWeights::wk,       &LayerWeights::wv,
          &LayerWeights::bq,        &LayerWeights::bk,     &LayerWeights::bv,       &LayerWeights::q_norm,
          &LayerWeights::k_norm,    &LayerWeights::wo,     &LayerWeights::ffn_norm, &LayerWeights::w_gate,
          &LayerWeights::w_up,      &LayerWeights::w_down};
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, std::string_view layer_plan) {
  return from_file(gguf::GgufFile::open(path), layer_plan);
}

std::unique_ptr<Model> Model::from_file(std::unique_ptr<gguf::GgufFile> file, std::string_view layer_plan) {
  return bind_layers(std::move(file), nullptr, layer_plan);
}

std::unique_ptr<Model> Model::with_plan(const LayerPlan& plan) const { return bind_layers(file_, &plan, {}); }

std::unique_ptr<Model> Model::bind_layers(std::shared_ptr<const gguf::GgufFile> file, const LayerPlan* plan,
                                   std::string_view plan_text) {
  auto model = std::unique_ptr<Model>(new Model());
  model->config_ = ModelConfig::from_gguf(*file);
  const ModelConfig& c = model->config_;
  Binder bind(*file);
  ModelWeights& w = model->weights_;
  w.token_embd = bind.required("token_embd.weight", {c.n_embd, c.n_vocab});
  w.output_norm = bind.required("output_norm.weight", {c.n_embd});
  w.output = c.tied_output ? w.token_embd : bind.required("output.weight", {c.n_embd, c.n_vocab});
  std::vector<LayerWeights> source(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerWeights& l = source[static_cast<size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    l.attn_norm = bind.required(p + "attn_norm.weight", {c.n_embd});
    l.wq = bind.required(p + "attn_q.weight", {c.n_embd, c.q_dim()});
    l.wk = bind.required(p + "attn_k.weight", {c.n_embd, c.kv_dim()});
    l.wv = bind.required(p + "attn_v.weight", {c.n_embd, c.kv_dim()});
    l.wo = bind.required(p + "attn_output.weight", {c.q_dim(), c.n_embd});
    if (c.has_qkv_bias()) {
      l.bq = bind.required(p + "attn_q.bias", {c.q_dim()});
      l.bk = bind.required(p + "attn_k.bias", {c.kv_dim()});
      l.bv = bind.required(p + "attn_v.bias", {c.kv_dim()});
    } else {
      l.bq = bind.optional(p + "attn_q.bias", {c.q_dim()});
      l.bk = bind.optional(p + "attn_k.bias", {c.kv_dim()});
      l.bv = bind.optional(p + "attn_v.bias", {c.kv_dim()});
    }
    if (c.has_qk_norm()) {
      l.q_norm = bind.required(p + "attn_q_norm.weight", {c.head_dim});
      l.k_norm = bind.required(p + "attn_k_norm.weight", {c.head_dim});
    } else {
      l.q_norm = bind.forbidden(p + "attn_q_norm.weight", "qwen2 has no q/k norm");
      l.k_norm = bind.forbidden(p + "attn_k_norm.weight", "qwen2 has no q/k norm");
    }
    l.ffn_norm = bind.required(p + "ffn_norm.weight", {c.n_embd});
    l.w_gate = bind.required(p + "ffn_gate.weight", {c.n_embd, c.n_ff});
    l.w_up = bind.required(p + "ffn_up.weight", {c.n_embd, c.n_ff});
    l.w_down = bind.required(p + "ffn_down.weight", {c.n_ff, c.n_embd});
  }
  // The plan: logical layer i binds its source layer's tensors, or a mix of several source layers'.
  model->plan_ = plan != nullptr ? *plan : LayerPlan::parse(plan_text, c.n_layer);
  if (model->plan_.n_source != c.n_layer) {
    throw Error(fmt::format("{}: the layer plan is for {} layers, the model has {}", file->path(),
                            model->plan_.n_source, c.n_layer));
  }
  for (const LayerMix& mix : model->plan_.layers) {
    if (mix.is_plain()) {
      w.layers.push_back(source[static_cast<size_t>(mix.source())]);
      continue;
    }
    LayerWeights l{};  // absent roles stay null
    for (WeightTensor LayerWeights::*slot : layer_slots()) {
      std::vector<std::pair<const gguf::TensorInfo*, float>> terms;
      for (const auto& [layer, weight] : mix.terms) terms.emplace_back(source[static_cast<size_t>(layer)].*slot, weight);
      const bool any = std::any_of(terms.begin(), terms.end(), [](const auto& t) { return t.first != nullptr; });
      const bool all = std::all_of(terms.begin(), terms.end(), [](const auto& t) { return t.first != nullptr; });
      if (!any) continue;
      if (!all) throw Error(fmt::format("{}: cannot interpolate layers where only some have a tensor", file->path()));
      const std::string name = fmt::format("blk.{}.{}", w.layers.size(), role_suffix(terms[0].first->name));
      l.*slot = &model->mixed_.emplace_back(mix_tensors(terms, name)).info;
    }
    w.layers.push_back(l);
  }
  model->config_.n_layer = model->plan_.size();
  // Small vectors (norms, biases) are applied element-wise and must be plain floats.
  auto require_float = [&](WeightTensor t) {
    if (t != nullptr && t->type != GgmlType::F32 && t->type != GgmlType::F16 && t->type != GgmlType::BF16) {
      throw Error(fmt::format("{}: tensor '{}' has type {}, expected F32, F16 or BF16", file->path(), t->name,
                              type_traits(t->type).name));
    }
  };
  require_float(w.output_norm);
  for (const LayerWeights& l : w.layers) {
    for (WeightTensor t : {l.attn_norm, l.ffn_norm, l.q_norm, l.k_norm, l.bq, l.bk, l.bv}) require_float(t);
  }
  model->file_ = std::move(file);
  return model;
}

uint64_t Model::weight_bytes() const {
  std::set<WeightTensor> seen;
  uint64_t total = 0;
  auto add = [&](WeightTensor t) {
    if (t != nullptr && seen.insert(t).second) total += t->n_bytes;
  };
  add(weights_.token_embd);
  add(weights_.output_norm);
  add(weights_.output);
  for (const LayerWeights& l : weights_.layers) {
    for (WeightTensor t : {l.attn_norm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.wo, l.ffn_norm,
                           l.w_gate, l.w_up, l.w_down}) {
      add(t);
    }
  }
  return total;
}

}  // namespace xelm
