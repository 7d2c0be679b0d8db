// test_transformer.cpp — properties of the one forward pass on the reference backend: prompt
// processing in one batch, in small batches and token by token give the same logits; the KV cache
// can be rewound; bad requests are refused with a clear error.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

class TransformerTest : public ::testing::TestWithParam<Architecture> {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.arch = GetParam();
    spec.n_layer = 3;
    spec.n_embd = 64;
    spec.n_head = 4;
    spec.n_head_kv = 1;  // GQA 4:1
    spec.head_dim = 32;
    spec.n_ff = 96;
    spec.n_vocab = 300;
    spec.n_ctx = 64;
    spec.tied_output = GetParam() == Architecture::Qwen3;
    path_ = dir_.file("model.gguf");
    write_synthetic_model(spec, path_);
    model_ = Model::load(path_);
    backend_ = cpu::make_reference_backend();
  }
  std::unique_ptr<Transformer> make(int64_t n_batch, GgmlType kv_type = GgmlType::F32) {
    return std::make_unique<Transformer>(*model_, Placement::all_on(*backend_, model_->config().n_layer),
                                         TransformerOptions{.n_ctx = 64, .n_batch = n_batch, .kv_type = kv_type});
  }

  test::ScratchDir dir_;
  std::string path_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
  const std::vector<int32_t> tokens_ = {5, 17, 299, 0, 42, 42, 7, 150, 3, 88, 201};
};

TEST_P(TransformerTest, BatchSizesAndTokenByTokenAgree) {
  const int64_t n_vocab = model_->config().n_vocab;
  const std::vector<float> one_batch = make(512)->eval(tokens_, true);
  const std::vector<float> small_batches = make(3)->eval(tokens_, true);
  auto stepwise = make(512);
  std::vector<float> token_by_token;
  for (int32_t t : tokens_) {
    const std::vector<float> logits = stepwise->eval(std::span<const int32_t>(&t, 1));
    token_by_token.insert(token_by_token.end(), logits.begin(), logits.end());
  }
  ASSERT_EQ(one_batch.size(), tokens_.size() * static_cast<size_t>(n_vocab));
  EXPECT_LE(test::max_abs_diff(one_batch, small_batches), 1e-4f);
  EXPECT_LE(test::max_abs_diff(one_batch, token_by_token), 1e-4f);
  // Last-token logits alone equal the last row of the full matrix.
  const std::vector<float> last_only = make(512)->eval(tokens_, false);
  EXPECT_LE(test::max_abs_diff(last_only, std::span<const float>(one_batch).last(static_cast<size_t>(n_vocab))), 1e-4f);
}

TEST_P(TransformerTest, TruncateRewindsTheSequence) {
  auto t = make(512);
  const std::vector<float> first = t->eval(tokens_);
  t->truncate(4);
  EXPECT_EQ(t->n_past(), 4);
  const std::vector<float> again = t->eval(std::span<const int32_t>(tokens_).subspan(4));
  EXPECT_LE(test::max_abs_diff(first, again), 1e-5f);
  t->truncate(0);
  const std::vector<float> other = t->eval(std::vector<int32_t>{1, 2});
  EXPECT_GT(test::max_abs_diff(first, other), 1e-3f);  // a different sequence really gives different logits
}

TEST_P(TransformerTest, RefusesBadRequests) {
  auto t = make(512);
  EXPECT_THROW(t->eval(std::vector<int32_t>{}), Error);
  EXPECT_THROW(t->eval(std::vector<int32_t>{300}), Error);
  EXPECT_THROW(t->eval(std::vector<int32_t>{-1}), Error);
  std::vector<int32_t> too_many(65, 1);
  try {
    t->eval(too_many);
    FAIL() << "context overflow not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context full"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t->n_past(), 0);
}

TEST_P(TransformerTest, KvCacheTypesStayCloseToF32) {
  const std::vector<float> f32 = make(4, GgmlType::F32)->eval(tokens_, true);
  const std::vector<float> f16 = make(4, GgmlType::F16)->eval(tokens_, true);
  const std::vector<float> q8 = make(4, GgmlType::Q8_0)->eval(tokens_, true);
  const double f16_error = test::nmse(f16, f32), q8_error = test::nmse(q8, f32);
  std::printf("[kv] logits NMSE vs F32 cache: F16 %.3g, Q8_0 %.3g\n", f16_error, q8_error);
  EXPECT_GT(f16_error, 0.0);
  EXPECT_LT(f16_error, 1e-5);
  EXPECT_GT(q8_error, f16_error);
  EXPECT_LT(q8_error, 1e-3);
  EXPECT_THROW(make(4, GgmlType::Q4_K), Error);
}

INSTANTIATE_TEST_SUITE_P(Architectures, TransformerTest, ::testing::Values(Architecture::Qwen3, Architecture::Qwen2),
                         [](const auto& param_info) { return std::string(architecture_name(param_info.param)); });

}  // namespace
}  // namespace xelm

namespace xelm {
namespace {

// Any layer count loads and runs (Qwen3 ships 28/36 layers; merges like the 42-layer 0.8B and
// 27-layer models exist), with last-token logits equal to the full matrix's last row.
TEST(TransformerLayerCounts, OddDepthsRun) {
  for (int64_t n_layer : {1, 27, 42}) {
    test::ScratchDir dir;
    SyntheticModelSpec spec;
    spec.n_layer = n_layer;
    spec.n_embd = 32;
    spec.n_head = 2;
    spec.n_head_kv = 1;
    spec.head_dim = 16;
    spec.n_ff = 48;
    spec.n_vocab = 64;
    write_synthetic_model(spec, dir.file("m.gguf"));
    auto model = Model::load(dir.file("m.gguf"));
    ASSERT_EQ(model->config().n_layer, n_layer);
    auto backend = cpu::make_reference_backend();
    Transformer t(*model, Placement::all_on(*backend, n_layer), TransformerOptions{.n_ctx = 16});
    const std::vector<float> logits = t.eval(std::vector<int32_t>{3, 1, 4, 1, 5}, true);
    ASSERT_EQ(logits.size(), 5u * 64u);
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << n_layer << " layers";
    EXPECT_GT(test::max_abs_diff(std::span<const float>(logits).first(64), std::span<const float>(logits).last(64)), 1e-3f);
  }
}

}  // namespace
}  // namespace xelm
