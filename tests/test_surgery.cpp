// test_surgery.cpp — layer surgery and the eval suite: a layer plan applied at load time gives
// logits bit-identical to a model written with those layers; `xelm surgery`'s GGUF reloads to the
// same logits as the in-memory plan; malformed plans are one-line errors; the eval scoring
// functions; and `xelm surgery` / `xelm eval --json` / `--search` end to end on a synthetic model.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"
#include "runtime/gguf.h"
#include "runtime/layer_plan.h"
#include "runtime/model.h"
#include "runtime/surgery.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"
#include "tools/xelm/eval/eval_suite.h"

namespace xelm {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kLayers = 4;

class SurgeryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.arch = Architecture::Qwen2;  // q/k/v biases too
    spec.n_layer = kLayers;
    spec.n_embd = 64;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 16;
    spec.n_ff = 96;
    spec.n_vocab = 256;
    spec.n_ctx = 64;
    spec.weight_type = GgmlType::Q8_0;  // interpolation must requantize
    path_ = dir_.file("m.gguf");
    write_synthetic_model(spec, path_);
  }

  // The oracle: the source file's layers `order` written as a model of their own, by plain renaming.
  std::string write_reference(const std::vector<int64_t>& order) {
    const auto in = gguf::GgufFile::open(path_);
    gguf::GgufWriter w;
    w.copy_metadata_from(*in);
    w.set_u32(in->get_string("general.architecture") + ".block_count", static_cast<uint32_t>(order.size()));
    for (const gguf::TensorInfo& t : in->tensors()) {
      if (t.name.rfind("blk.", 0) != 0) w.add_tensor(t.name, t.type, t.shape, t.data);
    }
    for (size_t i = 0; i < order.size(); ++i) {
      const std::string prefix = fmt::format("blk.{}.", order[i]);
      for (const gguf::TensorInfo& t : in->tensors()) {
        if (t.name.rfind(prefix, 0) == 0) {
          w.add_tensor(fmt::format("blk.{}.{}", i, t.name.substr(prefix.size())), t.type, t.shape, t.data);
        }
      }
    }
    const std::string out = dir_.file("ref-" + std::to_string(counter_++) + ".gguf");
    w.write(out);
    return out;
  }

  static std::vector<float> logits(const Model& model) {
    auto backend = cpu::make_reference_backend();
    Transformer t(model, Placement::all_on(*backend, model.config().n_layer), TransformerOptions{.n_ctx = 32});
    return t.eval(std::vector<int32_t>{3, 1, 4, 1, 5, 9, 2, 6}, /*all_logits=*/true);
  }

  static bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }

  test::ScratchDir dir_;
  std::string path_;
  int counter_ = 0;
};

TEST_F(SurgeryTest, PlansGiveLogitsOfAModelBuiltWithThoseLayers) {
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"delete 1", {0, 2, 3}},
      {"swap 1,2", {0, 2, 1, 3}},
      {"duplicate 2", {0, 1, 2, 2, 3}},
      {"layers 3,0-1", {3, 0, 1}},
      // Indices refer to the layers after the previous operation: [1,2,3] -> [2,1,3] -> [2,1,3,3].
      {"delete 0; swap 0,1; duplicate 2", {2, 1, 3, 3}},
  };
  const std::vector<float> unmodified = logits(*Model::load(path_));
  for (const auto& c : cases) {
    const auto planned = Model::load(path_, c.first);
    EXPECT_EQ(planned->config().n_layer, static_cast<int64_t>(c.second.size())) << c.first;
    const std::vector<float> got = logits(*planned);
    EXPECT_TRUE(bit_identical(got, logits(*Model::load(write_reference(c.second))))) << c.first;
    EXPECT_FALSE(bit_identical(got, unmodified)) << c.first;
  }
  // The identity plan and a search candidate made from a loaded model (shared mapping) agree too.
  EXPECT_TRUE(bit_identical(logits(*Model::load(path_, "swap 1,1")), unmodified));
  const auto base = Model::load(path_);
  EXPECT_TRUE(bit_identical(logits(*base->with_plan(LayerPlan::parse("delete 1", kLayers))),
                            logits(*Model::load(write_reference({0, 2, 3})))));
}

