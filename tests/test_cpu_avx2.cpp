// test_cpu_avx2.cpp — the AVX2 CPU backend against the scalar reference backend: the thread pool's
// partitioning, every op on seeded random inputs, matmul for every weight type at odd shapes and
// batch sizes with 1, 2 and 3 threads, and whole-model greedy decoding on synthetic models.
// Skipped on CPUs without AVX2/FMA/F16C.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "cpu_fallback/thread_pool.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

bool has_avx2() {
  const cpu::CpuFeatures& f = cpu::cpu_features();
  return f.avx2 && f.fma && f.f16c;
}

#define SKIP_WITHOUT_AVX2() \
  if (!has_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C"

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A tensor whose bytes live in the test: `rows` rows of `cols` values quantized to `type`.
struct OwnedTensor {
  OwnedTensor(GgmlType type, int64_t cols, int64_t rows, uint32_t seed, std::string name = "w") {
    const std::vector<float> values = random_values(static_cast<size_t>(cols * rows), seed);
    const size_t row_size = row_bytes(type, cols);
    bytes.resize(row_size * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, values.data() + r * cols, bytes.data() + r * row_size, cols);
    info.name = std::move(name);
    info.type = type;
    info.shape = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
    info.n_bytes = bytes.size();
    info.data = bytes.data();
  }
  std::vector<uint8_t> bytes;
  gguf::TensorInfo info;
};

std::unique_ptr<Activation> make_activation(Backend& b, const std::vector<float>& values, int64_t rows, int64_t cols) {
  auto a = b.new_activation(rows, cols);
  b.write(*a, values);
  return a;
}

std::vector<float> read_all(Backend& b, const Activation& a) {
  std::vector<float> out(static_cast<size_t>(a.rows() * a.cols()));
  b.read(a, out);
  return out;
}

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

// Largest normalized error (NMSE vs the reference) a matmul may show per weight type. Float types
// differ from the reference only in fp32 summation order; the integer paths quantize activations to
// 8 bits. The bounds are ~3-5x the largest value measured over the shapes below (measured: float
// types <= 2e-13, quantized types 3e-5 .. 8e-5).
double matmul_nmse_bound(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
      return 1e-12;
    default:
      return 2e-4;
  }
}

class CpuAvx2Matmul : public ::testing::TestWithParam<GgmlType> {};

