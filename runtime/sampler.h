// sampler.h — picking the next token from logits: a llama.cpp-style sampler chain with repetition
// penalties, top-k, top-p, min-p, temperature and mirostat v2, over a seeded generator.
//
// Order of the chain (llama.cpp's default order, without the stages xelm lacks):
//   0. logit bias: each (id, bias) of logit_bias is added to that token's logit (OpenAI's
//                 logit_bias; ids outside the logits are skipped; -INFINITY bans a token outright).
//   1. penalties  over the last repeat_last_n accepted tokens (-1 = all of them, 0 = none):
//                 repeat (llama.cpp: a positive logit is divided by the penalty, a negative one
//                 multiplied), then presence and frequency as OpenAI defines them:
//                 logit -= count * frequency_penalty + (count > 0) * presence_penalty.
//                 While set_in_thinking(true) and think_repeat_penalty > 0, think_repeat_penalty
//                 replaces repeat_penalty.
//   2. temperature <= 0: greedy argmax of the penalised logits; the rest is skipped.
//   3. top-k → top-p → min-p, each on the survivors of the previous stage, with probabilities
//      softmax(logits) at temperature 1 (top-p keeps the smallest prefix reaching top_p; min-p
//      keeps p >= min_p * p_max); top_k <= 0, top_p >= 1 and min_p <= 0 turn a stage off.
//   4. temperature: logits / T.
//   5. draw from softmax of what remains.
// With mirostat = 2, steps 3–5 become: temperature, then mirostat v2 (keep tokens with surprise
// -log2 p <= mu, at least the most likely one; renormalise; draw; mu -= eta * (surprise - tau),
// with the surprise of the drawn token under the renormalised distribution; mu starts at 2 tau).
//
// Cost per token on a V-entry vocabulary: one O(V) copy, then a partial sort O(V log k) for top-k;
// only with top-k off (and no mirostat) is the whole vocabulary sorted. Mirostat filters by a
// probability threshold in O(V) and sorts the survivors alone. Candidates are ordered by logit, ties
// by id, and the draw maps a 53-bit uniform from std::mt19937_64 onto the cumulative
// probabilities, so a seed gives the same tokens with any standard library.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xelm {

int32_t argmax(std::span<const float> logits);

struct SamplerParams {
  static constexpr uint64_t kRandomSeed = 0xFFFFFFFF;

  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int mirostat = 0;  // 0 off, 2 = mirostat v2
  float mirostat_tau = 5.0f;
  float mirostat_eta = 0.1f;
  uint64_t seed = kRandomSeed;  // kRandomSeed = a random seed
  float think_repeat_penalty = 0.0f;  // 0 = off; else the repeat penalty used while inside <think>…</think>
  // (token id, bias) added to the logits before anything else; NaN and +INFINITY are refused.
  std::vector<std::pair<int32_t, float>> logit_bias = {};

  // Qwen3's recommended settings for thinking mode and for non-thinking mode.
  static SamplerParams qwen3_thinking();
  static SamplerParams qwen3_non_thinking();
};

class Sampler {
 public:
  // Throws xelm::Error for out-of-range parameters (e.g. top_p outside [0, 1], mirostat 1).
  explicit Sampler(SamplerParams params);

  // The next token id. Throws xelm::Error on empty logits.
  int32_t sample(std::span<const float> logits);
  // Adds a token to the penalty history; call it for the prompt tokens and each generated token.
  void accept(int32_t token);
  // Whether generation is inside <think>…</think> (selects think_repeat_penalty).
  void set_in_thinking(bool in_thinking) { in_thinking_ = in_thinking; }
  // Forgets the history and thinking state, restarts mirostat's mu and re-seeds the generator
  // (with the same seed, or a fresh random one when the seed is kRandomSeed).
  void reset();

  // Steps 0 and 1 of the chain alone, in place: the logits as the rest of the chain sees them.
  void apply_penalties(std::span<float> logits) const;

  const SamplerParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }         // the seed in use
  float mirostat_mu() const { return mu_; }       // mirostat v2's current surprise bound

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;  // softmax probability within the current candidates, where a stage computed it
  };

  float penalized_logit(float logit, int count) const;
  template <typename LogitOf>
  void adjust_logits(size_t n, LogitOf logit_of) const;
  void top_k(int k);
  void top_p(float p);
  void min_p(float p);
  void softmax();
  size_t draw();  // index into candidates_
  int32_t mirostat_v2();

  SamplerParams params_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  float mu_ = 0.0f;
  bool in_thinking_ = false;
  std::deque<int32_t> window_;                    // the last repeat_last_n accepted tokens
  std::unordered_map<int32_t, int> counts_;       // occurrences of each token in window_
  std::vector<Candidate> candidates_;             // reused across calls
};

}  // namespace xelm
