// transformer.cpp — the layer loop. Shapes in comments: n = tokens in this batch.
#include "runtime/transformer.h"

#include <algorithm>
#include <cmath>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/ggml_types.h"
#include "runtime/rope.h"

namespace xelm {

namespace {

// Checks the options and returns the KV pool's page count: n_ctx positions in pages of kv_page_size.
int64_t pool_pages(const ModelConfig& c, const TransformerOptions& options) {
  if (options.n_ctx < 1) throw Error(fmt::format("context size must be at least 1 (got {})", options.n_ctx));
  if (options.n_batch < 1) throw Error(fmt::format("batch size must be at least 1 (got {})", options.n_batch));
  if (options.kv_page_size < 1 || options.kv_page_size > 4096 || (options.kv_page_size & (options.kv_page_size - 1)) != 0) {
    throw Error(fmt::format("KV page size must be a power of two from 1 to 4096 positions (got {})", options.kv_page_size));
  }
  if (options.kv_type != GgmlType::F16 && options.kv_type != GgmlType::F32 && options.kv_type != GgmlType::Q8_0) {
    throw Error(fmt::format("KV cache type {} is not supported (use f16, f32 or q8_0)", type_traits(options.kv_type).name));
  }
  if (options.kv_type == GgmlType::Q8_0 && c.kv_dim() % 32 != 0) {
    throw Error(fmt::format("KV cache type q8_0 needs n_head_kv * head_dim ({}) to be a multiple of 32", c.kv_dim()));
  }
  return (options.n_ctx + options.kv_page_size - 1) / options.kv_page_size;
}

}  // namespace

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
    : model_(model),
      placement_(std::move(placement)),
      kv_type_(options.kv_type),
      pages_(pool_pages(model.config(), options), options.kv_page_size) {
  const ModelConfig& c = model.config();
  if (placement_.embedding == nullptr || placement_.head == nullptr ||
      placement_.layers.size() != static_cast<size_t>(c.n_layer) ||
      std::find(placement_.layers.begin(), placement_.layers.end(), nullptr) != placement_.layers.end()) {
    throw Error("internal: placement does not cover every part of the model");
  }
  n_ctx_ = std::min(options.n_ctx, c.n_ctx_train);
  n_batch_ = options.n_batch;
  const int64_t pool_rows = pages_.n_pages() * pages_.page_size();

  // Prepare every weight on the backend that uses it, and each layer's KV cache beside its layer.
  weight(placement_.embedding, model.weights().token_embd);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Backend* b = placement_.layers[static_cast<size_t>(i)];
    const LayerWeights& l = model.weights().layers[static_cast<size_t>(i)];
    for (WeightTensor t : {l.attn_norm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.wo, l.ffn_norm,
                           l.w_gate, l.w_up, l.w_down}) {
      optional_weight(b, t);
    }
    state(b).kv[i] = b->new_kv_cache(pool_rows, c.n_head_kv, c.head_dim, options.kv_type);
  }
  weight(placement_.head, model.weights().output_norm);
  weight(placement_.head, model.weights().output);
  BackendState& head = state(placement_.head);
  head.logits = placement_.head->new_activation(1, c.n_vocab);
  head.last = placement_.head->new_activation(1, c.n_embd);
  if (pages_.create() != kDefaultSequence) throw Error("internal: the default sequence is not sequence 0");
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

uint64_t Transformer::page_bytes() const {
  const ModelConfig& c = model_.config();
  return 2 * static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(pages_.page_size()) *
         row_bytes(kv_type_, c.kv_dim());
}

std::vector<std::pair<Backend*, KvCacheLayer*>> Transformer::layer_caches() {
  std::vector<std::pair<Backend*, KvCacheLayer*>> caches;
  for (auto& [backend, st] : states_) {
    for (auto& [layer, cache] : st->kv) caches.emplace_back(backend, cache.get());
  }
  return caches;
}

void Transformer::copy_pages(std::span<const PageCopy> copies) {
  if (copies.empty()) return;
  const int64_t page = pages_.page_size();
  const size_t bytes = static_cast<size_t>(page) * row_bytes(kv_type_, model_.config().kv_dim());
  std::vector<uint8_t> k(bytes), v(bytes);
  for (auto [backend, cache] : layer_caches()) {
    for (const PageCopy& copy : copies) {
      backend->read_kv_rows(*cache, copy.from * page, page, k, v);
      backend->write_kv_rows(*cache, copy.to * page, page, k, v);
    }
  }
}

std::vector<float> Transformer::eval(std::span<const int32_t> tokens, bool all_logits) {
  const SeqInput input{kDefaultSequence, tokens, all_logits ? SeqInput::Logits::All : SeqInput::Logits::Last};
  return eval(std::span<const SeqInput>(&input, 1));
}

std::vector<float> Transformer::eval(std::span<const SeqInput> batch) {
  const ModelConfig& c = model_.config();
  // Check everything before anything changes.
  int64_t pages_wanted = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const SeqInput& in = batch[e];
    if (!pages_.exists(in.seq)) throw Error(fmt::format("internal: eval of sequence {}, which does not exist", in.seq));
    for (size_t other = 0; other < e; ++other) {
      if (batch[other].seq == in.seq) throw Error(fmt::format("internal: sequence {} twice in one eval", in.seq));
    }
    if (in.tokens.empty()) throw Error("eval: no tokens given");
    const int64_t length = pages_.length(in.seq), n = static_cast<int64_t>(in.tokens.size());
    if (length + n > n_ctx_) {
      throw Error(fmt::format("context full: {} cached + {} new tokens exceed the context size {} (raise -c)", length,
                              n, n_ctx_));
    }
    for (int32_t t : in.tokens) {
      if (t < 0 || t >= c.n_vocab) throw Error(fmt::format("token id {} is out of range (vocab {})", t, c.n_vocab));
    }
    pages_wanted += pages_.pages_needed(in.seq, length, length + n);
  }
  if (pages_wanted > pages_.n_free()) {
    throw Error(fmt::format("KV cache full: {} more pages of {} positions needed, {} of {} free (raise -c)",
                            pages_wanted, pages_.page_size(), pages_.n_free(), pages_.n_pages()));
  }
  std::vector<PageCopy> copies;
  for (const SeqInput& in : batch) {
    const int64_t length = pages_.length(in.seq);
    pages_.prepare_write(in.seq, length, length + static_cast<int64_t>(in.tokens.size()), copies);
  }
  copy_pages(copies);

