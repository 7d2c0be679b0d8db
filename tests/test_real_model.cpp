// test_real_model.cpp — end-to-end checks on a real model, Qwen2.5-Coder-0.5B-Instruct (qwen2, Q4_K_M
// mix: Q5_0/Q8_0/Q4_K/Q6_K/F32), through the `xelm` binary: short factual questions put through the
// model's own chat template are answered correctly with greedy decoding on the CPU; the OpenCL
// backend and a partial offload (-ngl 12 of 24 layers) generate the very same token ids; and
// `xelm perplexity` on tests/data/real_model/ppl.txt lands in a sane range; and evicting a span of an
// earlier answer (KV span eviction, as thinking eviction does) leaves the next answer unchanged.
//
// The model is not in the repository: scripts/get-model.sh fetches it (CI does, and tolerates a
// failed download). The test looks for it at $XELM_REAL_MODEL, else <repo>/models/<default name>,
// and skips with a message when it is absent; it never downloads anything. The OpenCL cases skip
// where no OpenCL device exists (CI installs PoCL).
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <ostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cpu_fallback/cpu_backend.h"
#include "host/device_info.h"
#include "runtime/chat_template.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kDefaultModelName = "qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf";
// Under AddressSanitizer (scripts/test.sh's second stage, test::kAddressSanitizer) only the CPU
// answers run: the OpenCL comparisons and the perplexity run are covered by the release stage and
// would double its time.

constexpr int kMaxAnswerTokens = 16;  // OpenCL on PoCL is slow; every answer below is 1-4 tokens

// Where the model is (or would be): $XELM_REAL_MODEL, else <repo>/models/<default name>.
std::string real_model_path() {
  if (const char* env = std::getenv("XELM_REAL_MODEL"); env != nullptr && *env != '\0') return env;
  return (std::filesystem::path(XELM_TEST_DATA_DIR) / ".." / ".." / "models" / kDefaultModelName).lexically_normal().string();
}

using CliRun = test::XelmRun;

CliRun xelm(const std::string& args, const test::ScratchDir& dir) { return test::run_xelm(args, dir); }

// A question this 0.5B coder model answers correctly under greedy decoding, and a word the answer holds.
struct Question {
  const char* name;  // test name suffix
  const char* text;
  const char* expected;
};

void PrintTo(const Question& q, std::ostream* os) { *os << '"' << q.text << '"'; }

// Picked from a larger set tried on the model: these come out right and end the turn on their own.
// (It gets others wrong, e.g. "Which planet is known as the Red Planet?" → "Jupiter".)
constexpr Question kQuestions[] = {
    {"CapitalOfFrance", "What is the capital of France? Answer in one word.", "Paris"},
    {"CapitalOfJapan", "What is the capital of Japan? Answer in one word.", "Tokyo"},
    {"RomeoAndJuliet", "Who wrote Romeo and Juliet? Answer with the name only.", "Shakespeare"},
    {"SymbolForGold", "What is the chemical symbol for gold? Answer with the symbol only.", "Au"},
};

class RealModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = real_model_path();
    if (!std::filesystem::exists(path_)) return;
    file_ = gguf::GgufFile::open(path_);
    tokenizer_ = Tokenizer::from_gguf(*file_);
    template_ = std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(*file_));
  }
  static void TearDownTestSuite() {
    template_.reset();
    tokenizer_.reset();
    file_.reset();
  }
  void SetUp() override {
    if (file_ == nullptr) {
      GTEST_SKIP() << "real model not found at " << path_
                   << " (fetch it with `bash scripts/get-model.sh`, or point XELM_REAL_MODEL at it)";
    }
  }
  // The question as the model's chat template renders it (Qwen2.5 ChatML with its default system
  // prompt), as token ids joined by commas for `xelm run --tokens`.
  static std::string chat_prompt_ids(const char* question) {
    const std::vector<ChatMessage> messages = {{"user", question, ""}};
    const std::string prompt = template_->render(messages, /*add_generation_prompt=*/true);
    std::string ids;
    for (const int32_t id : tokenizer_->encode(prompt, /*parse_special=*/true)) {
      if (!ids.empty()) ids.push_back(',');
      ids.append(std::to_string(id));
    }
    return ids;
  }

  // The greedy answer's token ids from `xelm run --ids` with the given engine flags.
  static std::vector<int32_t> answer_ids(const Question& q, const std::string& engine_flags) {
    test::ScratchDir dir;
    const CliRun r = xelm("run -m '" + path_ + "' " + engine_flags + " -c 256 --temp 0 -n " + std::to_string(kMaxAnswerTokens) +
                              " --ids --tokens " + chat_prompt_ids(q.text),
                          dir);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (engine_flags != "--backend cpu") {  // the GPU really ran: no silent fallback to the CPU
      EXPECT_THAT(r.err, Not(HasSubstr("OpenCL is not usable"))) << r.err;
      EXPECT_THAT(r.err, HasSubstr(" on opencl:")) << r.err;
    }
    std::vector<int32_t> ids;
    std::istringstream in(r.out);
    for (int32_t id; in >> id;) ids.push_back(id);
    return ids;
  }

  static std::string text_of(const std::vector<int32_t>& ids) { return tokenizer_->decode(ids); }

  static bool has_opencl_device() { return !opencl::discover_devices().devices.empty(); }

  static inline std::string path_;
  static inline std::unique_ptr<gguf::GgufFile> file_;
  static inline std::unique_ptr<Tokenizer> tokenizer_;
  static inline std::unique_ptr<ChatTemplate> template_;
};

