// test_opencl_backend.cpp — the OpenCL backend against the scalar reference backend: every op on
// seeded random inputs, every weight type, odd sizes, every KV cache type, the max-allocation split
// path, the kernel binary cache, whole synthetic Qwen3/Qwen2 models, the prefill GEMM path (dequantize
// + CLBlast, and its fallback when CLBlast fails) and the int8 fast path (forced where the device
// lacks an integer dot product: the 4x8-bit dot is then written out, the algorithm the same). Tests that need an OpenCL
// device skip when none exists; the build-option tests need none.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/ref/ref_backend.h"
#include "host/build_options.h"
#include "host/device_info.h"
#include "host/opencl_backend.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

using opencl::OpenClBackend;

const std::vector<GgmlType> kWeightTypes = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                                            GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                            GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                            GgmlType::Q6_K};

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A weight tensor with its bytes in a 4096-aligned allocation (so the zero-copy path is taken on
// unified memory when the size allows it): a matrix [in, out], or a vector [in] when out is 0.
struct TestTensor {
  TestTensor(GgmlType type, int64_t in, int64_t out, uint32_t seed, float offset = 0.0f) {
    const bool vector = out == 0;
    if (vector) out = 1;
    const size_t row = row_bytes(type, in);
    const size_t bytes = row * static_cast<size_t>(out);
    storage.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)));
    std::vector<float> values = random_values(static_cast<size_t>(in * out), seed);
    for (float& v : values) v += offset;
    for (int64_t r = 0; r < out; ++r) quantize_row(type, values.data() + r * in, storage.get() + r * row, in);
    info.name = "test." + std::string(type_traits(type).name);
    info.type = type;
    info.shape = vector ? std::vector<int64_t>{in} : std::vector<int64_t>{in, out};
    info.n_bytes = bytes;
    info.data = storage.get();
  }
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> storage;
  gguf::TensorInfo info;
};

std::unique_ptr<Activation> upload(Backend& b, int64_t rows, int64_t cols, const std::vector<float>& values) {
  auto a = b.new_activation(rows, cols);
  b.write(*a, values);
  return a;
}

std::vector<float> download(Backend& b, const Activation& a) {
  std::vector<float> out(static_cast<size_t>(a.rows() * a.cols()));
  b.read(a, out);
  return out;
}

class OpenClTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (opencl::discover_devices().devices.empty()) return;
    cache_dir_ = std::make_unique<test::ScratchDir>();
    opencl::OpenClOptions options = cli::read_environment().opencl;
    options.cache_dir = cache_dir_->file("kernels");
    shared_ = opencl::make_opencl_backend(options);
    std::printf("[opencl] %s, options: %s\n", shared_->name().c_str(), shared_->build_options().c_str());
  }
  static void TearDownTestSuite() {
    shared_.reset();
    cache_dir_.reset();
  }
  void SetUp() override {
    if (!shared_) GTEST_SKIP() << "no OpenCL platform/device";
    ref_ = cpu::make_reference_backend();
  }
  OpenClBackend& cl() { return *shared_; }
  Backend& ref() { return *ref_; }

  // y = W x (+ bias) on both backends; returns {opencl, reference}.
  std::pair<std::vector<float>, std::vector<float>> matmul_both(Backend& b, const TestTensor& w, int64_t tokens,
                                                                const TestTensor* bias, uint32_t seed) {
    const int64_t in = w.info.shape[0], out = w.info.shape.size() > 1 ? w.info.shape[1] : 1;
    const std::vector<float> x = random_values(static_cast<size_t>(tokens * in), seed);
    std::vector<float> results[2];
    Backend* backends[2] = {&b, &ref()};
    for (int i = 0; i < 2; ++i) {
      auto weight = backends[i]->prepare_weight(w.info);
      auto bias_weight = bias != nullptr ? backends[i]->prepare_weight(bias->info) : nullptr;
      auto xa = upload(*backends[i], tokens, in, x);
      auto ya = backends[i]->new_activation(tokens, out);
      backends[i]->matmul(*weight, *xa, *ya, bias_weight.get());
      results[i] = download(*backends[i], *ya);
    }
    return {results[0], results[1]};
  }

  template <typename F>
  static std::unique_ptr<OpenClBackend> make_backend(F&& set) {
    opencl::OpenClOptions options = cli::read_environment().opencl;
    set(options);
    options.cache_dir = cache_dir_->file("kernels");
    return opencl::make_opencl_backend(options);
  }

  static inline std::unique_ptr<test::ScratchDir> cache_dir_;
  static inline std::unique_ptr<OpenClBackend> shared_;
  std::unique_ptr<Backend> ref_;
};

TEST_F(OpenClTest, MatmulEveryWeightTypeAndShape) {
  uint32_t seed = 1;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    // One block per row, several blocks, and (for the float types) an odd width.
    std::vector<int64_t> widths = {block == 1 ? 32 : block, block == 1 ? 1000 : block * 5};
    if (block == 1) widths.push_back(67);
    double worst = 0.0;
    for (int64_t in : widths) {
      for (int64_t out : {1, 2, 5, 16, 17}) {
        for (int64_t tokens : {1, 3, 9, 17}) {
          TestTensor w(type, in, out, seed++);
          TestTensor bias(GgmlType::F32, out, 0, seed++);
          const bool with_bias = out > 1 && tokens % 2 == 1;
          auto [got, want] = matmul_both(cl(), w, tokens, with_bias ? &bias : nullptr, seed++);
          const double e = test::nmse(got, want);
          worst = std::max(worst, e);
          ASSERT_LT(e, 1e-10) << type_traits(type).name << " in " << in << " out " << out << " tokens " << tokens;
        }
      }
    }
    std::printf("[opencl] matmul %-5s worst NMSE %.3g\n", std::string(type_traits(type).name).c_str(), worst);
  }
}