  // Micro-batches of up to n_batch rows, entries in order (an entry may span several).
  std::vector<float> logits;
  std::vector<int32_t> tokens;
  std::vector<int64_t> logit_rows;
  std::vector<std::pair<SeqId, int64_t>> new_lengths;  // applied once the step has run
  size_t entry = 0, done = 0;  // next row: token `done` of batch[entry]
  while (entry < batch.size()) {
    KvBatch kv;
    kv.page_size = pages_.page_size();
    tokens.clear();
    logit_rows.clear();
    new_lengths.clear();
    while (entry < batch.size() && kv.rows() < n_batch_) {
      const SeqInput& in = batch[entry];
      const size_t n = std::min(in.tokens.size() - done, static_cast<size_t>(n_batch_ - kv.rows()));
      const int64_t row0 = kv.rows(), pos0 = pages_.length(in.seq);
      kv.add_run(pos0, static_cast<int64_t>(n), pages_.block_table(in.seq));
      tokens.insert(tokens.end(), in.tokens.begin() + static_cast<std::ptrdiff_t>(done),
                    in.tokens.begin() + static_cast<std::ptrdiff_t>(done + n));
      new_lengths.emplace_back(in.seq, pos0 + static_cast<int64_t>(n));
      done += n;
      const bool entry_ends = done == in.tokens.size();
      for (int64_t r = row0; r < kv.rows(); ++r) {
        if (in.logits == SeqInput::Logits::All || (in.logits == SeqInput::Logits::Last && entry_ends && r == kv.rows() - 1)) {
          logit_rows.push_back(r);
        }
      }
      if (entry_ends) {
        ++entry;
        done = 0;
      }
    }
    kv.finish();
    eval_batch(tokens, kv, logit_rows, logits);
    for (auto [seq, length] : new_lengths) pages_.set_length(seq, length);
  }
  return logits;
}

