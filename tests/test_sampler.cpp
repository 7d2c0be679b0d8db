// test_sampler.cpp — the sampler chain on synthetic logits: greedy, the candidate sets top-k /
// top-p / min-p keep, the sampled distribution against softmax(logits / T), seed determinism,
// llama.cpp's repetition penalty and OpenAI's presence/frequency penalties (exact values),
// mirostat v2's surprise control and mu updates, the thinking-only repeat penalty and OpenAI's
// logit_bias (added first; -100 bans, +100 forces, under greedy and seeded sampling).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "runtime/error.h"
#include "runtime/sampler.h"

namespace xelm {
namespace {

// Pure sampling at temperature `t`: every truncation stage off.
SamplerParams plain(float t, uint64_t seed = 1234) {
  SamplerParams p;
  p.temperature = t;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

std::set<int32_t> ids_seen(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::set<int32_t> seen;
  for (int i = 0; i < draws; ++i) seen.insert(sampler.sample(logits));
  return seen;
}

std::vector<float> random_logits(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(n);
  for (float& l : logits) l = normal(rng);
  return logits;
}

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

TEST(SamplerGreedy, ZeroTemperatureIsArgmax) {
  std::mt19937 rng(7);
  Sampler sampler(plain(0.0f));
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = random_logits(rng, 1000);
    EXPECT_EQ(sampler.sample(logits), argmax(logits));
  }
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 5.0f, -2.0f, 4.9f}), 1);
}

TEST(SamplerGreedy, TopKOneIsArgmaxAtAnyTemperature) {
  std::mt19937 rng(8);
  SamplerParams params = plain(1.5f);
  params.top_k = 1;
  Sampler sampler(params);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = random_logits(rng, 151936);
    EXPECT_EQ(sampler.sample(logits), argmax(logits));
  }
}

TEST(SamplerTruncation, TopKKeepsExactlyTheKBest) {
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f, 1.8f, 0.5f, -3.0f};
  SamplerParams params = plain(5.0f);  // a high temperature so every kept id is drawn often
  params.top_k = 3;
  Sampler sampler(params);
  EXPECT_EQ(ids_seen(sampler, logits, 3000), (std::set<int32_t>{1, 3, 5}));
}

TEST(SamplerTruncation, TopPKeepsTheShortestPrefixReachingP) {
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplerParams params = plain(1.0f);
  params.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8
  Sampler two(params);
  EXPECT_EQ(ids_seen(two, logits, 3000), (std::set<int32_t>{0, 1}));
  params.top_p = 0.9f;  // 0.8 < 0.9 <= 0.95
  Sampler three(params);
  EXPECT_EQ(ids_seen(three, logits, 3000), (std::set<int32_t>{0, 1, 2}));
  params.top_p = 0.0f;  // always keeps the best
  Sampler one(params);
  EXPECT_EQ(ids_seen(one, logits, 300), (std::set<int32_t>{0}));
}

TEST(SamplerTruncation, TopPSeesTheTopKSurvivorsRenormalised) {
  // After top-k 2: p = {4/7, 3/7}; top-p 0.5 then keeps only the first. Without top-k it keeps two.
  const std::vector<float> logits = logits_of({0.4, 0.3, 0.2, 0.1});
  SamplerParams params = plain(1.0f);
  params.top_p = 0.5f;
  Sampler without_top_k(params);
  EXPECT_EQ(ids_seen(without_top_k, logits, 3000), (std::set<int32_t>{0, 1}));
  params.top_k = 2;
  Sampler with_top_k(params);
  EXPECT_EQ(ids_seen(with_top_k, logits, 3000), (std::set<int32_t>{0}));
}

TEST(SamplerTruncation, MinPKeepsThoseAboveAFractionOfTheBest) {
  const std::vector<float> logits = logits_of({0.4, 0.25, 0.15, 0.12, 0.08});
  SamplerParams params = plain(1.0f);
  params.min_p = 0.35f;  // threshold 0.14: keeps 0.4, 0.25, 0.15
  Sampler sampler(params);
  EXPECT_EQ(ids_seen(sampler, logits, 3000), (std::set<int32_t>{0, 1, 2}));
  params.min_p = 0.7f;  // threshold 0.28
  Sampler strict(params);
  EXPECT_EQ(ids_seen(strict, logits, 300), (std::set<int32_t>{0}));
}

TEST(SamplerDistribution, MatchesSoftmaxAtTemperature) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f};
  for (float t : {0.7f, 1.0f, 1.8f}) {
    std::vector<double> expected(logits.size());
    double sum = 0.0;
    for (size_t i = 0; i < logits.size(); ++i) sum += expected[i] = std::exp(logits[i] / t);
    for (double& e : expected) e /= sum;

    Sampler sampler(plain(t, 99));
    constexpr int kDraws = 20000;
    std::vector<int> counts(logits.size());
    for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(sampler.sample(logits))];
    for (size_t i = 0; i < logits.size(); ++i) {
      // Standard error is at most 0.0036 at 20000 draws; 0.015 is over four of them.
      EXPECT_NEAR(counts[i] / double(kDraws), expected[i], 0.015) << "T " << t << " token " << i;
    }
  }
}

