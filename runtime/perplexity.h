// perplexity.h — llama.cpp's perplexity method, shared by `xelm perplexity` and `xelm eval`: a text
// is cut into non-overlapping chunks of n_ctx tokens, each evaluated from an empty cache, and the
// second half of every chunk is scored (each token predicted from at least n_ctx/2 of context).
#pragma once

#include <cstdint>
#include <span>

#include "runtime/transformer.h"

namespace xelm {

// Negative log-likelihood of `target` under softmax(logits), computed stably.
double token_nll(const float* logits, int64_t n_vocab, int32_t target);

struct PerplexityStats {
  double nll_sum = 0.0;
  double nll_sq_sum = 0.0;
  int64_t count = 0;  // tokens scored

  double ppl() const;        // exp(mean NLL)
  double std_error() const;  // of the PPL estimate
};

// Evaluates `window` (one chunk) from an empty default sequence and adds the NLL of its second half
// to `stats`. The chunk must fit the transformer's context.
void score_chunk(Transformer& transformer, std::span<const int32_t> window, PerplexityStats& stats);

}  // namespace xelm
