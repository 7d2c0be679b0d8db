// sampler.cpp — the sampler chain described in sampler.h: penalties, top-k, top-p, min-p,
// temperature, mirostat v2 and the seeded draw.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "runtime/error.h"

namespace xelm {
namespace {

// Strict total order: higher logit first, ties by lower id (deterministic across libraries).
template <typename C>
bool ranks_before(const C& a, const C& b) {
  return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
}

void check_param(bool ok, const std::string& what) {
  if (!ok) throw Error("sampler: " + what);
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

SamplerParams SamplerParams::qwen3_thinking() {
  SamplerParams p;
  p.temperature = 0.6f;
  p.top_p = 0.95f;
  p.top_k = 20;
  p.min_p = 0.0f;
  return p;
}

SamplerParams SamplerParams::qwen3_non_thinking() {
  SamplerParams p;
  p.temperature = 0.7f;
  p.top_p = 0.8f;
  p.top_k = 20;
  p.min_p = 0.0f;
  return p;
}

Sampler::Sampler(SamplerParams params) : params_(params) {
  check_param(std::isfinite(params_.temperature), "temperature must be a finite number");
  check_param(params_.top_p >= 0.0f && params_.top_p <= 1.0f, "top_p must be in [0, 1]");
  check_param(params_.min_p >= 0.0f && params_.min_p <= 1.0f, "min_p must be in [0, 1]");
  check_param(params_.repeat_penalty > 0.0f, "repeat_penalty must be > 0");
  check_param(params_.think_repeat_penalty >= 0.0f, "think_repeat_penalty must be >= 0 (0 = off)");
  check_param(params_.repeat_last_n >= -1, "repeat_last_n must be >= -1 (-1 = whole history)");
  check_param(std::isfinite(params_.presence_penalty) && std::isfinite(params_.frequency_penalty),
              "presence and frequency penalties must be finite");
  check_param(params_.mirostat == 0 || params_.mirostat == 2,
              "mirostat must be 0 (off) or 2 (v2); mirostat v1 is not supported");
  check_param(params_.mirostat_tau >= 0.0f && std::isfinite(params_.mirostat_tau), "mirostat_tau must be >= 0");
  check_param(params_.mirostat_eta >= 0.0f && std::isfinite(params_.mirostat_eta), "mirostat_eta must be >= 0");
  for (const auto& entry : params_.logit_bias) {
    check_param(!std::isnan(entry.second) && entry.second != INFINITY, "a logit bias must be a number or -infinity");
  }
  reset();
}

void Sampler::reset() {
  seed_ = params_.seed == SamplerParams::kRandomSeed ? std::random_device{}() : params_.seed;
  rng_.seed(seed_);
  mu_ = 2.0f * params_.mirostat_tau;
  in_thinking_ = false;
  window_.clear();
  counts_.clear();
}

void Sampler::accept(int32_t token) {
  if (params_.repeat_last_n == 0) return;
  ++counts_[token];
  if (params_.repeat_last_n < 0) return;  // whole history: counts only, no window to slide
  window_.push_back(token);
  if (window_.size() > static_cast<size_t>(params_.repeat_last_n)) {
    const auto oldest = counts_.find(window_.front());
    if (--oldest->second == 0) counts_.erase(oldest);
    window_.pop_front();
  }
}

float Sampler::penalized_logit(float logit, int count) const {
  const float repeat = in_thinking_ && params_.think_repeat_penalty > 0.0f ? params_.think_repeat_penalty
                                                                           : params_.repeat_penalty;
  logit = logit <= 0.0f ? logit * repeat : logit / repeat;
  return logit - static_cast<float>(count) * params_.frequency_penalty - params_.presence_penalty;
}

// Steps 0 and 1 on any logits; logit_of(id) is a reference to the logit of token id < n.
template <typename LogitOf>
void Sampler::adjust_logits(size_t n, LogitOf logit_of) const {
  for (const auto& [token, bias] : params_.logit_bias) {
    if (token >= 0 && static_cast<size_t>(token) < n) logit_of(token) += bias;
  }
  for (const auto& [token, count] : counts_) {
    if (token >= 0 && static_cast<size_t>(token) < n) {
      float& logit = logit_of(token);
      logit = penalized_logit(logit, count);
    }
  }
}

void Sampler::apply_penalties(std::span<float> logits) const {
  adjust_logits(logits.size(), [&](int32_t token) -> float& { return logits[static_cast<size_t>(token)]; });
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: no logits to sample from");
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) candidates_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  adjust_logits(candidates_.size(), [&](int32_t token) -> float& { return candidates_[static_cast<size_t>(token)].logit; });

  if (params_.temperature <= 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), ranks_before<Candidate>)->id;
  }
  if (params_.mirostat == 2) return mirostat_v2();