TEST_P(CpuAvx2Matmul, MatchesReferenceAtOddShapes) {
  SKIP_WITHOUT_AVX2();
  const GgmlType type = GetParam();
  const int64_t block = type_traits(type).block_size;
  // Float types take any width: 33 goes through the dot kernel only, 296 (37 blocks of the panel
  // kernel's 8 elements) through panels too.
  const int64_t one_block = block == 1 ? 33 : block;
  const std::unique_ptr<Backend> ref = cpu::make_reference_backend();
  double worst = 0.0;
  for (int64_t in : {one_block, (block == 1 ? 8 : block) * (block == 256 ? 5 : 37)}) {
    for (int64_t out : {int64_t{1}, int64_t{16}, int64_t{37}}) {
      OwnedTensor w(type, in, out, 7u + static_cast<uint32_t>(in + out));
      OwnedTensor bias(GgmlType::F32, out, 1, 99u, "bias");
      for (int threads : {1, 2, 3}) {
        const std::unique_ptr<Backend> fast = cpu::make_avx2_backend(threads);
        auto w_ref = ref->prepare_weight(w.info), w_fast = fast->prepare_weight(w.info);
        auto b_ref = ref->prepare_weight(bias.info), b_fast = fast->prepare_weight(bias.info);
        // Outputs of every batch size pooled, so that a single output (out = 1) still gives a
        // meaningful normalized error; a wrong batch size would dominate the pool.
        std::vector<float> all_fast, all_ref;
        // From 8 rows the types with a panel kernel take it (panels of 8 output rows, the rest of
        // out through the dot kernel; tiles of up to 8 activation rows, the last one partial).
        for (int64_t rows : {1, 2, 3, 4, 5, 8, 9, 17, 33}) {
          if (threads > 1 && rows != 5 && rows != 17 && rows != 33) continue;  // thread counts on a few batch sizes
          const std::vector<float> x = random_values(static_cast<size_t>(rows * in), static_cast<uint32_t>(rows));
          auto x_ref = make_activation(*ref, x, rows, in), x_fast = make_activation(*fast, x, rows, in);
          auto y_ref = ref->new_activation(rows, out), y_fast = fast->new_activation(rows, out);
          const bool with_bias = rows % 2 == 1;
          ref->matmul(*w_ref, *x_ref, *y_ref, with_bias ? b_ref.get() : nullptr);
          fast->matmul(*w_fast, *x_fast, *y_fast, with_bias ? b_fast.get() : nullptr);
          const std::vector<float> r = read_all(*ref, *y_ref), f = read_all(*fast, *y_fast);
          all_ref.insert(all_ref.end(), r.begin(), r.end());
          all_fast.insert(all_fast.end(), f.begin(), f.end());
        }
        const double e = test::nmse(all_fast, all_ref);
        worst = std::max(worst, e);
        EXPECT_LT(e, matmul_nmse_bound(type))
            << type_traits(type).name << " in " << in << " out " << out << " threads " << threads;
      }
    }
  }
  std::printf("[ %s ] matmul worst NMSE vs reference: %.3g\n", std::string(type_traits(type).name).c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(CpuWeightTypes, CpuAvx2Matmul,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                                           GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& param_info) { return std::string(type_traits(param_info.param).name); });

class CpuAvx2Ops : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!has_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C";
    ref_ = cpu::make_reference_backend();
    fast_ = cpu::make_avx2_backend(GetParam());
  }
  std::unique_ptr<Backend> ref_, fast_;
};

TEST_P(CpuAvx2Ops, ElementwiseOpsMatch) {
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t cols : {8, 72, 3000}) {
      const std::vector<float> a = random_values(static_cast<size_t>(rows * cols), 1u), b = random_values(static_cast<size_t>(rows * cols), 2u);
      std::vector<float> results[2];
      Backend* backends[2] = {ref_.get(), fast_.get()};
      for (int i = 0; i < 2; ++i) {
        auto x = make_activation(*backends[i], a, rows, cols), y = make_activation(*backends[i], b, rows, cols);
        backends[i]->swiglu(*x, *y, *x);
        backends[i]->add(*x, *y);
        auto copy = backends[i]->new_activation(rows + 2, cols);
        backends[i]->write(*copy, std::vector<float>(static_cast<size_t>((rows + 2) * cols), 0.5f));
        backends[i]->copy_rows(*x, 0, *copy, 1, rows);
        results[i] = read_all(*backends[i], *copy);
      }
      EXPECT_LT(test::nmse(results[1], results[0]), 1e-12) << rows << "x" << cols;
    }
  }
}

TEST_P(CpuAvx2Ops, NormRopeAndGetRowsMatch) {
  const int64_t head_dim = 24, n_heads = 3, cols = head_dim * n_heads;
  OwnedTensor norm_rows(GgmlType::F32, cols, 1, 5u, "norm"), norm_head(GgmlType::F32, head_dim, 1, 6u, "q_norm");
  for (GgmlType table_type : {GgmlType::F16, GgmlType::Q4_K, GgmlType::Q8_0}) {
    OwnedTensor table(table_type, 256, 40, 8u, "token_embd");
    for (int64_t rows : {1, 5, 17}) {
      std::vector<int32_t> tokens;
      for (int64_t t = 0; t < rows; ++t) tokens.push_back(static_cast<int32_t>((t * 7) % 40));
      const std::vector<float> a = random_values(static_cast<size_t>(rows * cols), 3u);
      std::vector<float> results[2], embeddings[2];
      Backend* backends[2] = {ref_.get(), fast_.get()};
      for (int i = 0; i < 2; ++i) {
        auto x = make_activation(*backends[i], a, rows, cols);
        auto w_rows = backends[i]->prepare_weight(norm_rows.info), w_head = backends[i]->prepare_weight(norm_head.info);
        backends[i]->rms_norm(*x, *w_rows, 1e-6f, *x);
        backends[i]->rms_norm(*x, *w_head, 1e-6f, *x);
        backends[i]->rope(*x, n_heads, head_dim, 1000, 1e6f);
        results[i] = read_all(*backends[i], *x);
        auto w_table = backends[i]->prepare_weight(table.info);
        auto e = backends[i]->new_activation(rows, 256);
        backends[i]->get_rows(*w_table, tokens, *e);
        embeddings[i] = read_all(*backends[i], *e);
      }
      EXPECT_LT(test::nmse(results[1], results[0]), 1e-11) << rows;
      EXPECT_EQ(embeddings[1], embeddings[0]) << type_traits(table_type).name;
    }
  }
}

