// transformer.cpp — the layer loop. Shapes in comments: n = tokens in this batch.
#include "runtime/transformer.h"

#include <algorithm>
#include <cmath>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"

namespace xelm {

Placement Placement::all_on(Backend& backend, int64_t n_layer) {
  Placement p;
  p.embedding = &backend;
  p.head = &backend;
  p.layers.assign(static_cast<size_t>(n_layer), &backend);
  return p;
}

struct Transformer::BackendState {
  std::map<WeightTensor, std::unique_ptr<Weight>> weights;  // one prepared copy per tensor (tied embd shared)
  std::map<int64_t, std::unique_ptr<KvCacheLayer>> kv;      // layer index -> its cache
  // Scratch for one batch, allocated for n_batch rows.
  std::unique_ptr<Activation> x;      // [n, n_embd] residual stream
  std::unique_ptr<Activation> h;      // [n, n_embd] normed input of a sub-block
  std::unique_ptr<Activation> q;      // [n, n_head * head_dim]
  std::unique_ptr<Activation> k, v;   // [n, n_head_kv * head_dim]
  std::unique_ptr<Activation> attn;   // [n, n_head * head_dim]
  std::unique_ptr<Activation> proj;   // [n, n_embd] output of attn_output / ffn_down
  std::unique_ptr<Activation> ffn;    // [n, n_ff] the SwiGLU output silu(W_gate·h) * (W_up·h)
  std::unique_ptr<Activation> up;     // [n, n_ff] scratch: W_up·h
  // [n, n_vocab] on the head backend only: one row until an all-logits eval needs n_batch rows
  // (n_batch × n_vocab floats is 300 MiB for Qwen's vocabulary at n_batch 512).
  std::unique_ptr<Activation> logits;
  std::unique_ptr<Activation> last;   // [1, n_embd] the last row, when only its logits are wanted
};

Transformer::Transformer(const Model& model, Placement placement, TransformerOptions options)
    : model_(model), placement_(std::move(placement)) {
  const ModelConfig& c = model.config();
  if (placement_.embedding == nullptr || placement_.head == nullptr ||
      placement_.layers.size() != static_cast<size_t>(c.n_layer) ||
      std::find(placement_.layers.begin(), placement_.layers.end(), nullptr) != placement_.layers.end()) {
    throw Error("internal: placement does not cover every part of the model");
  }
  if (options.n_ctx < 1) throw Error(fmt::format("context size must be at least 1 (got {})", options.n_ctx));
  if (options.n_batch < 1) throw Error(fmt::format("batch size must be at least 1 (got {})", options.n_batch));
  if (options.kv_type != GgmlType::F16 && options.kv_type != GgmlType::F32 && options.kv_type != GgmlType::Q8_0) {
    throw Error(fmt::format("KV cache type {} is not supported (use f16, f32 or q8_0)", type_traits(options.kv_type).name));
  }
  if (options.kv_type == GgmlType::Q8_0 && c.kv_dim() % 32 != 0) {
    throw Error(fmt::format("KV cache type q8_0 needs n_head_kv * head_dim ({}) to be a multiple of 32", c.kv_dim()));
  }
  n_ctx_ = std::min(options.n_ctx, c.n_ctx_train);
  n_batch_ = std::min(options.n_batch, n_ctx_);

  // Prepare every weight on the backend that uses it, and each layer's KV cache beside its layer.
  weight(placement_.embedding, model.weights().token_embd);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Backend* b = placement_.layers[static_cast<size_t>(i)];
    const LayerWeights& l = model.weights().layers[static_cast<size_t>(i)];
    for (WeightTensor t : {l.attn_norm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.wo, l.ffn_norm,
                           l.w_gate, l.w_up, l.w_down}) {
      optional_weight(b, t);
    }
    state(b).kv[i] = b->new_kv_cache(n_ctx_, c.n_head_kv, c.head_dim, options.kv_type);
  }
  weight(placement_.head, model.weights().output_norm);
  weight(placement_.head, model.weights().output);
  BackendState& head = state(placement_.head);
  head.logits = placement_.head->new_activation(1, c.n_vocab);
  head.last = placement_.head->new_activation(1, c.n_embd);
}

Transformer::~Transformer() = default;

Transformer::BackendState& Transformer::state(Backend* backend) {
  auto& slot = states_[backend];
  if (!slot) {
    const ModelConfig& c = model_.config();
    slot = std::make_unique<BackendState>();
    // One row each to start with; eval_batch grows them to the largest batch actually evaluated,
    // so that decoding alone never holds n_batch rows.
    slot->x = backend->new_activation(1, c.n_embd);
    slot->h = backend->new_activation(1, c.n_embd);
    slot->q = backend->new_activation(1, c.q_dim());
    slot->k = backend->new_activation(1, c.kv_dim());
    slot->v = backend->new_activation(1, c.kv_dim());
    slot->attn = backend->new_activation(1, c.q_dim());
    slot->proj = backend->new_activation(1, c.n_embd);
    slot->ffn = backend->new_activation(1, c.n_ff);
    slot->up = backend->new_activation(1, c.n_ff);
  }
  return *slot;
}

const Weight& Transformer::weight(Backend* backend, WeightTensor tensor) {
  auto& slot = state(backend).weights[tensor];
  if (!slot) slot = backend->prepare_weight(*tensor);
  return *slot;
}

const Weight* Transformer::optional_weight(Backend* backend, WeightTensor tensor) {
  return tensor == nullptr ? nullptr : &weight(backend, tensor);
}

