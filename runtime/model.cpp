// model.cpp — binds GGUF tensors to their roles (llama.cpp's tensor names) and checks each shape.
#include "runtime/model.h"

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

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) { return from_file(gguf::GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_file(std::unique_ptr<gguf::GgufFile> file) {
  auto model = std::unique_ptr<Model>(new Model());
  model->config_ = ModelConfig::from_gguf(*file);
  const ModelConfig& c = model->config_;
  Binder bind(*file);
  ModelWeights& w = model->weights_;
  w.token_embd = bind.required("token_embd.weight", {c.n_embd, c.n_vocab});
  w.output_norm = bind.required("output_norm.weight", {c.n_embd});
  w.output = c.tied_output ? w.token_embd : bind.required("output.weight", {c.n_embd, c.n_vocab});
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
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