void Transformer::evict(SeqId seq, int64_t begin, int64_t end) {
  const ModelConfig& c = model_.config();
  const int64_t length = pages_.length(seq);
  if (begin < 0 || end < begin || end > length) {
    throw Error(fmt::format("internal: evict positions {}..{} of a sequence of {}", begin, end, length));
  }
  const int64_t shift = end - begin, n_move = length - end;
  if (shift == 0) return;
  const int64_t width = c.kv_dim();
  const size_t row_size = row_bytes(kv_type_, width);
  // Positions [from, from + n) of a sequence lie in runs of consecutive cache rows, one per page.
  auto for_row_runs = [&](int64_t from, int64_t n, auto&& fn) {
    for (int64_t i = 0; i < n;) {
      const int64_t pos = from + i, in_page = std::min(n - i, pages_.page_size() - pos % pages_.page_size());
      fn(pages_.row_of(seq, pos), i, in_page);
      i += in_page;
    }
  };
  // Read the rows that move, per layer, before anything is written.
  const auto caches = layer_caches();
  std::vector<std::vector<uint8_t>> keys(caches.size()), values(caches.size());
  for (size_t l = 0; l < caches.size(); ++l) {
    Backend* backend = caches[l].first;
    KvCacheLayer* cache = caches[l].second;
    keys[l].resize(static_cast<size_t>(n_move) * row_size);
    values[l].resize(keys[l].size());
    for_row_runs(end, n_move, [&](int64_t row, int64_t i, int64_t n) {
      const auto at = static_cast<size_t>(i) * row_size, bytes = static_cast<size_t>(n) * row_size;
      backend->read_kv_rows(*cache, row, n, std::span(keys[l]).subspan(at, bytes),
                            std::span(values[l]).subspan(at, bytes));
    });
  }
  // Keys were rotated for position p and now sit at p - shift: rotate them by -shift (NEOX pairs,
  // the angles of runtime/rope.h), through fp32 and back to the cache's type.
  const int64_t half = c.head_dim / 2;
  std::vector<float> cos_d, sin_d, row(static_cast<size_t>(width));
  rope_cos_sin(-shift, rope_inv_freq(c.head_dim, c.rope_freq_base), cos_d, sin_d);
  for (auto& layer_keys : keys) {
    for (int64_t r = 0; r < n_move; ++r) {
      uint8_t* stored = layer_keys.data() + static_cast<size_t>(r) * row_size;
      dequantize_row(kv_type_, stored, row.data(), width);
      for (int64_t h = 0; h < c.n_head_kv; ++h) rope_rotate_head(row.data() + h * c.head_dim, half, cos_d.data(), sin_d.data());
      quantize_row(kv_type_, row.data(), stored, width);
    }
  }
  std::vector<PageCopy> copies;
  if (!pages_.prepare_write(seq, begin, begin + n_move, copies)) {
    throw Error("KV cache full: no free page to copy a shared page into while evicting (raise -c)");
  }
  copy_pages(copies);
  for (size_t l = 0; l < caches.size(); ++l) {
    Backend* backend = caches[l].first;
    KvCacheLayer* cache = caches[l].second;
    for_row_runs(begin, n_move, [&](int64_t row_index, int64_t i, int64_t n) {
      const auto at = static_cast<size_t>(i) * row_size, bytes = static_cast<size_t>(n) * row_size;
      backend->write_kv_rows(*cache, row_index, n, std::span<const uint8_t>(keys[l]).subspan(at, bytes),
                             std::span<const uint8_t>(values[l]).subspan(at, bytes));
    });
  }
  pages_.truncate(seq, length - shift);
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

void Transformer::eval_batch(std::span<const int32_t> tokens, const KvBatch& kv_batch,
                             std::span<const int64_t> logit_rows, std::vector<float>& logits_out) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const int64_t n = static_cast<int64_t>(tokens.size());
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
    b->rope_store_kv(*s.q, *s.k, *s.v, optional_weight(b, l.q_norm), optional_weight(b, l.k_norm), eps, kv,
                     kv_batch, shape, c.rope_freq_base);                 // q/k norms per head (qwen3)
    b->attention(*s.q, kv, kv_batch, shape, *s.attn);                  // attn[n, n_head*head_dim]
    b->matmul_add(weight(b, l.wo), *s.attn, *s.x, *s.proj);            // x[n, n_embd] += Wo·attn

    // Feed-forward block: x += W_down · (silu(W_gate·h) * (W_up·h)), h = rms_norm(x).
    b->norm_swiglu(*s.x, weight(b, l.ffn_norm), eps, weight(b, l.w_gate), weight(b, l.w_up), *s.h, *s.up,
                   *s.ffn);                                            // ffn[n, n_ff]
    b->matmul_add(weight(b, l.w_down), *s.ffn, *s.x, *s.proj);         // x[n, n_embd] += W_down·ffn
    if (layer_hook_) layer_hook_(il, b, false);
  }

  // Epilog: logits = output · rms_norm(x), for the rows that want them (all rows in place, or the
  // chosen rows gathered first).
  if (logit_rows.empty()) return;
  hand_over(b, placement_.head, n);
  BackendState& s = state(b);
  const auto n_out = static_cast<int64_t>(logit_rows.size());
  Activation* rows = s.x.get();
  if (n_out < n) {
    if (s.last->capacity() < n_out) s.last = b->new_activation(n_out, c.n_embd);
    s.last->set_rows(n_out);
    for (int64_t i = 0; i < n_out; ++i) b->copy_rows(*s.x, logit_rows[static_cast<size_t>(i)], *s.last, i, 1);
    rows = s.last.get();
  }
  s.h->set_rows(n_out);
  if (s.logits->capacity() < n_out) s.logits = b->new_activation(n_out, c.n_vocab);
  s.logits->set_rows(n_out);
  const Product head[] = {{&weight(b, w.output), nullptr, s.logits.get()}};  // logits[n_out, n_vocab]
  b->norm_matmul(*rows, weight(b, w.output_norm), eps, *s.h, head);
  const size_t offset = logits_out.size();
  logits_out.resize(offset + static_cast<size_t>(n_out * c.n_vocab));
  b->read(*s.logits, std::span<float>(logits_out).subspan(offset));
}

}  // namespace xelm