void Transformer::truncate(int64_t n) {
  if (n < 0 || n > n_past_) throw Error(fmt::format("internal: truncate to {} with {} positions cached", n, n_past_));
  n_past_ = n;  // cache rows beyond n are overwritten by the next eval
}

std::vector<float> Transformer::eval(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_.config();
  if (tokens.empty()) throw Error("eval: no tokens given");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    throw Error(fmt::format("context full: {} cached + {} new tokens exceed the context size {} (raise -c)", n_past_,
                            tokens.size(), n_ctx_));
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= c.n_vocab) throw Error(fmt::format("token id {} is out of range (vocab {})", t, c.n_vocab));
  }
  std::vector<float> logits;
  for (size_t first = 0; first < tokens.size(); first += static_cast<size_t>(n_batch_)) {
    const size_t n = std::min(tokens.size() - first, static_cast<size_t>(n_batch_));
    const bool last_batch = first + n == tokens.size();
    if (all_logits || last_batch) {
      eval_batch(tokens.subspan(first, n), all_logits, logits);
    } else {
      std::vector<float> discard;
      eval_batch(tokens.subspan(first, n), false, discard);
    }
  }
  return logits;
}

void Transformer::hand_over(Backend*& current, Backend* to, int64_t n_rows) {
  if (current == to) return;
  const int64_t n_embd = model_.config().n_embd;
  handover_.resize(static_cast<size_t>(n_rows * n_embd));
  current->read(*state(current).x, handover_);
  Activation& dst = *state(to).x;
  dst.set_rows(n_rows);
  to->write(dst, handover_);
  current = to;
}

void Transformer::eval_batch(std::span<const int32_t> tokens, bool all_logits, std::vector<float>& logits_out) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t pos0 = n_past_;
  const AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim};
  const float eps = c.rms_norm_eps;

  // Prolog: x[n, n_embd] = token_embd rows.
  Backend* b = placement_.embedding;
  for (auto& [backend, st] : states_) {
    for (std::unique_ptr<Activation>* a : {&st->x, &st->h, &st->q, &st->k, &st->v, &st->attn, &st->proj, &st->ffn, &st->up}) {
      if ((*a)->capacity() < n) *a = backend->new_activation(n, (*a)->cols());
      (*a)->set_rows(n);
    }
  }
  b->get_rows(weight(b, w.token_embd), tokens, *state(b).x);

  for (int64_t il = 0; il < c.n_layer; ++il) {
    hand_over(b, placement_.layers[static_cast<size_t>(il)], n);
    if (layer_hook_) layer_hook_(il, b, true);
    const LayerWeights& l = w.layers[static_cast<size_t>(il)];
    BackendState& s = state(b);

    // Attention block: x += Wo · attention(rope(norm_q(Wq·h)), rope(norm_k(Wk·h)), Wv·h), h = rms_norm(x).
    const Product qkv[] = {{&weight(b, l.wq), optional_weight(b, l.bq), s.q.get()},   // q[n, n_head*head_dim]
                           {&weight(b, l.wk), optional_weight(b, l.bk), s.k.get()},   // k[n, n_head_kv*head_dim]
                           {&weight(b, l.wv), optional_weight(b, l.bv), s.v.get()}};  // v[n, n_head_kv*head_dim]
    b->norm_matmul(*s.x, weight(b, l.attn_norm), eps, *s.h, qkv);
    KvCacheLayer& kv = *s.kv.at(il);
    b->rope_store_kv(*s.q, *s.k, *s.v, optional_weight(b, l.q_norm), optional_weight(b, l.k_norm), eps, kv, pos0,
                     shape, c.rope_freq_base);                           // q/k norms per head (qwen3)
    b->attention(*s.q, kv, pos0, shape, *s.attn);                      // attn[n, n_head*head_dim]
    b->matmul_add(weight(b, l.wo), *s.attn, *s.x, *s.proj);            // x[n, n_embd] += Wo·attn

    // Feed-forward block: x += W_down · (silu(W_gate·h) * (W_up·h)), h = rms_norm(x).
    b->norm_swiglu(*s.x, weight(b, l.ffn_norm), eps, weight(b, l.w_gate), weight(b, l.w_up), *s.h, *s.up,
                   *s.ffn);                                            // ffn[n, n_ff]
    b->matmul_add(weight(b, l.w_down), *s.ffn, *s.x, *s.proj);         // x[n, n_embd] += W_down·ffn
    if (layer_hook_) layer_hook_(il, b, false);
  }

  // Epilog: logits = output · rms_norm(x), for every row or only the last.
  hand_over(b, placement_.head, n);
  BackendState& s = state(b);
  Activation* rows = s.x.get();
  if (!all_logits && n > 1) {
    b->copy_rows(*s.x, n - 1, *s.last, 0, 1);
    rows = s.last.get();
  }
  const int64_t n_out = rows->rows();
  s.h->set_rows(n_out);
  if (s.logits->capacity() < n_out) s.logits = b->new_activation(n_batch_, c.n_vocab);
  s.logits->set_rows(n_out);
  const Product head[] = {{&weight(b, w.output), nullptr, s.logits.get()}};  // logits[n_out, n_vocab]
  b->norm_matmul(*rows, weight(b, w.output_norm), eps, *s.h, head);
  const size_t offset = logits_out.size();
  logits_out.resize(offset + static_cast<size_t>(n_out * c.n_vocab));
  b->read(*s.logits, std::span<float>(logits_out).subspan(offset));
  n_past_ += n;
}

}  // namespace xelm