TEST(SamplerSeed, SameSeedSameSequenceDifferentSeedDifferent) {
  const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
  auto sequence = [&](uint64_t seed) {
    Sampler sampler(plain(1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(sampler.sample(logits));
    return out;
  };
  EXPECT_EQ(sequence(42), sequence(42));
  EXPECT_NE(sequence(42), sequence(43));

  Sampler sampler(plain(1.0f, 42));
  const std::vector<int32_t> first = {sampler.sample(logits), sampler.sample(logits), sampler.sample(logits)};
  sampler.reset();
  const std::vector<int32_t> again = {sampler.sample(logits), sampler.sample(logits), sampler.sample(logits)};
  EXPECT_EQ(first, again);
  EXPECT_EQ(sampler.seed(), 42u);
}

TEST(SamplerPenalties, RepeatPenaltyDividesPositiveMultipliesNegative) {
  SamplerParams params = plain(0.0f);
  params.repeat_penalty = 2.0f;
  params.repeat_last_n = 3;
  Sampler sampler(params);
  for (int32_t id : {0, 1, 0, 2, 3}) sampler.accept(id);  // window: {0, 2, 3}
  std::vector<float> logits = {3.0f, 3.0f, -1.5f, 0.0f, 1.0f};
  sampler.apply_penalties(logits);
  EXPECT_EQ(logits, (std::vector<float>{1.5f, 3.0f, -3.0f, 0.0f, 1.0f}));
  // The penalties act on sampling: 0 was the argmax (ties break to the lower id), now 1 is.
  EXPECT_EQ(sampler.sample(std::vector<float>{3.0f, 2.9f, 0.0f, 0.0f, 0.0f}), 1);
}

TEST(SamplerPenalties, PresenceAndFrequencyAsOpenAI) {
  SamplerParams params = plain(0.0f);
  params.presence_penalty = 0.5f;
  params.frequency_penalty = 0.25f;
  Sampler sampler(params);
  for (int32_t id : {2, 2, 2, 1}) sampler.accept(id);
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, -1.0f};
  sampler.apply_penalties(logits);
  // logit - count * frequency - presence
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 1.0f - 0.25f - 0.5f, 1.0f - 0.75f - 0.5f, -1.0f}));
}

TEST(SamplerLogitBias, AddedBeforeThePenalties) {
  SamplerParams params = plain(0.0f);
  params.repeat_penalty = 2.0f;
  params.logit_bias = {{1, 1.0f}, {3, -0.5f}, {99, 5.0f}};  // 99: outside the logits, skipped
  Sampler sampler(params);
  sampler.accept(1);
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f};
  sampler.apply_penalties(logits);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, (1.0f + 1.0f) / 2.0f, 1.0f, 0.5f}));
}

TEST(SamplerLogitBias, MinusHundredBansAndPlusHundredForces) {
  std::mt19937 rng(7);
  for (const float temperature : {0.0f, 1.5f}) {
    for (int trial = 0; trial < 20; ++trial) {
      const std::vector<float> logits = random_logits(rng, 64);
      const int32_t best = argmax(logits);
      SamplerParams ban = plain(temperature, 100 + static_cast<uint64_t>(trial));
      ban.logit_bias = {{best, -100.0f}};
      Sampler banned(ban);
      EXPECT_EQ(ids_seen(banned, logits, 200).count(best), 0u) << "T " << temperature;
      const int32_t unlikely = static_cast<int32_t>(std::min_element(logits.begin(), logits.end()) - logits.begin());
      SamplerParams force = plain(temperature, 200 + static_cast<uint64_t>(trial));
      force.logit_bias = {{unlikely, 100.0f}};
      Sampler forced(force);
      EXPECT_EQ(ids_seen(forced, logits, 50), std::set<int32_t>{unlikely}) << "T " << temperature;
    }
  }
  // -infinity (ignore_eos) bans even at the highest temperature, and NaN or +infinity are refused.
  SamplerParams never = plain(2.0f);
  never.logit_bias = {{0, -INFINITY}};
  Sampler sampler(never);
  EXPECT_EQ(ids_seen(sampler, std::vector<float>{50.0f, 0.0f, 0.0f}, 200).count(0), 0u);
  for (const float bad : {NAN, INFINITY}) {
    SamplerParams refused;
    refused.logit_bias = {{0, bad}};
    EXPECT_THROW(Sampler{refused}, Error);
  }
}