// The prefill GEMM path (dequantize into scratch + CLBlast SGEMM) from 2 tokens on: every weight
// type, odd output counts, with and without bias, against the reference.
TEST_F(OpenClTest, GemmPathEveryWeightTypeMatchesTheReference) {
  const auto gemm = make_backend([](opencl::OpenClOptions& o) { o.gemm_min_tokens = 2; });
  uint32_t seed = 500;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    double worst = 0.0;
    for (int64_t in : {block == 1 ? int64_t{67} : block, block == 1 ? int64_t{1000} : block * 3}) {
      for (int64_t out : {1, 17, 64}) {
        for (int64_t tokens : {2, 9, 33}) {
          TestTensor w(type, in, out, seed++);
          TestTensor bias(GgmlType::F32, out, 0, seed++);
          const bool with_bias = tokens != 9;
          gemm->reset_counters();
          auto [got, want] = matmul_both(*gemm, w, tokens, with_bias ? &bias : nullptr, seed++);
          ASSERT_GT(gemm->counters().gemm_calls, 0u) << "CLBlast was not used (or failed) on " << gemm->name();
          const double e = test::nmse(got, want);
          worst = std::max(worst, e);
          ASSERT_LT(e, 1e-10) << type_traits(type).name << " in " << in << " out " << out << " tokens " << tokens;
        }
      }
    }
    std::printf("[opencl] GEMM path %-5s worst NMSE %.3g\n", std::string(type_traits(type).name).c_str(), worst);
  }
  EXPECT_EQ(gemm->gemm_min_tokens(), 2);
  // One token stays on the matmul kernel.
  TestTensor w(GgmlType::Q4_K, 256, 8, 9);
  gemm->reset_counters();
  auto [got, want] = matmul_both(*gemm, w, 1, nullptr, 10);
  EXPECT_EQ(gemm->counters().gemm_calls, 0u);
  EXPECT_LT(test::nmse(got, want), 1e-10);
}

// Weights split over several buffers and dequantized in several row blocks (the scratch is capped
// by the max allocation): one GEMM per block, each writing its columns of y.
TEST_F(OpenClTest, GemmPathOverSplitTensorsAndRowBlocks) {
  const auto gemm = make_backend([](opencl::OpenClOptions& o) {
    o.max_alloc_bytes = 1024 * 1024;
    o.gemm_min_tokens = 2;
  });
  // Q8_0 rows of 256 are 272 bytes: 3855 rows per 1 MiB piece (3824 when used in place), so three
  // pieces; f32 rows of 1 KiB give 1024-row blocks: 4 + 4 + 2 GEMMs either way.
  TestTensor w(GgmlType::Q8_0, 256, 9000, 31);
  TestTensor bias(GgmlType::F32, 9000, 0, 32);
  gemm->reset_counters();
  auto [got, want] = matmul_both(*gemm, w, 5, &bias, 33);
  EXPECT_EQ(gemm->counters().gemm_calls, 10u);
  EXPECT_LT(test::nmse(got, want), 1e-10);
}

// When CLBlast fails (here by fault injection; on a device, e.g. when its kernels do not build),
// the product is computed by xelm's kernels, and the GEMM path is off from then on.
TEST_F(OpenClTest, GemmPathFallsBackWhenClblastFails) {
  const auto failing = make_backend([](opencl::OpenClOptions& o) {
    o.gemm_min_tokens = 2;
    o.gemm_fault_for_testing = true;
  });
  EXPECT_EQ(failing->gemm_min_tokens(), 2);
  TestTensor w(GgmlType::Q4_0, 64, 19, 41);
  TestTensor bias(GgmlType::F32, 19, 0, 42);
  auto [got, want] = matmul_both(*failing, w, 7, &bias, 43);
  EXPECT_LT(test::nmse(got, want), 1e-10);
  EXPECT_EQ(failing->gemm_min_tokens(), 0);
  EXPECT_EQ(failing->counters().gemm_calls, 0u);
}

// The int8 fast path (Q8_0 / Q4_0 against activations quantized to int8 per 32-block), forced: on a
// device without an integer dot product the 4x8-bit dot is written out. Checked twice: exactly (to
// float rounding) against the reference on the same int8-quantized activations, and within the
// quantization error against the float activations.
TEST_F(OpenClTest, Int8FastPathMatchesTheReferenceOnQuantizedActivations) {
  const auto int8 = make_backend([](opencl::OpenClOptions& o) {
    o.fast_paths = "int8";
    o.gemm_min_tokens = 0;
  });
  ASSERT_TRUE(int8->fast_paths().int8);
  std::printf("[opencl] int8 fast path: %s, options %s\n", int8->fast_paths().describe().c_str(),
              int8->build_options().c_str());
  // x as the kernel sees it: per 32-block d = max|x| / 127, q = round-to-even(x * (1 / d)), x' = d q.
  const auto quantized = [](std::vector<float> x) {
    for (size_t b = 0; b < x.size(); b += 32) {
      float amax = 0.0f;
      for (size_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[b + k]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      for (size_t k = 0; k < 32; ++k) x[b + k] = d * std::nearbyint(x[b + k] * id);
    }
    return x;
  };
  uint32_t seed = 700;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    double worst_exact = 0.0, err_float = 0.0, norm_float = 0.0;
    for (int64_t in : {32, 96, 1024}) {
      for (int64_t out : {1, 5, 17}) {
        for (int64_t tokens : {1, 3, 9, 17}) {
          TestTensor w(type, in, out, seed++);
          TestTensor bias(GgmlType::F32, out, 0, seed++);
          const bool with_bias = tokens % 2 == 1;
          const std::vector<float> x = random_values(static_cast<size_t>(tokens * in), seed++);
          std::vector<float> results[3];
          const std::vector<float>* inputs[3] = {&x, nullptr, &x};
          const std::vector<float> xq = quantized(x);
          inputs[1] = &xq;
          Backend* backends[3] = {int8.get(), &ref(), &ref()};
          for (int i = 0; i < 3; ++i) {
            auto weight = backends[i]->prepare_weight(w.info);
            auto bias_weight = with_bias ? backends[i]->prepare_weight(bias.info) : nullptr;
            auto xa = upload(*backends[i], tokens, in, *inputs[i]);
            auto ya = backends[i]->new_activation(tokens, out);
            backends[i]->matmul(*weight, *xa, *ya, bias_weight.get());
            results[i] = download(*backends[i], *ya);
          }
          const double exact = test::nmse(results[0], results[1]);
          worst_exact = std::max(worst_exact, exact);
          ASSERT_LT(exact, 1e-10) << type_traits(type).name << " in " << in << " out " << out << " tokens " << tokens;
          for (size_t k = 0; k < results[0].size(); ++k) {
            err_float += (results[0][k] - results[2][k]) * (results[0][k] - results[2][k]);
            norm_float += results[2][k] * results[2][k];
          }
        }
      }
    }
    // Over all shapes, the int8 activations cost what ggml's Q8 activations cost (single short dots
    // can cancel, so the bound is on the aggregate).
    const double worst_float = err_float / norm_float;
    EXPECT_LT(worst_float, 1e-3) << type_traits(type).name;
    std::printf("[opencl] int8 path %-5s worst NMSE vs quantized x %.3g, all outputs vs float x %.3g\n",
                std::string(type_traits(type).name).c_str(), worst_exact, worst_float);
  }
}

