// test_cpu_avx2.cpp — the AVX2 CPU backend beyond single ops (those are in test_backend_ops.cpp, the
// op harness, which runs every op on the AVX2 backend with 1, 2 and 3 threads): the thread pool's
// partitioning, the choice of CPU backend, and whole-model greedy decoding and logits on synthetic
// models against the scalar reference backend. Skipped on CPUs without AVX2/FMA/F16C.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_backend.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "cpu_fallback/thread_pool.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/backend_test_util.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using test::has_avx2;

#define SKIP_WITHOUT_AVX2() \
  if (!has_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C"

TEST(CpuThreadPool, ParallelForCoversEveryItemOnce) {
  for (int threads : {1, 2, 3, 5}) {
    cpu::ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1001}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, [&](int64_t begin, int64_t end) {
          EXPECT_EQ(begin % grain, 0);
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << threads << " " << n << " " << i;
      }
    }
  }
}

// Back-to-back jobs whose chunk counts alternate (3, then 4 per thread): a worker still leaving one
// job must never claim a chunk of the next, or run one twice, or count one the caller never issued
// (which once left the caller waiting forever). More threads than cores widen the race windows.
TEST(CpuThreadPool, BackToBackJobsOfChangingSizeNeitherHangNorRepeat) {
  auto stress = [] {
    cpu::ThreadPool pool(4);
    for (int job = 0; job < 200000; ++job) {
      const int64_t n = job % 2 == 0 ? 3 : 1000;
      std::atomic<int64_t> covered{0};
      pool.parallel_for(n, [&](int64_t begin, int64_t end) { covered.fetch_add(end - begin); });
      if (covered.load() != n) return job;
    }
    return -1;
  };
  auto result = std::async(std::launch::async, stress);
  if (result.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
    std::fprintf(stderr, "CpuThreadPool: a parallel_for never returned (deadlock)\n");
    std::_Exit(1);  // the pool's threads cannot be joined
  }
  EXPECT_EQ(result.get(), -1) << "job whose items were not covered exactly once";
}

TEST(CpuBackendChoice, PicksAvx2WhenAvailable) {
  const std::unique_ptr<Backend> backend = cpu::make_cpu_backend(2);
  EXPECT_EQ(backend->name().rfind(has_avx2() ? "cpu-avx2" : "cpu-ref", 0), 0u) << backend->name();
}

// Whole model: 4 layers, n_embd 256, on both backends.
class CpuAvx2Model : public ::testing::Test {
 protected:
  std::unique_ptr<Model> make_model(GgmlType weight_type) {
    const SyntheticModelSpec spec = test::small_model_spec(weight_type);
    const std::string path = dir_.file(std::string(type_traits(weight_type).name) + ".gguf");
    write_synthetic_model(spec, path);
    return Model::load(path);
  }
  static std::unique_ptr<Transformer> make_transformer(const Model& model, Backend& backend, int64_t n_batch) {
    return std::make_unique<Transformer>(model, Placement::all_on(backend, model.config().n_layer),
                                         TransformerOptions{.n_ctx = 256, .n_batch = n_batch});
  }
  test::ScratchDir dir_;
  const std::vector<int32_t> prompt_ = {5, 17, 999, 0, 42, 42, 7, 150, 3, 88, 201, 640, 12};
};

TEST_F(CpuAvx2Model, GreedyTokensMatchReferenceOnF16) {
  SKIP_WITHOUT_AVX2();
  const std::unique_ptr<Model> model = make_model(GgmlType::F16);
  const std::unique_ptr<Backend> ref = cpu::make_reference_backend(), fast = cpu::make_avx2_backend(2);
  // The 13-token prompt in batches of 9 on the AVX2 side: the first batch takes the panel kernels
  // (>= 8 rows), the remaining 4 rows the tiled dot kernels.
  auto t_ref = make_transformer(*model, *ref, 512), t_fast = make_transformer(*model, *fast, 9);
  std::vector<float> l_ref = t_ref->eval(prompt_), l_fast = t_fast->eval(prompt_);
  for (int step = 0; step < 40; ++step) {
    const int32_t next_ref = argmax(l_ref), next_fast = argmax(l_fast);
    ASSERT_EQ(next_fast, next_ref) << "step " << step;
    l_ref = t_ref->eval(std::span<const int32_t>(&next_ref, 1));
    l_fast = t_fast->eval(std::span<const int32_t>(&next_fast, 1));
  }
}

class CpuAvx2ModelTypes : public CpuAvx2Model, public ::testing::WithParamInterface<GgmlType> {};

// Logits of the prompt on every weight type: NMSE vs the reference, printed. Bounds ~3x measured
// (float types <= 7.5e-9 from summation order; quantized 3.4e-4 .. 8.7e-4: the 8-bit activation
// error compounds over the layers).
TEST_P(CpuAvx2ModelTypes, PromptLogitsCloseToReference) {
  SKIP_WITHOUT_AVX2();
  const std::unique_ptr<Model> model = make_model(GetParam());
  const std::unique_ptr<Backend> ref = cpu::make_reference_backend(), fast = cpu::make_avx2_backend(3);
  auto t_ref = make_transformer(*model, *ref, 512), t_fast = make_transformer(*model, *fast, 512);
  const std::vector<float> l_ref = t_ref->eval(prompt_, true), l_fast = t_fast->eval(prompt_, true);
  const double e = test::nmse(l_fast, l_ref);
  std::printf("[ %s ] model logits NMSE vs reference: %.3g\n", std::string(type_traits(GetParam()).name).c_str(), e);
  EXPECT_LT(e, type_traits(GetParam()).is_quantized ? 2.5e-3 : 3e-8);
}

INSTANTIATE_TEST_SUITE_P(CpuWeightTypes, CpuAvx2ModelTypes,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                                           GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& param_info) { return std::string(type_traits(param_info.param).name); });

}  // namespace
}  // namespace xelm