TEST_F(SurgeryTest, WrittenModelReloadsWithTheLogitsOfThePlan) {
  const std::string plan_text = "delete 0; interpolate 0,1; duplicate 3";  // [1,2,3] -> [1,mix,2,3] -> [1,mix,2,3,3]
  const auto in = gguf::GgufFile::open(path_);
  const LayerPlan plan = LayerPlan::parse(plan_text, kLayers);
  EXPECT_EQ(plan.describe(), "1,0.5*1+0.5*2,2,3,3");
  const std::string out = dir_.file("cut.gguf");
  const SurgeryStats stats = write_surgery(*in, plan, out);
  EXPECT_GT(stats.tensors_mixed, 0);

  const auto written = Model::load(out);
  EXPECT_EQ(written->config().n_layer, 5);
  EXPECT_TRUE(bit_identical(logits(*written), logits(*Model::load(path_, plan_text))));
  EXPECT_EQ(written->file().get_string(kSurgeryOperationsKey), plan_text);
  EXPECT_EQ(written->file().get_string(kSurgeryLayersKey), "1,0.5*1+0.5*2,2,3,3");
  EXPECT_EQ(written->file().get_string(kSurgerySourceKey), "m.gguf");
  EXPECT_EQ(written->file().get_string("general.name"), in->get_string("general.name"));
  // Plain layers are copied byte for byte, still quantized; the mix is requantized to Q8_0.
  const gguf::TensorInfo& copied = written->file().tensor("blk.0.attn_q.weight");
  const gguf::TensorInfo& source = in->tensor("blk.1.attn_q.weight");
  EXPECT_EQ(copied.type, GgmlType::Q8_0);
  ASSERT_EQ(copied.n_bytes, source.n_bytes);
  EXPECT_EQ(std::memcmp(copied.data, source.data, source.n_bytes), 0);
  EXPECT_EQ(written->file().tensor("blk.1.ffn_down.weight").type, GgmlType::Q8_0);
}

TEST_F(SurgeryTest, InterpolationMixesTheDequantizedWeights) {
  const auto in = gguf::GgufFile::open(path_);
  const gguf::TensorInfo& a = in->tensor("blk.0.attn_norm.weight");  // F32: the mix is exact
  const gguf::TensorInfo& b = in->tensor("blk.1.attn_norm.weight");
  const OwnedTensor m = mix_tensors({{&a, 0.25f}, {&b, 0.75f}}, "mix");
  ASSERT_EQ(m.info.type, GgmlType::F32);
  const auto* fa = reinterpret_cast<const float*>(a.data);
  const auto* fb = reinterpret_cast<const float*>(b.data);
  const auto* fm = reinterpret_cast<const float*>(m.info.data);
  for (int64_t i = 0; i < a.n_elements(); ++i) EXPECT_EQ(fm[i], 0.25f * fa[i] + 0.75f * fb[i]) << i;
  EXPECT_THROW(mix_tensors({{&a, 0.5f}, {&in->tensor("blk.0.attn_q.weight"), 0.5f}}, "bad"), Error);
}