TEST_F(OpenClTest, GetRowsEveryWeightType) {
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 37 : block * 3, vocab = 11;
    TestTensor table(type, in, vocab, 7);
    const std::vector<int32_t> tokens = {3, 0, 10, 3, 7};
    std::vector<float> results[2];
    Backend* backends[2] = {&cl(), &ref()};
    for (int i = 0; i < 2; ++i) {
      auto w = backends[i]->prepare_weight(table.info);
      auto out = backends[i]->new_activation(static_cast<int64_t>(tokens.size()), in);
      backends[i]->get_rows(*w, tokens, *out);
      results[i] = download(*backends[i], *out);
    }
    EXPECT_LT(test::nmse(results[0], results[1]), 1e-12) << type_traits(type).name;
  }
}

TEST_F(OpenClTest, RmsNormWholeRowsAndPerHead) {
  for (int64_t rows : {1, 4, 17}) {
    for (auto [cols, group] : {std::pair<int64_t, int64_t>{1, 1}, {100, 100}, {1000, 1000}, {96, 32}, {257, 257}}) {
      const std::vector<float> x = random_values(static_cast<size_t>(rows * cols), 3, 2.0f);
      TestTensor weight(GgmlType::F32, group, 0, 4, 1.0f);
      std::vector<float> results[2];
      Backend* backends[2] = {&cl(), &ref()};
      for (int i = 0; i < 2; ++i) {
        auto w = backends[i]->prepare_weight(weight.info);
        auto xa = upload(*backends[i], rows, cols, x);
        backends[i]->rms_norm(*xa, *w, 1e-6f, *xa);  // in place, as the forward pass does for q/k
        results[i] = download(*backends[i], *xa);
      }
      EXPECT_LT(test::nmse(results[0], results[1]), 1e-12) << rows << "x" << cols << " group " << group;
    }
  }
}

TEST_F(OpenClTest, RopeAtLargePositions) {
  for (auto [heads, head_dim, pos0] : {std::tuple<int64_t, int64_t, int64_t>{1, 2, 0}, {4, 64, 3}, {3, 128, 4000}}) {
    const int64_t rows = 5, cols = heads * head_dim;
    const std::vector<float> x = random_values(static_cast<size_t>(rows * cols), 5);
    std::vector<float> results[2];
    Backend* backends[2] = {&cl(), &ref()};
    for (int i = 0; i < 2; ++i) {
      auto xa = upload(*backends[i], rows, cols, x);
      backends[i]->rope(*xa, heads, head_dim, pos0, 1000000.0f);
      results[i] = download(*backends[i], *xa);
    }
    EXPECT_LT(test::nmse(results[0], results[1]), 1e-10) << heads << "x" << head_dim << " at " << pos0;
  }
}

TEST_F(OpenClTest, SwigluAddCopyRows) {
  const int64_t rows = 3, cols = 101;
  const std::vector<float> a = random_values(rows * cols, 8, 3.0f), b = random_values(rows * cols, 9);
  std::vector<float> results[2];
  Backend* backends[2] = {&cl(), &ref()};
  for (int i = 0; i < 2; ++i) {
    auto ga = upload(*backends[i], rows, cols, a);
    auto ub = upload(*backends[i], rows, cols, b);
    backends[i]->swiglu(*ga, *ub, *ga);
    backends[i]->add(*ga, *ub);
    auto last = backends[i]->new_activation(2, cols);
    backends[i]->copy_rows(*ga, 1, *last, 0, 2);
    results[i] = download(*backends[i], *last);
  }
  EXPECT_LT(test::nmse(results[0], results[1]), 1e-12);
}

// The forward pass's `x += proj; h = rms_norm(x)` runs as one fused kernel, and x keeps the sum.
TEST_F(OpenClTest, AddThenNormIsOneLaunch) {
  const int64_t rows = 3, cols = 96;
  const std::vector<float> a = random_values(rows * cols, 13), b = random_values(rows * cols, 14);
  TestTensor weight(GgmlType::F32, cols, 0, 15, 1.0f);
  std::vector<float> results[2];
  Backend* backends[2] = {&cl(), &ref()};
  for (int i = 0; i < 2; ++i) {
    auto w = backends[i]->prepare_weight(weight.info);
    auto x = upload(*backends[i], rows, cols, a);
    auto y = upload(*backends[i], rows, cols, b);
    auto h = backends[i]->new_activation(rows, cols);
    if (i == 0) cl().reset_counters();
    backends[i]->add(*x, *y);
    backends[i]->rms_norm(*x, *w, 1e-6f, *h);
    if (i == 0) {
      EXPECT_EQ(cl().counters().kernel_launches, 1u);
    }
    results[i] = download(*backends[i], *h);
    const std::vector<float> sum = download(*backends[i], *x);
    results[i].insert(results[i].end(), sum.begin(), sum.end());
  }
  EXPECT_LT(test::nmse(results[0], results[1]), 1e-12);
}

