// test_batch_scheduler.cpp — continuous batching (runtime/batch_scheduler.h) on a small synthetic
// Qwen3 model with the real tokenizer and chat template, on the reference backend (batch-invariant):
// requests that run together, join mid-flight, wait for memory or are preempted answer exactly as
// each alone through Generator (the single-sequence path); the prefix cache, cancellation, refusals
// and thinking eviction.
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/batch_scheduler.h"
#include "runtime/chat_prompt.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/generation.h"
#include "runtime/model.h"
#include "runtime/synthetic_model.h"
#include "runtime/tokenizer.h"
#include "runtime/transformer.h"
#include "tests/backend_test_util.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

struct Answer {
  std::vector<int32_t> tokens;
  std::string text;
  BatchResult result;
  bool done = false;
};

class BatchSchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir();
    SyntheticModelSpec spec = test::with_real_tokenizer({});
    spec.n_layer = 2;
    spec.n_embd = 64;
    spec.n_ff = 128;
    spec.head_dim = 16;
    const std::string path = dir_->file("chat.gguf");
    write_synthetic_model(spec, path);
    model_ = Model::load(path).release();
    tokenizer_ = Tokenizer::from_gguf(model_->file()).release();
    backend_ = cpu::make_reference_backend().release();
  }
  static void TearDownTestSuite() {
    delete backend_;
    delete tokenizer_;
    delete model_;
    delete dir_;
  }

  static std::unique_ptr<Transformer> transformer(int64_t n_ctx = 1024, int64_t n_batch = 16, int64_t page_size = 16) {
    return std::make_unique<Transformer>(*model_, Placement::all_on(*backend_, model_->config().n_layer),
                                         TransformerOptions{.n_ctx = n_ctx, .n_batch = n_batch, .kv_type = GgmlType::F16,
                                                            .kv_page_size = page_size});
  }
  static std::vector<int32_t> encode(const std::string& text) { return tokenizer_->encode(text); }

  // The request answered alone, by Generator on a fresh Transformer.
  static Answer alone(const std::vector<int32_t>& prompt, int64_t n_predict, const SamplerParams& params,
                      int64_t n_ctx = 1024) {
    auto t = transformer(n_ctx);
    Generator generator(*t, *tokenizer_);
    Sampler sampler(params);
    Answer a;
    const GenerationResult r = generator.generate(prompt, n_predict, sampler, [&](int32_t token, std::string_view text) {
      if (token >= 0) a.tokens.push_back(token);
      a.text += text;
      return true;
    });
    a.result.stop = r.stop;
    a.result.n_generated = r.n_generated;
    return a;
  }

  static BatchRequest request(uint64_t id, std::vector<int32_t> prompt, int64_t n_predict, const SamplerParams& params,
                              std::map<uint64_t, Answer>& answers) {
    Answer* a = &answers[id];
    return BatchRequest{.id = id,
                        .prompt = std::move(prompt),
                        .n_predict = n_predict,
                        .sampling = params,
                        .on_token =
                            [a](int32_t token, std::string_view text) {
                              if (token >= 0) a->tokens.push_back(token);
                              a->text += text;
                              return true;
                            },
                        .on_done =
                            [a](const BatchResult& r) {
                              a->result = r;
                              a->done = true;
                            },
                        .cancel = nullptr};
  }

  static void run_until_idle(BatchScheduler& s) {
    for (int i = 0; i < 10000 && s.step(); ++i) {
    }
  }

  static SamplerParams seeded(float temperature, uint64_t seed) {
    SamplerParams p;
    p.temperature = temperature;
    p.seed = seed;
    return p;
  }

  static inline test::ScratchDir* dir_ = nullptr;
  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  static inline Backend* backend_ = nullptr;
};