TEST_P(CpuAvx2Ops, AttentionOverKvCacheMatches) {
  // Prompt chunks at pos0 = 0, then decode steps that cross key tile boundaries, for: GQA 3:1 with
  // head_dim 32 (an odd number of query vectors per kv head and query tile); Qwen3's 2:1 with
  // head_dim 128; no grouping with head_dim 24 and 12 (dimensions that are not a multiple of the
  // 32-wide value chunks, or of a vector). KV rows are whole Q8_0 blocks in every case.
  for (const AttentionShape shape : {AttentionShape{6, 2, 32}, AttentionShape{4, 2, 128}, AttentionShape{4, 4, 24},
                                     AttentionShape{8, 8, 12}}) {
    const int64_t kv_width = shape.n_head_kv * shape.head_dim, q_width = shape.n_head * shape.head_dim;
    for (GgmlType kv_type : {GgmlType::F16, GgmlType::F32, GgmlType::Q8_0}) {
      Backend* backends[2] = {ref_.get(), fast_.get()};
      std::unique_ptr<KvCacheLayer> caches[2] = {ref_->new_kv_cache(160, shape.n_head_kv, shape.head_dim, kv_type),
                                                 fast_->new_kv_cache(160, shape.n_head_kv, shape.head_dim, kv_type)};
      int64_t pos = 0;
      for (int64_t n : {17, 60, 1, 1, 70, 1}) {
        const uint32_t seed = static_cast<uint32_t>(pos);
        const std::vector<float> q = random_values(static_cast<size_t>(n * q_width), seed, 2.0f);
        const std::vector<float> k = random_values(static_cast<size_t>(n * kv_width), seed + 1, 2.0f);
        const std::vector<float> v = random_values(static_cast<size_t>(n * kv_width), seed + 2);
        std::vector<float> results[2];
        for (int i = 0; i < 2; ++i) {
          auto qa = make_activation(*backends[i], q, n, q_width);
          auto ka = make_activation(*backends[i], k, n, kv_width), va = make_activation(*backends[i], v, n, kv_width);
          auto out = backends[i]->new_activation(n, q_width);
          backends[i]->store_kv(*caches[i], *ka, *va, pos);
          backends[i]->attention(*qa, *caches[i], pos, shape, *out);
          results[i] = read_all(*backends[i], *out);
        }
        EXPECT_LT(test::nmse(results[1], results[0]), 1e-11)
            << type_traits(kv_type).name << " head_dim " << shape.head_dim << " pos " << pos << " n " << n;
        pos += n;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CpuThreads, CpuAvx2Ops, ::testing::Values(1, 2, 3));

// Whole model: 4 layers, n_embd 256, on both backends.
class CpuAvx2Model : public ::testing::Test {
 protected:
  std::unique_ptr<Model> make_model(GgmlType weight_type) {
    SyntheticModelSpec spec;
    spec.n_layer = 4;
    spec.n_embd = 256;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 64;
    spec.n_ff = 512;
    spec.n_vocab = 1000;
    spec.n_ctx = 256;
    spec.weight_type = weight_type;
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