// store_kv of a long history, then attention for prefill rows (causal) and a decode row far into
// the context (which the backend splits over the keys), for every KV cache type and GQA ratio.
TEST_F(OpenClTest, AttentionEveryKvTypeDecodeAndPrefill) {
  for (GgmlType kv_type : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    for (auto [n_head, n_head_kv, head_dim] : {std::tuple<int64_t, int64_t, int64_t>{4, 4, 32}, {8, 2, 64}, {2, 1, 128}}) {
      const AttentionShape shape{n_head, n_head_kv, head_dim};
      const int64_t kv_width = n_head_kv * head_dim, q_width = n_head * head_dim, n_ctx = 1500;
      for (auto [history, n_q] : {std::pair<int64_t, int64_t>{0, 7}, {5, 3}, {1400, 1}, {1100, 9}}) {
        const int64_t n_keys = history + n_q;
        const std::vector<float> k = random_values(static_cast<size_t>(n_keys * kv_width), 10, 1.0f);
        const std::vector<float> v = random_values(static_cast<size_t>(n_keys * kv_width), 11);
        const std::vector<float> q = random_values(static_cast<size_t>(n_q * q_width), 12);
        std::vector<float> results[2];
        Backend* backends[2] = {&cl(), &ref()};
        for (int i = 0; i < 2; ++i) {
          Backend& b = *backends[i];
          auto cache = b.new_kv_cache(n_ctx, n_head_kv, head_dim, kv_type);
          auto ka = upload(b, n_keys, kv_width, k);
          auto va = upload(b, n_keys, kv_width, v);
          b.store_kv(*cache, *ka, *va, 0);
          auto qa = upload(b, n_q, q_width, q);
          auto out = b.new_activation(n_q, q_width);
          b.attention(*qa, *cache, history, shape, *out);
          results[i] = download(b, *out);
        }
        const double e = test::nmse(results[0], results[1]);
        EXPECT_LT(e, kv_type == GgmlType::Q8_0 ? 1e-6 : 1e-10)
            << type_traits(kv_type).name << " heads " << n_head << "/" << n_head_kv << " dim " << head_dim
            << " history " << history << " queries " << n_q;
      }
    }
  }
}

// Another weight type whose block divides the same widths (v beside q/k in a Q4_K_M layer is Q6_K).
GgmlType other_type(GgmlType type) {
  switch (type_traits(type).block_size) {
    case 256: return type == GgmlType::Q6_K ? GgmlType::Q4_K : GgmlType::Q6_K;
    case 32: return type == GgmlType::Q8_0 ? GgmlType::Q5_1 : GgmlType::Q8_0;
    default: return type == GgmlType::F16 ? GgmlType::BF16 : GgmlType::F16;
  }
}

// The fused ops (kernels/fused.cl for one-row batches, the unfused ops otherwise) against the
// reference backend's defaults (the unfused ops). Decode rows must be one launch per op.

// h = rms_norm(x) * g; q, k, v = W · h + b: odd heights, v of another type, one launch for a decode row.
TEST_F(OpenClTest, FusedNormMatmulOfThreeProductsEveryWeightType) {
  uint32_t seed = 200;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 67 : block * 3;
    TestTensor wq(type, in, 17, seed++), wk(type, in, 5, seed++), wv(other_type(type), in, 3, seed++);
    TestTensor bq(GgmlType::F32, 17, 0, seed++), bk(GgmlType::F32, 5, 0, seed++), bv(GgmlType::F32, 3, 0, seed++);
    TestTensor norm(GgmlType::F32, in, 0, seed++, 1.0f);
    for (int64_t rows : {1, 3}) {
      for (bool with_bias : {false, true}) {
        const std::vector<float> x = random_values(static_cast<size_t>(rows * in), seed++, 2.0f);
        std::vector<float> results[2];
        Backend* backends[2] = {&cl(), &ref()};
        for (int i = 0; i < 2; ++i) {
          Backend& b = *backends[i];
          auto q = b.prepare_weight(wq.info), k = b.prepare_weight(wk.info), v = b.prepare_weight(wv.info);
          auto qb = b.prepare_weight(bq.info), kb = b.prepare_weight(bk.info), vb = b.prepare_weight(bv.info);
          auto g = b.prepare_weight(norm.info);
          auto xa = upload(b, rows, in, x);
          auto h = b.new_activation(rows, in);
          auto yq = b.new_activation(rows, 17), yk = b.new_activation(rows, 5), yv = b.new_activation(rows, 3);
          const Product products[] = {{q.get(), with_bias ? qb.get() : nullptr, yq.get()},
                                      {k.get(), with_bias ? kb.get() : nullptr, yk.get()},
                                      {v.get(), with_bias ? vb.get() : nullptr, yv.get()}};
          if (i == 0) cl().reset_counters();
          b.norm_matmul(*xa, *g, 1e-6f, *h, products);
          if (i == 0 && rows == 1) {
            EXPECT_EQ(cl().counters().kernel_launches, 1u) << type_traits(type).name;
          }
          for (const Activation* y : {yq.get(), yk.get(), yv.get()}) {
            const std::vector<float> part = download(b, *y);
            results[i].insert(results[i].end(), part.begin(), part.end());
          }
        }
        EXPECT_LT(test::nmse(results[0], results[1]), 1e-10)
            << type_traits(type).name << " rows " << rows << " bias " << with_bias;
      }
    }
  }
}