TEST(LayerPlan, MalformedPlansAreOneLineErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"delete 4", "layer 4 is out of range (the model has 4 layers here, 0-3)"},
      {"delete 0; delete 0; delete 0; delete 0", "it would leave no layers"},
      {"swap 1", "expected 2 comma-separated values"},
      {"delete x", "'x' is not a layer index"},
      {"duplicate -1", "out of range"},
      {"interpolate 0,1,1.5", "not a mixing weight"},
      {"layers 3-1", "reversed"},
      {"frobnicate 2", "unknown operation"},
      {"delete 1; swap 2,3", "layer 3 is out of range (the model has 3 layers here, 0-2)"},
  };
  for (const auto& c : cases) {
    try {
      LayerPlan::parse(c.first, kLayers);
      ADD_FAILURE() << c.first << " was accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_THAT(message, HasSubstr(c.second)) << c.first;
      EXPECT_THAT(message, HasSubstr("layer plan")) << c.first;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  EXPECT_THROW(LayerPlan::parse("", 0), Error);           // an empty model
  EXPECT_THROW(LayerPlan::parse("delete 0", 0), Error);
  EXPECT_TRUE(LayerPlan::parse(" ; ", 3).is_identity());  // no operations
}

TEST_F(SurgeryTest, PlanForAnotherDepthIsRefused) {
  const auto base = Model::load(path_);
  EXPECT_THROW(base->with_plan(LayerPlan::parse("delete 0", kLayers + 1)), Error);
  EXPECT_THROW(Model::load(path_, "delete 9"), Error);
}

TEST(EvalScoring, AnswerMatchingIsWordContainment) {
  EXPECT_EQ(eval::normalize_words("The answer: 56!"), (std::vector<std::string>{"the", "answer", "56"}));
  EXPECT_TRUE(eval::answer_matches("The answer is 56.", {"56"}));
  EXPECT_FALSE(eval::answer_matches("560", {"56"}));  // whole words only
  EXPECT_TRUE(eval::answer_matches("It is **Paris**.", {"paris"}));
  EXPECT_TRUE(eval::answer_matches("HTML means Hyper-Text Markup Language", {"HyperText Markup Language", "Hyper Text Markup Language"}));
  EXPECT_FALSE(eval::answer_matches("Markup Language", {"HyperText Markup Language"}));
  EXPECT_EQ(eval::text_after_think("<think>\nmaybe 41\n</think>\n\n42"), "\n\n42");
  EXPECT_EQ(eval::text_after_think("no thinking"), "no thinking");
}

TEST(EvalScoring, RepetitionAndPerplexityScores) {
  EXPECT_DOUBLE_EQ(eval::distinct_ngram_ratio("a b c a b c a b c"), 3.0 / 7.0);  // 7 trigrams, 3 distinct
  EXPECT_DOUBLE_EQ(eval::distinct_ngram_ratio("one two three four"), 1.0);
  EXPECT_DOUBLE_EQ(eval::distinct_ngram_ratio("too short"), 1.0);
  EXPECT_DOUBLE_EQ(eval::perplexity_score(3.0), 1.0);
  EXPECT_DOUBLE_EQ(eval::perplexity_score(1000.0), 0.0);
  EXPECT_DOUBLE_EQ(eval::perplexity_score(1e6), 0.0);
  EXPECT_GT(eval::perplexity_score(20.0), eval::perplexity_score(40.0));
}

TEST(EvalSuite, BuiltinSuiteCoversEveryCategory) {
  const eval::Suite s = eval::Suite::builtin();
  EXPECT_GE(s.questions.size(), 17u);
  for (const char* category : {"geography", "science", "history", "arithmetic", "code"}) {
    EXPECT_TRUE(std::any_of(s.questions.begin(), s.questions.end(),
                            [&](const eval::Question& q) { return q.category == category; }))
        << category;
  }
  EXPECT_FALSE(s.completions.empty());
  EXPECT_FALSE(s.long_prompts.empty());
  EXPECT_FALSE(s.thinking.empty());
  EXPECT_FALSE(s.perplexity_text.empty());
  EXPECT_THROW(eval::Suite::from_json("{\"questions\": [{\"id\": \"q\"}]}", "s.json"), Error);
  EXPECT_THROW(eval::Suite::from_json("[1, 2", "s.json"), Error);
}

// A small suite for the CLI tests (the built-in one takes longer on a model with Qwen3's vocabulary).
std::string write_small_suite(const test::ScratchDir& dir) {
  const std::string path = dir.file("suite.json");
  std::ofstream(path) << R"({"name": "tiny", "answer_tokens": 4, "completion_tokens": 4, "long_tokens": 8,
    "thinking_tokens": 8, "perplexity_ctx": 16,
    "questions": [{"id": "q1", "category": "arithmetic", "question": "What is 2 plus 2?", "answers": ["4"]}],
    "completions": [{"id": "c1", "prompt": "The sun rises in the", "keywords": ["east"]}],
    "long_prompts": [{"id": "l1", "prompt": "Tell me a story."}],
    "thinking": [{"id": "t1", "thinking": false, "question": "Say hi.", "answers": ["hi"]}],
    "perplexity_text": "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again and again."})";
  return path;
}

