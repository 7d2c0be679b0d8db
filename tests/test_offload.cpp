// test_offload.cpp — one model split between the OpenCL device and the CPU: every split (-ngl 0, 1,
// half, all-but-one, all, and a non-contiguous explicit plan) gives the same greedy tokens and
// logits within the OpenCL-vs-CPU tolerance as the CPU reference, in prompt processing and decode.
// Skips where no OpenCL device exists (CI installs PoCL, so it runs there).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "host/opencl_backend.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/offload_plan.h"
#include "runtime/sampler.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

class OffloadSplits : public ::testing::TestWithParam<Architecture> {
 protected:
  void SetUp() override {
    try {
      gpu_ = opencl::make_opencl_backend(cli::read_environment().opencl);
    } catch (const Error& e) {
      GTEST_SKIP() << "no OpenCL device: " << e.what();
    }
    SyntheticModelSpec spec;
    spec.arch = GetParam();
    spec.n_layer = 6;
    spec.n_embd = 128;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 32;
    spec.n_ff = 256;
    spec.n_vocab = 500;
    spec.n_ctx = 128;
    spec.tied_output = GetParam() == Architecture::Qwen3;  // tied: the head and the lookup may sit on different devices
    spec.weight_type = GgmlType::F16;
    write_synthetic_model(spec, dir_.file("m.gguf"));
    model_ = Model::load(dir_.file("m.gguf"));
    cpu_ = cpu::make_reference_backend();
  }

  // Greedy decode of 32 tokens after a prompt processed in batches of 7; returns the tokens and
  // collects all logits (prompt rows and every decode step).
  std::vector<int32_t> run(const OffloadPlan& plan, std::vector<float>& logits) {
    Transformer t(*model_, place(plan, *cpu_, gpu_.get()), TransformerOptions{.n_ctx = 128, .n_batch = 7});
    logits = t.eval(prompt_, /*all_logits=*/true);
    std::vector<int32_t> tokens;
    std::vector<float> step(logits.end() - model_->config().n_vocab, logits.end());
    for (int i = 0; i < 32; ++i) {
      tokens.push_back(argmax(step));
      step = t.eval(std::span<const int32_t>(&tokens.back(), 1));
      logits.insert(logits.end(), step.begin(), step.end());
    }
    return tokens;
  }

  test::ScratchDir dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<opencl::OpenClBackend> gpu_;
  const std::vector<int32_t> prompt_ = {3, 141, 59, 26, 5, 358, 97, 93, 238, 462, 64, 33, 83, 279, 50, 288, 41, 97};
};

TEST_P(OffloadSplits, EverySplitMatchesTheCpuReference) {
  const int64_t n_layer = model_->config().n_layer;
  std::vector<float> reference_logits;
  const std::vector<int32_t> reference = run(OffloadPlan::last_n_layers(n_layer, 0), reference_logits);
  const std::vector<std::pair<std::string, OffloadPlan>> plans = {
      {"-ngl 1", OffloadPlan::last_n_layers(n_layer, 1)},
      {"-ngl half", OffloadPlan::last_n_layers(n_layer, n_layer / 2)},
      {"-ngl all-but-one", OffloadPlan::last_n_layers(n_layer, n_layer - 1)},
      {"-ngl all", OffloadPlan::last_n_layers(n_layer, n_layer)},
      {"-ngl 99 (embedding too)", OffloadPlan::last_n_layers(n_layer, 99)},
      {"--layers-gpu 0,2-3 (head on CPU)", OffloadPlan::from_layer_list(n_layer, "0,2-3", false, false)},
      {"--layers-gpu 1,4 --embd-gpu", OffloadPlan::from_layer_list(n_layer, "1,4", true, true)},
  };
  for (const auto& [name, plan] : plans) {
    std::vector<float> logits;
    const std::vector<int32_t> tokens = run(plan, logits);
    const double error = test::nmse(logits, reference_logits);
    std::printf("[offload] %s %-34s greedy tokens %s, logits NMSE %.3g\n",
                std::string(architecture_name(GetParam())).c_str(), name.c_str(),
                tokens == reference ? "identical" : "DIFFER", error);
    EXPECT_EQ(tokens, reference) << name;
    EXPECT_LT(error, 1e-5) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, OffloadSplits, ::testing::Values(Architecture::Qwen3, Architecture::Qwen2),
                         [](const auto& param_info) { return std::string(architecture_name(param_info.param)); });

}  // namespace
}  // namespace xelm