// x += W · a (the residual add in the product), one launch for a decode row.
TEST_F(OpenClTest, FusedMatmulAddEveryWeightType) {
  uint32_t seed = 300;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 45 : block * 2, out = 19;
    TestTensor w(type, in, out, seed++);
    for (int64_t rows : {1, 3}) {
      const std::vector<float> a = random_values(static_cast<size_t>(rows * in), seed++);
      const std::vector<float> x = random_values(static_cast<size_t>(rows * out), seed++, 3.0f);
      std::vector<float> results[2];
      Backend* backends[2] = {&cl(), &ref()};
      for (int i = 0; i < 2; ++i) {
        Backend& b = *backends[i];
        auto wa = b.prepare_weight(w.info);
        auto aa = upload(b, rows, in, a);
        auto xa = upload(b, rows, out, x);
        auto scratch = b.new_activation(rows, out);
        if (i == 0) cl().reset_counters();
        b.matmul_add(*wa, *aa, *xa, *scratch);
        if (i == 0 && rows == 1) {
          EXPECT_EQ(cl().counters().kernel_launches, 1u) << type_traits(type).name;
        }
        results[i] = download(b, *xa);
      }
      EXPECT_LT(test::nmse(results[0], results[1]), 1e-10) << type_traits(type).name << " rows " << rows;
    }
  }
}

// out = silu(W_gate · h) * (W_up · h), h = rms_norm(x) * g: one launch for a decode row with gate and
// up of one type; mixed types take the unfused path and agree too.
TEST_F(OpenClTest, FusedNormSwigluEveryWeightType) {
  uint32_t seed = 400;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 53 : block * 2, n_ff = 23;
    for (bool mixed : {false, true}) {
      TestTensor wg(type, in, n_ff, seed++), wu(mixed ? other_type(type) : type, in, n_ff, seed++);
      TestTensor norm(GgmlType::F32, in, 0, seed++, 1.0f);
      for (int64_t rows : {1, 3}) {
        const std::vector<float> x = random_values(static_cast<size_t>(rows * in), seed++, 2.0f);
        std::vector<float> results[2];
        Backend* backends[2] = {&cl(), &ref()};
        for (int i = 0; i < 2; ++i) {
          Backend& b = *backends[i];
          auto g = b.prepare_weight(wg.info), u = b.prepare_weight(wu.info), n = b.prepare_weight(norm.info);
          auto xa = upload(b, rows, in, x);
          auto h = b.new_activation(rows, in);
          auto up = b.new_activation(rows, n_ff), out = b.new_activation(rows, n_ff);
          if (i == 0) cl().reset_counters();
          b.norm_swiglu(*xa, *n, 1e-6f, *g, *u, *h, *up, *out);
          if (i == 0 && rows == 1 && !mixed) {
            EXPECT_EQ(cl().counters().kernel_launches, 1u) << type_traits(type).name;
          }
          results[i] = download(b, *out);
        }
        EXPECT_LT(test::nmse(results[0], results[1]), 1e-10)
            << type_traits(type).name << " rows " << rows << " mixed " << mixed;
      }
    }
  }
}

// Per-head q/k norm (or none, qwen2) + rope + KV store in one launch, for every cache type, GQA ratio
// and batch; compared through q, k and attention over the written cache (Q8_0 with heads narrower than
// a block takes the unfused path).
TEST_F(OpenClTest, FusedRopeStoreKvEveryKvType) {
  uint32_t seed = 500;
  for (GgmlType kv_type : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    for (auto [n_head, n_head_kv, head_dim] :
         {std::tuple<int64_t, int64_t, int64_t>{3, 1, 32}, {4, 2, 64}, {2, 2, 6}, {4, 2, 16}, {2, 1, 128}}) {
      const int64_t kv_width = n_head_kv * head_dim, q_width = n_head * head_dim;
      if (kv_type == GgmlType::Q8_0 && kv_width % 32 != 0) continue;
      const AttentionShape shape{n_head, n_head_kv, head_dim};
      const bool fused = kv_type != GgmlType::Q8_0 || head_dim % 32 == 0;
      for (bool with_norms : {true, false}) {
        for (auto [pos0, rows] : {std::pair<int64_t, int64_t>{0, 1}, {5, 1}, {7, 3}, {300, 1}}) {
          TestTensor q_norm(GgmlType::F32, head_dim, 0, seed++, 1.0f), k_norm(GgmlType::F32, head_dim, 0, seed++, 1.0f);
          const std::vector<float> history_k = random_values(static_cast<size_t>(std::max<int64_t>(pos0, 1) * kv_width), seed++);
          const std::vector<float> history_v = random_values(history_k.size(), seed++);
          const std::vector<float> q = random_values(static_cast<size_t>(rows * q_width), seed++, 2.0f);
          const std::vector<float> k = random_values(static_cast<size_t>(rows * kv_width), seed++, 2.0f);
          const std::vector<float> v = random_values(static_cast<size_t>(rows * kv_width), seed++);
          std::vector<float> results[2];
          Backend* backends[2] = {&cl(), &ref()};
          for (int i = 0; i < 2; ++i) {
            Backend& b = *backends[i];
            auto cache = b.new_kv_cache(512, n_head_kv, head_dim, kv_type);
            if (pos0 > 0) {
              auto hk = upload(b, pos0, kv_width, history_k), hv = upload(b, pos0, kv_width, history_v);
              b.store_kv(*cache, *hk, *hv, 0);
            }
            auto qn = b.prepare_weight(q_norm.info), kn = b.prepare_weight(k_norm.info);
            auto qa = upload(b, rows, q_width, q), ka = upload(b, rows, kv_width, k), va = upload(b, rows, kv_width, v);
            if (i == 0) cl().reset_counters();
            b.rope_store_kv(*qa, *ka, *va, with_norms ? qn.get() : nullptr, with_norms ? kn.get() : nullptr, 1e-6f,
                            *cache, pos0, shape, 1000000.0f);
            if (i == 0 && fused) {
              EXPECT_EQ(cl().counters().kernel_launches, 1u);
            }
            auto out = b.new_activation(rows, q_width);
            b.attention(*qa, *cache, pos0, shape, *out);
            for (const Activation* a : {qa.get(), ka.get(), out.get()}) {
              const std::vector<float> part = download(b, *a);
              results[i].insert(results[i].end(), part.begin(), part.end());
            }
          }
          const double e = test::nmse(results[0], results[1]);
          EXPECT_LT(e, kv_type == GgmlType::Q8_0 ? 1e-6 : 1e-10)
              << type_traits(kv_type).name << " heads " << n_head << "/" << n_head_kv << " dim " << head_dim
              << " norms " << with_norms << " pos0 " << pos0 << " rows " << rows;
        }
      }
    }
  }
}