TEST_F(BatchSchedulerTest, InterleavedRequestsAnswerAsEachAlone) {
  auto t = transformer();
  BatchScheduler scheduler(*t, *tokenizer_, 4);  // 6 requests, 4 at once: two wait for a slot
  struct Case {
    std::string prompt;
    int64_t n_predict;
    SamplerParams params;
  };
  SamplerParams greedy;
  greedy.temperature = 0;
  const std::vector<Case> cases = {
      {"The quick brown fox jumps over the lazy dog", 12, greedy},
      {"The quick brown fox is quick", 9, seeded(0.9f, 7)},
      {"Once upon a time, in a land far away, there lived a dragon who", 14, seeded(1.2f, 11)},
      {"Hello", 5, seeded(0.7f, 3)},
      {"A much longer prompt that takes several chunks of sixteen rows to read, with more words after it", 8, greedy},
      {"Tell me a story", 10, seeded(0.8f, 99)},
  };
  std::map<uint64_t, Answer> answers;
  for (size_t i = 0; i < 4; ++i) scheduler.submit(request(i, encode(cases[i].prompt), cases[i].n_predict, cases[i].params, answers));
  for (int i = 0; i < 3; ++i) scheduler.step();  // the others join mid-flight
  for (size_t i = 4; i < cases.size(); ++i) {
    scheduler.submit(request(i, encode(cases[i].prompt), cases[i].n_predict, cases[i].params, answers));
  }
  run_until_idle(scheduler);
  EXPECT_EQ(scheduler.occupancy(), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Answer& a = answers[i];
    ASSERT_TRUE(a.done) << i;
    const Answer expected = alone(encode(cases[i].prompt), cases[i].n_predict, cases[i].params);
    EXPECT_EQ(a.tokens, expected.tokens) << "request " << i;
    EXPECT_EQ(a.text, expected.text) << "request " << i;
    EXPECT_EQ(a.result.stop, expected.result.stop) << "request " << i;
    EXPECT_EQ(a.result.n_generated, expected.result.n_generated) << "request " << i;
  }
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.requests_finished, cases.size());
  EXPECT_EQ(stats.running, 0);
  EXPECT_GT(stats.cached_sequences, 0);  // finished sequences stay for the prefix cache
}

TEST_F(BatchSchedulerTest, APromptSharingAPrefixReusesTheCacheAndAnswersTheSame) {
  auto t = transformer();
  BatchScheduler scheduler(*t, *tokenizer_, 2);
  const SamplerParams params = seeded(0.8f, 5);
  const std::vector<int32_t> first = encode("A long shared beginning that both requests have in common, word for word, and then");
  std::vector<int32_t> second = first;
  for (int32_t token : encode(" something else entirely")) second.push_back(token);
  std::map<uint64_t, Answer> answers;
  scheduler.submit(request(1, first, 6, params, answers));
  run_until_idle(scheduler);
  const int64_t used = t->kv_pages().n_used();
  scheduler.submit(request(2, second, 6, params, answers));
  run_until_idle(scheduler);
  EXPECT_EQ(answers[1].result.n_cached, 0);
  EXPECT_EQ(answers[2].result.n_cached, static_cast<int64_t>(first.size()));
  EXPECT_EQ(answers[2].tokens, alone(second, 6, params).tokens);
  // The second forked the first's prompt (shared pages): it took at most a copy of the page it
  // writes into first and one more for its 9 other positions.
  EXPECT_EQ(scheduler.stats().cached_sequences, 2);
  EXPECT_LE(t->kv_pages().n_used(), used + 2);
}

TEST_F(BatchSchedulerTest, APoolForOneAtATimeServesTwoInTurn) {
  // 64 positions in 4 pages; each request needs 3: the second waits or gives its pages up, and both
  // answer as alone.
  auto t = transformer(64, 16, 16);
  BatchScheduler scheduler(*t, *tokenizer_, 4);
  const std::vector<int32_t> a = encode("First request with a prompt of some length"), b = encode("Second one, also not short");
  const SamplerParams params = seeded(0.9f, 21);
  std::map<uint64_t, Answer> answers;
  scheduler.submit(request(1, a, 30, params, answers));
  scheduler.submit(request(2, b, 30, params, answers));
  run_until_idle(scheduler);
  ASSERT_TRUE(answers[1].done && answers[2].done);
  EXPECT_TRUE(answers[1].result.error.empty() && answers[2].result.error.empty()) << answers[2].result.error;
  EXPECT_EQ(answers[1].tokens, alone(a, 30, params, 64).tokens);
  EXPECT_EQ(answers[2].tokens, alone(b, 30, params, 64).tokens);
  EXPECT_EQ(answers[2].result.n_generated, 30);
}

