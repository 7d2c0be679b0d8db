// test_golden.cpp — the fidelity oracle: xelm's CPU reference forward pass against logits that
// Hugging Face transformers computed for tiny random Qwen3/Qwen2 models (tools/make_golden.py,
// fixtures in tests/data/golden). Proves the RoPE convention, q/k-norm placement, GQA head mapping,
// QKV bias handling and the tied output head.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

class GoldenLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenLogits, ReferenceBackendMatchesTransformers) {
  const std::string name = GetParam();
  std::ifstream meta_file(test::data_path("golden/" + name + ".json"));
  ASSERT_TRUE(meta_file) << "missing fixture " << name;
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  const std::vector<int32_t> tokens = meta["tokens"].get<std::vector<int32_t>>();
  const int64_t n_vocab = meta["n_vocab"].get<int64_t>();
  const std::vector<float> expected = test::read_f32(test::data_path("golden/" + meta["logits_file"].get<std::string>()));
  ASSERT_EQ(expected.size(), tokens.size() * static_cast<size_t>(n_vocab));

  auto model = Model::load(test::data_path("golden/" + meta["gguf_file"].get<std::string>()));
  ASSERT_EQ(model->config().n_vocab, n_vocab);
  auto backend = cpu::make_reference_backend();
  // F32 KV cache: F16 storage alone moves these logits by up to 2e-2 (as it does in llama.cpp).
  Transformer transformer(*model, Placement::all_on(*backend, model->config().n_layer),
                          TransformerOptions{.kv_type = GgmlType::F32});
  const std::vector<float> logits = transformer.eval(tokens, /*all_logits=*/true);
  ASSERT_EQ(logits.size(), expected.size());

  const float diff = test::max_abs_diff(logits, expected);
  RecordProperty("max_abs_diff", std::to_string(diff));
  std::printf("[golden] %s: max |xelm - transformers| = %.3g over %zu logits\n", name.c_str(), diff, logits.size());
  EXPECT_LE(diff, 1e-3f);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::span<const float> row(logits.data() + t * n_vocab, static_cast<size_t>(n_vocab));
    const std::span<const float> want(expected.data() + t * n_vocab, static_cast<size_t>(n_vocab));
    EXPECT_EQ(argmax(row), argmax(want)) << "position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenLogits,
                         ::testing::Values("qwen3-tiny", "qwen3-tiny-untied", "qwen2-tiny", "qwen2-tiny-tied"));

}  // namespace
}  // namespace xelm