TEST_F(OpenClTest, TensorsAboveTheMaxAllocationAreSplitByRows) {
  const std::unique_ptr<OpenClBackend> small =
      make_backend([](opencl::OpenClOptions& o) { o.max_alloc_bytes = uint64_t{1} << 20; });
  // Q8_0 rows of 256 are 272 bytes: 1 MiB holds 3855 rows, so 9000 rows make three buffers.
  TestTensor w(GgmlType::Q8_0, 256, 9000, 21);
  small->reset_counters();
  auto [got, want] = matmul_both(*small, w, 2, nullptr, 22);
  EXPECT_EQ(small->counters().kernel_launches, 3u);
  EXPECT_LT(test::nmse(got, want), 1e-10);

  const std::vector<int32_t> tokens = {0, 3854, 3855, 8999, 7710};
  std::vector<float> rows[2];
  Backend* backends[2] = {small.get(), &ref()};
  for (int i = 0; i < 2; ++i) {
    auto table = backends[i]->prepare_weight(w.info);
    auto out = backends[i]->new_activation(static_cast<int64_t>(tokens.size()), 256);
    backends[i]->get_rows(*table, tokens, *out);
    rows[i] = download(*backends[i], *out);
  }
  EXPECT_LT(test::nmse(rows[0], rows[1]), 1e-12);
  // A KV cache above the cap is refused with a clear error rather than split.
  EXPECT_THROW(small->new_kv_cache(100000, 8, 128, GgmlType::F32), Error);
}

TEST_F(OpenClTest, ProgramCacheHitsAndRebuildsCorruptEntries) {
  test::ScratchDir dir;
  opencl::OpenClOptions options = cli::read_environment().opencl;
  options.cache_dir = dir.file("kernels");
  const auto first = opencl::make_opencl_backend(options);
  const int programs = first->program_cache_stats().builds;
  EXPECT_GT(programs, 0);
  EXPECT_EQ(first->program_cache_stats().hits, 0);

  const auto second = opencl::make_opencl_backend(options);
  EXPECT_EQ(second->program_cache_stats().hits, programs);
  EXPECT_EQ(second->program_cache_stats().builds, 0);

  // Flip a byte in the middle of one cached binary: it is rejected and rebuilt, the rest still hit.
  opencl::ProgramCache probe(cl::Context(), cl::Device(), second->device_info(), options.cache_dir);
  const std::string path = probe.cache_path("norm.cl", second->build_options());
  std::vector<uint8_t> bytes = test::read_binary(path);
  ASSERT_GT(bytes.size(), 64u) << path;
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
  const auto third = opencl::make_opencl_backend(options);
  EXPECT_EQ(third->program_cache_stats().rejected, 1);
  EXPECT_EQ(third->program_cache_stats().builds, 1);
  EXPECT_EQ(third->program_cache_stats().hits, programs - 1);
  // The rebuilt program works.
  TestTensor weight(GgmlType::F32, 8, 0, 1, 1.0f);
  auto w = third->prepare_weight(weight.info);
  auto x = upload(*third, 1, 8, random_values(8, 2));
  third->rms_norm(*x, *w, 1e-6f, *x);
  EXPECT_GT(test::max_abs_diff(download(*third, *x), std::vector<float>(8, 0.0f)), 0.0f);
}