TEST_F(BatchSchedulerTest, CancelFreesThePagesAtTheNextStep) {
  auto t = transformer();
  BatchScheduler scheduler(*t, *tokenizer_, 2);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  std::map<uint64_t, Answer> answers;
  BatchRequest r = request(1, encode("Go on and on"), 500, seeded(0.8f, 1), answers);
  r.cancel = cancel;
  scheduler.submit(std::move(r));
  for (int i = 0; i < 5; ++i) scheduler.step();
  EXPECT_GT(t->kv_pages().n_used(), 0);
  EXPECT_EQ(scheduler.stats().slots.size(), 1u);
  *cancel = true;
  scheduler.step();
  ASSERT_TRUE(answers[1].done);
  EXPECT_EQ(answers[1].result.stop, StopReason::Cancelled);
  EXPECT_EQ(t->kv_pages().n_used(), 0);
  EXPECT_EQ(scheduler.stats().kv_pages_used, 0);
  EXPECT_TRUE(scheduler.stats().slots.empty());
}

TEST_F(BatchSchedulerTest, RequestsThatCanNeverFitAreRefused) {
  auto t = transformer(64, 16, 16);
  BatchScheduler scheduler(*t, *tokenizer_, 2);
  std::map<uint64_t, Answer> answers;
  std::vector<int32_t> long_prompt(70, encode("a")[0]);
  EXPECT_THROW(scheduler.submit(request(1, long_prompt, 1, {}, answers)), Error);
  EXPECT_THROW(scheduler.submit(request(2, {}, 1, {}, answers)), Error);
  SamplerParams bad;
  bad.top_p = 2;
  EXPECT_THROW(scheduler.submit(request(3, encode("x"), 1, bad, answers)), Error);
  EXPECT_EQ(scheduler.occupancy(), 0u);
  scheduler.close();
  EXPECT_THROW(scheduler.submit(request(4, encode("x"), 1, {}, answers)), Error);
}

// Qwen3's template drops an earlier answer's thinking: once the finished sequence evicts that span,
// it holds exactly the re-rendered conversation's tokens, and the next turn reads only the new message.
TEST_F(BatchSchedulerTest, ThinkingEvictionLetsTheNextTurnContinueTheCache) {
  auto t = transformer();
  BatchScheduler scheduler(*t, *tokenizer_, 2);
  const ChatTemplate chat = ChatTemplate::from_gguf(model_->file());
  auto render = [&](const std::vector<ChatMessage>& messages) {
    return tokenize_chat_prompt(*tokenizer_, chat.render(messages, true, true), messages);
  };
  std::vector<ChatMessage> messages = {{"user", "What is two plus two?", ""}};
  std::vector<int32_t> turn = render(messages);
  const std::vector<int32_t> answer = encode("<think>\nTwo and two make four.\n</think>\n\nIt is four.");
  turn.insert(turn.end(), answer.begin(), answer.end());  // as if generated: the prompt holds the answer
  std::map<uint64_t, Answer> answers;
  scheduler.submit(request(1, turn, 1, {}, answers));
  run_until_idle(scheduler);
  const int64_t used = t->kv_pages().n_used();

  messages.push_back({"assistant", "It is four.", "Two and two make four."});
  messages.push_back({"user", "And three plus three?", ""});
  const std::vector<int32_t> next = render(messages);
  scheduler.evict_dropped_span(1, next);
  scheduler.step();
  const std::vector<int32_t> think = encode("<think>\nTwo and two make four.\n</think>\n\n");
  EXPECT_EQ(scheduler.stats().thinking_tokens_evicted, think.size());
  EXPECT_LE(t->kv_pages().n_used(), used);
  // The cache is the re-rendered history up to the new message: only that is read.
  const std::vector<int32_t> new_turn =
      encode("<|im_end|>\n<|im_start|>user\nAnd three plus three?<|im_end|>\n<|im_start|>assistant\n");
  scheduler.submit(request(2, next, 3, {}, answers));
  run_until_idle(scheduler);
  EXPECT_EQ(answers[2].result.n_cached, static_cast<int64_t>(next.size() - new_turn.size()));
}

}  // namespace
}  // namespace xelm
