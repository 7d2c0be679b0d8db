// perplexity.cpp — chunk scoring for perplexity (see perplexity.h).
#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xelm {

double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  float max_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  return std::log(sum) - static_cast<double>(logits[target] - max_logit);
}

double PerplexityStats::ppl() const { return std::exp(nll_sum / static_cast<double>(std::max<int64_t>(count, 1))); }

double PerplexityStats::std_error() const {
  if (count < 2) return 0.0;
  const double mean = nll_sum / static_cast<double>(count);
  const double variance = nll_sq_sum / static_cast<double>(count) - mean * mean;
  return variance > 0 ? ppl() * std::sqrt(variance / static_cast<double>(count - 1)) : 0.0;
}

void score_chunk(Transformer& transformer, std::span<const int32_t> window, PerplexityStats& stats) {
  const int64_t n = static_cast<int64_t>(window.size());
  const int64_t n_vocab = transformer.config().n_vocab;
  transformer.truncate(0);
  const std::vector<float> logits = transformer.eval(window, /*all_logits=*/true);  // [n, n_vocab]
  for (int64_t j = n / 2; j + 1 < n; ++j) {
    const double nll = token_nll(logits.data() + j * n_vocab, n_vocab, window[static_cast<size_t>(j + 1)]);
    stats.nll_sum += nll;
    stats.nll_sq_sum += nll * nll;
    ++stats.count;
  }
}

}  // namespace xelm