TEST_F(OpenClTest, UnknownDeviceSelectorIsAClearError) {
  opencl::OpenClOptions options;
  options.device = "no-such-device-xyz";
  try {
    opencl::make_opencl_backend(options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-device-xyz"), std::string::npos) << e.what();
  }
}

// Whole models: OpenCL vs reference on synthetic Qwen3 (tied, per-head norms) and Qwen2 (biases).
class OpenClModelTest : public OpenClTest, public ::testing::WithParamInterface<Architecture> {
 protected:
  std::unique_ptr<Model> make_model(GgmlType type) {
    SyntheticModelSpec spec;
    spec.arch = GetParam();
    spec.n_layer = 2;
    spec.n_embd = 256;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 64;
    spec.n_ff = 512;
    spec.n_vocab = 600;
    spec.n_ctx = 128;
    spec.tied_output = GetParam() == Architecture::Qwen3;
    spec.weight_type = type;
    const std::string path = dir_.file(std::string(type_traits(type).name) + ".gguf");
    write_synthetic_model(spec, path);
    return Model::load(path);
  }
  test::ScratchDir dir_;
};

TEST_P(OpenClModelTest, SameGreedyTokensAndCloseLogitsOnF16) {
  const auto model = make_model(GgmlType::F16);
  const int64_t n_layer = model->config().n_layer;
  const TransformerOptions options{.n_ctx = 128, .n_batch = 16};
  Transformer on_cl(*model, Placement::all_on(cl(), n_layer), options);
  Transformer on_ref(*model, Placement::all_on(ref(), n_layer), options);
  const std::vector<int32_t> prompt = {1, 50, 7, 599, 3, 3, 42, 100, 8, 9, 10, 11, 300, 12, 13, 14, 15, 16, 17, 18};
  std::vector<float> cl_logits = on_cl.eval(prompt, true), ref_logits = on_ref.eval(prompt, true);
  double worst = test::nmse(cl_logits, ref_logits);
  std::vector<int32_t> cl_tokens, ref_tokens;
  for (int step = 0; step < 40; ++step) {
    const auto argmax = [&](const std::vector<float>& l) {
      return static_cast<int32_t>(std::max_element(l.end() - model->config().n_vocab, l.end()) - l.begin() -
                                  (static_cast<int64_t>(l.size()) - model->config().n_vocab));
    };
    cl_tokens.push_back(argmax(cl_logits));
    ref_tokens.push_back(argmax(ref_logits));
    ASSERT_EQ(cl_tokens, ref_tokens) << "diverged at step " << step;
    cl().reset_counters();
    cl_logits = on_cl.eval(std::span<const int32_t>(&cl_tokens.back(), 1));
    if (step == 0) {
      const auto& c = cl().counters();
      std::printf("[opencl] decode: %llu launches, %llu copies, %llu blocking syncs per token (%lld layers)\n",
                  static_cast<unsigned long long>(c.kernel_launches), static_cast<unsigned long long>(c.buffer_copies),
                  static_cast<unsigned long long>(c.blocking_syncs), static_cast<long long>(n_layer));
      EXPECT_EQ(c.blocking_syncs, 1u);
      // Six fused launches per layer (attention unsplit at this context), the embedding lookup and the
      // normed output head.
      EXPECT_EQ(c.kernel_launches, static_cast<uint64_t>(6 * n_layer + 2));
      EXPECT_EQ(c.buffer_copies, 0u);
    }
    ref_logits = on_ref.eval(std::span<const int32_t>(&ref_tokens.back(), 1));
    worst = std::max(worst, test::nmse(cl_logits, ref_logits));
  }
  std::printf("[opencl] %s F16 logits NMSE (worst over prompt and 40 steps) %.3g\n",
              std::string(architecture_name(GetParam())).c_str(), worst);
  EXPECT_LE(worst, 1e-5);
}

// The prompt through the prefill GEMM path (threshold 2: both micro-batches of 16 and 4 tokens),
// then 32 greedy decode steps: the same tokens as the reference.
TEST_P(OpenClModelTest, SameGreedyTokensWithTheGemmPathOnF16) {
  const auto gemm = make_backend([](opencl::OpenClOptions& o) { o.gemm_min_tokens = 2; });
  const auto model = make_model(GgmlType::F16);
  const int64_t n_layer = model->config().n_layer;
  const TransformerOptions options{.n_ctx = 128, .n_batch = 16};
  Transformer on_cl(*model, Placement::all_on(*gemm, n_layer), options);
  Transformer on_ref(*model, Placement::all_on(ref(), n_layer), options);
  const std::vector<int32_t> prompt = {1, 50, 7, 599, 3, 3, 42, 100, 8, 9, 10, 11, 300, 12, 13, 14, 15, 16, 17, 18};
  std::vector<float> cl_logits = on_cl.eval(prompt, true), ref_logits = on_ref.eval(prompt, true);
  EXPECT_GT(gemm->counters().gemm_calls, 0u);
  double worst = test::nmse(cl_logits, ref_logits);
  const int64_t n_vocab = model->config().n_vocab;
  const auto argmax = [&](const std::vector<float>& l) {
    return static_cast<int32_t>(std::max_element(l.end() - n_vocab, l.end()) - (l.end() - n_vocab));
  };
  std::vector<int32_t> cl_tokens, ref_tokens;
  for (int step = 0; step < 32; ++step) {
    cl_tokens.push_back(argmax(cl_logits));
    ref_tokens.push_back(argmax(ref_logits));
    ASSERT_EQ(cl_tokens, ref_tokens) << "diverged at step " << step;
    cl_logits = on_cl.eval(std::span<const int32_t>(&cl_tokens.back(), 1));
    ref_logits = on_ref.eval(std::span<const int32_t>(&ref_tokens.back(), 1));
    worst = std::max(worst, test::nmse(cl_logits, ref_logits));
  }
  std::printf("[opencl] %s F16 with GEMM prefill: logits NMSE (worst) %.3g\n",
              std::string(architecture_name(GetParam())).c_str(), worst);
  EXPECT_LE(worst, 1e-5);
}

TEST_P(OpenClModelTest, EveryWeightTypeTracksTheReference) {
  const std::vector<int32_t> prompt = {1, 50, 7, 599, 3, 3, 42, 100, 8};
  for (GgmlType type : kWeightTypes) {
    const auto model = make_model(type);
    const int64_t n_layer = model->config().n_layer;
    const TransformerOptions options{.n_ctx = 64, .n_batch = 4};
    Transformer on_cl(*model, Placement::all_on(cl(), n_layer), options);
    Transformer on_ref(*model, Placement::all_on(ref(), n_layer), options);
    std::vector<float> got = on_cl.eval(prompt, true), want = on_ref.eval(prompt, true);
    const int32_t next = 77;
    const std::vector<float> got_next = on_cl.eval(std::span<const int32_t>(&next, 1));
    const std::vector<float> want_next = on_ref.eval(std::span<const int32_t>(&next, 1));
    got.insert(got.end(), got_next.begin(), got_next.end());
    want.insert(want.end(), want_next.begin(), want_next.end());
    const double e = test::nmse(got, want);
    std::printf("[opencl] %s %-5s logits NMSE %.3g\n", std::string(architecture_name(GetParam())).c_str(),
                std::string(type_traits(type).name).c_str(), e);
    EXPECT_LT(e, 1e-5) << type_traits(type).name;
  }
}

INSTANTIATE_TEST_SUITE_P(OpenClModel, OpenClModelTest, ::testing::Values(Architecture::Qwen3, Architecture::Qwen2),
                         [](const auto& param_info) { return std::string(architecture_name(param_info.param)); });

// Build options come from a DeviceInfo alone: an Iris Xe fixture needs no device.
opencl::DeviceInfo iris_xe_fixture() {
  opencl::DeviceInfo d;
  d.platform_name = "Intel(R) OpenCL Graphics";
  d.name = "Intel(R) Iris(R) Xe Graphics";
  d.vendor = "Intel(R) Corporation";
  d.vendor_id = 0x8086;
  d.type = opencl::DeviceType::Gpu;
  d.compute_units = 96;
  d.max_work_group_size = 512;
  d.local_memory_bytes = 64 * 1024;
  d.unified_memory = true;
  d.fp16 = true;
  d.intel_ip_version = (12u << 22) | (0u << 14);  // Xe-LP 12.0 (Tiger Lake)
  return d;
}

TEST(OpenClBuildOptions, TuningTableChoosesTheMostSpecificRow) {
  const opencl::DeviceInfo xe = iris_xe_fixture();
  EXPECT_EQ(opencl::device_architecture(xe), "gen12lp");
  const auto row = [](const std::string& vendor, const std::string& arch) {
    for (const opencl::TuningEntry& e : opencl::tuning_table()) {
      if (e.vendor == vendor && e.architecture == arch && e.device.empty()) return e.tuning;
    }
    ADD_FAILURE() << "no tuning row " << vendor << "/" << arch;
    return opencl::KernelTuning{};
  };
  const opencl::KernelTuning t = opencl::select_tuning(xe);
  EXPECT_EQ(t.matmul_tokens, row("intel", "gen12lp").matmul_tokens);
  EXPECT_EQ(t.attn_split_len, row("intel", "gen12lp").attn_split_len);
  EXPECT_NE(t.attn_split_len, row("intel", "").attn_split_len);  // the rows differ, so the choice shows
  const std::string options = opencl::build_options(t);
  EXPECT_NE(options.find("-DMATMUL_WG=" + std::to_string(t.matmul_wg) + " "), std::string::npos) << options;
  EXPECT_EQ(options.find("fast-relaxed-math"), std::string::npos) << options;

  opencl::DeviceInfo tiny = xe;
  tiny.max_work_group_size = 8;
  tiny.intel_ip_version = 0;
  tiny.name = "Some GPU";
  const opencl::KernelTuning fitted = opencl::select_tuning(tiny);
  EXPECT_EQ(fitted.matmul_wg, 8);
  EXPECT_EQ(fitted.attn_wg, 8);

  opencl::DeviceInfo cpu = xe;
  cpu.type = opencl::DeviceType::Cpu;
  EXPECT_EQ(opencl::device_architecture(cpu), "cpu");
  EXPECT_EQ(opencl::select_tuning(cpu).matmul_rows, row("", "cpu").matmul_rows);
  EXPECT_EQ(opencl::select_tuning(cpu).matmul_wg, row("", "cpu").matmul_wg);
}

// Fast paths follow the device's features, and a request names them explicitly.
TEST(OpenClBuildOptions, FastPathsFollowFeaturesAndRequests) {
  opencl::DeviceInfo xe = iris_xe_fixture();
  xe.intel_subgroups = xe.subgroups = xe.required_subgroup_size = true;
  xe.subgroup_sizes = {8, 16, 32};
  xe.integer_dot_product = true;
  xe.extensions = {"cl_intel_subgroups", "cl_khr_fp16", "cl_khr_integer_dot_product"};
  const opencl::KernelTuning t = opencl::select_tuning(xe);
  const opencl::FastPaths all = opencl::select_fast_paths(xe, t);
  EXPECT_EQ(all.describe(), "subgroups16,int8-dp4a-visa");  // fp16 only where the tuning says fp16_math
  EXPECT_EQ(opencl::select_fast_paths(xe, t, "fp16,subgroups,int8").describe(), "fp16,subgroups16,int8-dp4a-visa");
  EXPECT_EQ(opencl::select_fast_paths(xe, t, "none").describe(), "none");
  EXPECT_EQ(opencl::select_fast_paths(xe, t, "fp16").describe(), "fp16");
  EXPECT_EQ(opencl::build_options(t, opencl::select_fast_paths(xe, t, "none")), opencl::build_options(t));

  // A CPU device with none of the features: auto is the baseline; int8 can be forced (written-out
  // dot), fp16 and sub-groups cannot.
  opencl::DeviceInfo cpu;
  cpu.name = "cpu device";
  cpu.type = opencl::DeviceType::Cpu;
  cpu.max_work_group_size = 4096;
  const opencl::KernelTuning ct = opencl::select_tuning(cpu);
  EXPECT_EQ(opencl::select_fast_paths(cpu, ct).describe(), "none");
  EXPECT_EQ(opencl::select_fast_paths(cpu, ct, "int8").describe(), "int8");
  EXPECT_NE(opencl::build_options(ct, opencl::select_fast_paths(cpu, ct, "int8")).find("-DXELM_INT8"), std::string::npos);
  EXPECT_THROW(opencl::select_fast_paths(cpu, ct, "fp16"), Error);
  EXPECT_THROW(opencl::select_fast_paths(cpu, ct, "subgroups"), Error);
  EXPECT_THROW(opencl::select_fast_paths(cpu, ct, "int4"), Error);

  // A non-Intel GPU with cl_khr_integer_dot_product gets the extension's dot().
  opencl::DeviceInfo other = cpu;
  other.type = opencl::DeviceType::Gpu;
  other.vendor = "Other";
  other.integer_dot_product = true;
  EXPECT_EQ(opencl::select_fast_paths(other, opencl::select_tuning(other)).describe(), "int8-dot-khr");
}

}  // namespace
}  // namespace xelm
