// test_opencl_backend.cpp — the OpenCL backend beyond single-op comparisons (those are in
// test_backend_ops.cpp, the op harness: every op, weight type and KV cache type, the GEMM path and the
// forced int8 fast path): what only the OpenCL backend has — one launch for the forward pass's
// add-then-norm, the GEMM path over tensors split above the max allocation and its fallback when
// CLBlast fails, the int8 fast path's error against float activations, the split itself, a KvBatch
// uploaded once per batch, the kernel binary cache, device selection errors — whole synthetic
// Qwen3/Qwen2 models against the scalar reference backend, and the build options (which need no
// device). Tests that need an OpenCL device skip when none exists.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <utility>
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
#include "tests/backend_test_util.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

using opencl::OpenClBackend;

using test::download;
using test::random_values;
using test::TestTensor;
using test::upload;

const std::vector<GgmlType>& kWeightTypes = test::kMatmulWeightTypes;

class OpenClTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::has_opencl_device()) shared_ = test::make_test_opencl_backend();
  }
  static void TearDownTestSuite() { shared_.reset(); }
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
    return test::make_test_opencl_backend(std::forward<F>(set));
  }

  static inline std::unique_ptr<OpenClBackend> shared_;
  std::unique_ptr<Backend> ref_;
};

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

// The int8 fast path (Q8_0 / Q4_0 on activations quantized to int8 per 32-block), forced: on a device
// without an integer dot product the 4x8-bit dot is written out. The op harness checks it exactly
// against the reference on the same int8-rounded activations (Ops/BackendOps.Matmul/opencl_int8_*);
// here, over the same shapes, against float activations: the int8 activations cost what ggml's Q8
// activations cost (single short dots can cancel, so the bound is on the aggregate).
TEST_F(OpenClTest, Int8FastPathStaysWithinTheQuantizationErrorOfFloatActivations) {
  const auto int8 = make_backend([](opencl::OpenClOptions& o) {
    o.fast_paths = "int8";
    o.gemm_min_tokens = 0;
  });
  ASSERT_TRUE(int8->fast_paths().int8);
  uint32_t seed = 700;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    double err = 0.0, norm = 0.0;
    for (int64_t in : {32, 96, 1024}) {
      for (int64_t out : {1, 5, 17}) {
        for (int64_t tokens : {1, 3, 9, 17}) {
          TestTensor w(type, in, out, seed++);
          TestTensor bias(GgmlType::F32, out, 0, seed++);
          const bool with_bias = tokens % 2 == 1;
          auto [got, want] = matmul_both(*int8, w, tokens, with_bias ? &bias : nullptr, seed++);
          for (size_t k = 0; k < got.size(); ++k) {
            err += (got[k] - want[k]) * (got[k] - want[k]);
            norm += want[k] * want[k];
          }
        }
      }
    }
    EXPECT_LT(err / norm, 1e-3) << type_traits(type).name;
    std::printf("[opencl] int8 path %-5s all outputs vs float x: NMSE %.3g\n",
                std::string(type_traits(type).name).c_str(), err / norm);
  }
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

// A KvBatch's int arrays go to the device once per batch (the forward pass passes one batch to every
// layer): the layers after the first transfer nothing for it; a new batch is uploaded again.
TEST_F(OpenClTest, KvBatchIsUploadedOncePerBatch) {
  const AttentionShape s{4, 2, 32};
  const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim;
  auto make_batch = [] {
    KvBatch batch;
    batch.page_size = 16;
    const std::vector<int32_t> first = {3}, second = {1, 2};
    batch.add_run(0, 2, first);
    batch.add_run(20, 1, second);
    batch.finish();
    return batch;
  };
  const KvBatch batch = make_batch();
  auto cache = cl().new_kv_cache(64, s.n_head_kv, s.head_dim, GgmlType::F16);
  auto q = upload(cl(), 3, q_width, random_values(3 * q_width, 50));
  auto k = upload(cl(), 3, kv_width, random_values(3 * kv_width, 51));
  auto v = upload(cl(), 3, kv_width, random_values(3 * kv_width, 52));
  auto out = cl().new_activation(3, q_width);
  const auto layer = [&](const KvBatch& b) {
    cl().store_kv(*cache, *k, *v, b);
    cl().attention(*q, *cache, b, s, *out);
  };
  layer(batch);  // uploads the batch: 3 rows of 3 ints and 3 pages
  cl().reset_counters();
  layer(batch);
  layer(batch);
  EXPECT_EQ(cl().counters().bytes_to_device, 0u);
  layer(make_batch());  // the same contents under a new id
  EXPECT_EQ(cl().counters().bytes_to_device, (3 * 3 + 3) * sizeof(int32_t));
  cl().synchronize();
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