TEST_F(RealModel, UsesTheQwen25ChatTemplate) {
  EXPECT_EQ(template_->kind(), ChatTemplateKind::Qwen25);
  const std::vector<ChatMessage> messages = {{"user", "Hi", ""}};
  EXPECT_EQ(template_->render(messages, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

// One question per test (ctest runs them in parallel): the CPU answer is right and ends the turn,
// and where an OpenCL device exists, all-GPU and a half split generate exactly the same ids.
class RealModelQuestion : public RealModel, public ::testing::WithParamInterface<Question> {};

TEST_P(RealModelQuestion, AnsweredRightAndTheSameOnCpuOpenClAndOffload) {
  const Question& q = GetParam();
  const std::vector<int32_t> cpu = answer_ids(q, "--backend cpu");
  ASSERT_FALSE(cpu.empty()) << q.text;
  EXPECT_THAT(text_of(cpu), HasSubstr(q.expected)) << q.text;
  // The generator stops at <|im_end|> without emitting it: fewer ids than the limit means the
  // model ended its turn by itself.
  EXPECT_LT(cpu.size(), static_cast<size_t>(kMaxAnswerTokens)) << q.text << ": no end of turn: " << text_of(cpu);

  if (test::kAddressSanitizer) GTEST_SKIP() << "sanitizer build: checked the CPU answer only (the release run compares OpenCL)";
  if (!has_opencl_device()) GTEST_SKIP() << "no OpenCL device: checked the CPU answer only";
  const std::vector<int32_t> gpu = answer_ids(q, "--backend opencl");
  EXPECT_EQ(gpu, cpu) << q.text << "\nopencl: " << text_of(gpu) << "\ncpu:    " << text_of(cpu);
  const std::vector<int32_t> split = answer_ids(q, "-ngl 12");  // layers 12-23 and the head on the GPU
  EXPECT_EQ(split, cpu) << q.text << "\n-ngl 12: " << text_of(split) << "\ncpu:     " << text_of(cpu);
}

INSTANTIATE_TEST_SUITE_P(Questions, RealModelQuestion, ::testing::ValuesIn(kQuestions),
                         [](const ::testing::TestParamInfo<Question>& param) { return param.param.name; });

TEST_F(RealModel, PerplexityOnPplTxtIsInASaneRange) {
  if (test::kAddressSanitizer) GTEST_SKIP() << "sanitizer build: the perplexity run is checked in the release run";
  test::ScratchDir dir;
  const CliRun r = xelm("perplexity -m '" + path_ + "' -f " + test::data_path("real_model/ppl.txt") + " -c 256 --chunks 4 --backend cpu", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+))"))) << r.out;
  const double ppl = std::stod(m[1]);
  // Measured with this command: PPL = 29.91 +/- 3.94 (chunks [1]22.14 [2]25.65 [3]25.72
  // [4]29.91) on the AVX2 CPU backend. A 256-token window scores each token from only 128-255
  // tokens of context, and this is a small coder model, hence the high-ish value. A broken kernel,
  // tokenizer or weight binding gives hundreds to thousands; [0.5x, 2x] leaves room for other CPUs.
  constexpr double kMeasuredPpl = 29.91;
  EXPECT_GT(ppl, 0.5 * kMeasuredPpl) << r.out;
  EXPECT_LT(ppl, 2.0 * kMeasuredPpl) << r.out;
}

// What span eviction costs on real weights, where the kept tokens' keys and values were computed
// with the span in context (so no exact oracle exists, unlike the one-layer test in
// test_sequences.cpp): a conversation whose first answer carries a reasoning-like span, evicted
// after the answer, against a fresh prefill of the conversation without it. Prints the next turn's
// logits NMSE and checks that the greedy answer to the second question is the same and right.
TEST_F(RealModel, EvictingAnAnswersSpanKeepsTheNextAnswer) {
  const std::unique_ptr<Model> model = Model::load(path_);
  const std::unique_ptr<Backend> cpu = cpu::make_cpu_backend(0);
  auto transformer = [&] {
    return std::make_unique<Transformer>(*model, Placement::all_on(*cpu, model->config().n_layer),
                                         TransformerOptions{.n_ctx = 512, .kv_type = GgmlType::F16});
  };
  auto encode = [&](const std::string& text) { return tokenizer_->encode(text, /*parse_special=*/true); };
  const std::vector<ChatMessage> first = {{"user", kQuestions[0].text, ""}};
  const std::vector<int32_t> prompt = encode(template_->render(first, true));
  const std::vector<int32_t> span = encode("Let me think. France is a country in western Europe, and its capital city is known "
                                           "for the Eiffel Tower.\n\n");
  const std::vector<int32_t> rest = encode(std::string("Paris<|im_end|>\n<|im_start|>user\n") + kQuestions[1].text +
                                           "<|im_end|>\n<|im_start|>assistant\n");
  std::vector<int32_t> with_span = prompt, without_span = prompt;
  with_span.insert(with_span.end(), span.begin(), span.end());
  with_span.insert(with_span.end(), rest.begin(), rest.end());
  without_span.insert(without_span.end(), rest.begin(), rest.end());

  auto evicted = transformer();
  evicted->eval(std::span<const int32_t>(with_span).first(with_span.size() - 1));
  evicted->evict(Transformer::kDefaultSequence, static_cast<int64_t>(prompt.size()),
                 static_cast<int64_t>(prompt.size() + span.size()));
  std::vector<float> a = evicted->eval(std::span<const int32_t>(&with_span.back(), 1));
  auto fresh = transformer();
  std::vector<float> b = fresh->eval(without_span);
  const double nmse = test::nmse(a, b);
  std::vector<int32_t> answer_a, answer_b;
  for (int i = 0; i < kMaxAnswerTokens; ++i) {
    answer_a.push_back(static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin()));
    answer_b.push_back(static_cast<int32_t>(std::max_element(b.begin(), b.end()) - b.begin()));
    if (tokenizer_->vocab().is_end_of_generation(answer_b.back())) break;
    a = evicted->eval(std::span<const int32_t>(&answer_a.back(), 1));
    b = fresh->eval(std::span<const int32_t>(&answer_b.back(), 1));
  }
  std::printf("[eviction] %zu-token span evicted: next-turn logits NMSE %.3g against a fresh prefill; answers '%s' / '%s'\n",
              span.size(), nmse, text_of(answer_a).c_str(), text_of(answer_b).c_str());
  EXPECT_EQ(answer_a, answer_b);
  EXPECT_THAT(text_of(answer_b), HasSubstr(kQuestions[1].expected));
  EXPECT_LT(nmse, 0.15);  // 0.085 measured (a 25-token span, F16 cache, Xeon AVX-512 VNNI)
}

}  // namespace
}  // namespace xelm