TEST(SurgeryCli, WritesEvaluatesAndSearches) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf"), cut = dir.file("cut.gguf");
  test::XelmRun r = test::run_xelm("make-test-model -o " + model + " --layers 3 --embd 32 --heads 2 --kv-heads 1 "
                                   "--head-dim 16 --ff 64",
                                   dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = test::run_xelm("surgery " + model + " " + cut + " --delete 0 --duplicate 1 --swap 0,1", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("3 -> 3 layers [2,1,2]"));  // [1,2] -> [1,2,2] -> [2,1,2]
  r = test::run_xelm("info --metadata " + cut, dir);
  EXPECT_THAT(r.out, HasSubstr("general.surgery.operations"));
  EXPECT_THAT(r.out, HasSubstr("delete 0; duplicate 1; swap 0,1"));

  r = test::run_xelm("surgery " + model + " " + dir.file("x.gguf") + " --delete 7", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("layer plan: 'delete 7': layer 7 is out of range"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  const std::string suite = write_small_suite(dir);
  r = test::run_xelm("eval -m " + model + " -t 1 --json --suite " + suite + " --layer-plan 'delete 2'", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("suite"), "tiny");
  EXPECT_EQ(j.at("layer_plan"), "delete 2");
  EXPECT_GE(j.at("score").get<double>(), 0.0);
  EXPECT_LE(j.at("score").get<double>(), 100.0);
  EXPECT_GT(j.at("parts").at("perplexity").get<double>(), 1.0);
  EXPECT_EQ(j.at("items").size(), 4u);  // the thinking check runs: the synthetic model has Qwen3's template
  EXPECT_THAT(r.err, HasSubstr("eval ["));

  const std::string prefix = dir.file("search");
  r = test::run_xelm("surgery --search delete -m " + model + " -t 1 --suite " + suite + " -o " + prefix +
                         " --limit 2 --write-best " + dir.file("best.gguf"),
                     dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("| delete 1 |"));
  EXPECT_THAT(r.out, HasSubstr("(unmodified)"));
  EXPECT_THAT(test::read_text(prefix + ".svg"), HasSubstr("<svg"));
  const nlohmann::json saved = nlohmann::json::parse(test::read_text(prefix + ".json"));
  EXPECT_EQ(saved.at("candidates").size(), 3u);
  EXPECT_EQ(gguf::GgufFile::open(dir.file("best.gguf"))->get_int("qwen3.block_count"), 2);

  // Resuming measures only what is missing.
  r = test::run_xelm("surgery --search delete -m " + model + " -t 1 --suite " + suite + " -o " + prefix +
                         " --resume " + prefix + ".json",
                     dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("3 of 4 candidates already measured"));
  EXPECT_EQ(nlohmann::json::parse(test::read_text(prefix + ".json")).at("candidates").size(), 4u);
}

// Ctrl-C during a search stops after the candidate being measured and keeps what was measured.
TEST(SurgeryCli, InterruptedSearchKeepsItsResults) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(test::run_xelm("make-test-model -o " + model + " --layers 4 --embd 32 --heads 2 --kv-heads 1 --head-dim 16 "
                           "--ff 64",
                           dir)
                .exit_code,
            0);
  const std::string prefix = dir.file("search");
  const test::XelmRun r = test::run_xelm_interrupted(
      {"surgery", "--search", "swap", "-m", model, "-t", "1", "--suite", write_small_suite(dir), "-o", prefix},
      dir, "search 2/");
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted"));
  const nlohmann::json saved = nlohmann::json::parse(test::read_text(prefix + ".json"));
  EXPECT_GE(saved.at("candidates").size(), 2u);
  EXPECT_LT(saved.at("candidates").size(), 4u);  // unmodified + swaps 0,1 / 1,2 / 2,3
}

}  // namespace
}  // namespace xelm