  top_k(params_.top_k);
  top_p(params_.top_p);
  min_p(params_.min_p);
  for (Candidate& c : candidates_) c.logit /= params_.temperature;
  return candidates_[draw()].id;
}

// Leaves the k best candidates, sorted best first; with k off, sorts them all.
void Sampler::top_k(int k) {
  const size_t keep = k > 0 ? std::min(static_cast<size_t>(k), candidates_.size()) : candidates_.size();
  if (keep == candidates_.size()) {
    std::sort(candidates_.begin(), candidates_.end(), ranks_before<Candidate>);
    return;
  }
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep), candidates_.end(),
                    ranks_before<Candidate>);
  candidates_.resize(keep);
}

// Candidates sorted best first: keeps the shortest prefix whose probability mass reaches p.
void Sampler::top_p(float p) {
  if (p >= 1.0f) return;
  softmax();
  double mass = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    mass += candidates_[i].p;
    if (mass >= p) {
      candidates_.resize(i + 1);
      return;
    }
  }
}

// Candidates sorted best first: keeps those with probability >= p times the best one's.
void Sampler::min_p(float p) {
  if (p <= 0.0f) return;
  const float min_logit = candidates_.front().logit + std::log(p);
  const auto first_dropped = std::find_if(candidates_.begin() + 1, candidates_.end(),
                                          [&](const Candidate& c) { return c.logit < min_logit; });
  candidates_.erase(first_dropped, candidates_.end());
}

void Sampler::softmax() {
  float max_logit = -INFINITY;
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  double sum = 0.0;
  for (Candidate& c : candidates_) {
    c.p = std::exp(c.logit - max_logit);
    sum += c.p;
  }
  for (Candidate& c : candidates_) c.p = static_cast<float>(c.p / sum);
}

// Index of a candidate drawn by its softmax probability: a 53-bit uniform in [0, 1) against the
// cumulative sum.
size_t Sampler::draw() {
  softmax();
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative += candidates_[i].p;
    if (u < cumulative) return i;
  }
  // u at or above the rounded total: the last candidate with any probability (the best one has some).
  size_t last = candidates_.size() - 1;
  while (last > 0 && candidates_[last].p <= 0.0f) --last;
  return last;
}

int32_t Sampler::mirostat_v2() {
  for (Candidate& c : candidates_) c.logit /= params_.temperature;
  softmax();
  // Surprise -log2 p <= mu  <=>  p >= 2^-mu. The most likely candidate always stays.
  const float min_p_kept = std::exp2(-mu_);
  const auto best = std::min_element(candidates_.begin(), candidates_.end(), ranks_before<Candidate>);
  std::iter_swap(candidates_.begin(), best);
  const auto kept_end = std::partition(candidates_.begin() + 1, candidates_.end(),
                                       [&](const Candidate& c) { return c.p >= min_p_kept; });
  candidates_.erase(kept_end, candidates_.end());
  std::sort(candidates_.begin(), candidates_.end(), ranks_before<Candidate>);
  const Candidate& chosen = candidates_[draw()];
  const float surprise = -std::log2(chosen.p);
  mu_ -= params_.mirostat_eta * (surprise - params_.mirostat_tau);
  return chosen.id;
}

}  // namespace xelm