TEST(SamplerPenalties, WindowZeroAndWholeHistory) {
  SamplerParams params = plain(0.0f);
  params.repeat_penalty = 2.0f;
  params.repeat_last_n = 0;
  Sampler off(params);
  off.accept(0);
  std::vector<float> logits = {4.0f, 4.0f};
  off.apply_penalties(logits);
  EXPECT_EQ(logits, (std::vector<float>{4.0f, 4.0f}));

  params.repeat_last_n = -1;
  Sampler all(params);
  all.accept(0);
  for (int i = 0; i < 1000; ++i) all.accept(1);
  all.apply_penalties(logits);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, 2.0f}));
  all.reset();
  std::vector<float> fresh = {4.0f, 4.0f};
  all.apply_penalties(fresh);
  EXPECT_EQ(fresh, (std::vector<float>{4.0f, 4.0f}));
}

TEST(SamplerPenalties, ThinkRepeatPenaltyAppliesOnlyWhileThinking) {
  SamplerParams params = plain(0.0f);
  params.think_repeat_penalty = 2.0f;
  Sampler sampler(params);
  sampler.accept(0);
  const std::vector<float> logits = {3.0f, 2.0f};
  EXPECT_EQ(sampler.sample(logits), 0);  // repeat_penalty 1: no change
  sampler.set_in_thinking(true);
  EXPECT_EQ(sampler.sample(logits), 1);  // 3 / 2 < 2
  std::vector<float> penalized = logits;
  sampler.apply_penalties(penalized);
  EXPECT_EQ(penalized, (std::vector<float>{1.5f, 2.0f}));
  sampler.set_in_thinking(false);
  EXPECT_EQ(sampler.sample(logits), 0);
}

TEST(SamplerMirostat, V2HoldsSurpriseNearTauAndUpdatesMu) {
  // Zipf-like: p(rank r) ∝ r^-1.1 over 2000 tokens.
  constexpr size_t kVocab = 2000;
  std::vector<double> probs(kVocab);
  double sum = 0.0;
  for (size_t r = 0; r < kVocab; ++r) sum += probs[r] = std::pow(double(r + 1), -1.1);
  for (double& p : probs) p /= sum;
  const std::vector<float> logits = logits_of(probs);

  SamplerParams params = plain(1.0f, 5);
  params.mirostat = 2;
  params.mirostat_tau = 5.0f;
  params.mirostat_eta = 0.1f;
  Sampler sampler(params);
  EXPECT_FLOAT_EQ(sampler.mirostat_mu(), 10.0f);  // starts at 2 tau

  constexpr int kSteps = 4000;
  double surprise_sum = 0.0;
  for (int step = 0; step < kSteps; ++step) {
    const float mu = sampler.mirostat_mu();
    // The truncated distribution mirostat v2 draws from: surprise -log2 p <= mu, at least token 0.
    double kept_mass = 0.0;
    for (size_t i = 0; i < kVocab; ++i) {
      if (i == 0 || -std::log2(probs[i]) <= mu) kept_mass += probs[i];
    }
    const int32_t token = sampler.sample(logits);
    ASSERT_TRUE(token == 0 || -std::log2(probs[static_cast<size_t>(token)]) <= mu + 1e-4) << "step " << step;
    const double surprise = -std::log2(probs[static_cast<size_t>(token)] / kept_mass);
    EXPECT_NEAR(sampler.mirostat_mu(), mu - 0.1 * (surprise - 5.0), 1e-3) << "step " << step;
    surprise_sum += surprise;
  }
  EXPECT_NEAR(surprise_sum / kSteps, 5.0, 0.1);
}

TEST(SamplerParamsTest, Qwen3PresetsAndValidation) {
  const SamplerParams thinking = SamplerParams::qwen3_thinking();
  EXPECT_FLOAT_EQ(thinking.temperature, 0.6f);
  EXPECT_FLOAT_EQ(thinking.top_p, 0.95f);
  EXPECT_EQ(thinking.top_k, 20);
  EXPECT_FLOAT_EQ(thinking.min_p, 0.0f);
  const SamplerParams direct = SamplerParams::qwen3_non_thinking();
  EXPECT_FLOAT_EQ(direct.temperature, 0.7f);
  EXPECT_FLOAT_EQ(direct.top_p, 0.8f);
  EXPECT_EQ(direct.top_k, 20);
  EXPECT_FLOAT_EQ(direct.min_p, 0.0f);

  SamplerParams bad;
  bad.top_p = 1.5f;
  EXPECT_THROW(Sampler{bad}, Error);
  bad = SamplerParams{};
  bad.mirostat = 1;
  EXPECT_THROW(Sampler{bad}, Error);
  Sampler ok{SamplerParams{}};
  EXPECT_THROW(ok.sample(std::vector<float>{}), Error);
}

}  // namespace
}  // namespace xelm
