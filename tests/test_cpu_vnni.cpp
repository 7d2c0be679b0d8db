// test_cpu_vnni.cpp — the VNNI product kernels of the AVX2 backend (--cpu-isa avxvnni, avx512):
// CPUID detection and the ISA choice; bit-identity with the AVX2 kernels (the same products through
// each ISA, compared with memcmp) for every weight type at odd shapes, batch sizes 1..5 (dot kernels)
// and 8..33 (panels plus the dot kernel for the rest), on quantized values and on random weight bytes
// that reach the extremes of every quant and scale; and each ISA against the reference backend. An
// ISA the CPU lacks is skipped with a message naming it. A whole synthetic model gives the same logits
// through every ISA.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"
#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/quant_blocks.h"
#include "runtime/synthetic_model.h"
#include "runtime/transformer.h"
#include "tests/backend_test_util.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using cpu::CpuFeatures;
using cpu::CpuIsa;

const std::vector<GgmlType>& kWeightTypes = test::kMatmulWeightTypes;

// GTEST_SKIP with the reason when the CPU cannot run `isa`.
#define SKIP_WITHOUT_ISA(isa)                                                                            \
  if (!cpu::has_isa(cpu::cpu_features(), isa))                                                           \
  GTEST_SKIP() << "--cpu-isa " << cpu::isa_name(isa) << " NOT TESTED: this CPU lacks "                   \
               << cpu::isa_requirements(isa) << " (it has " << cpu::cpu_features().summary() << ")"

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Random bytes as blocks of a quantized type, with every fp16 scale field (d, dmin, m) set to a
// finite value of either sign: the quants, sub-block scales and mins take every value their bits
// allow, e.g. Q8_0's -128, Q6_K's scale -128, Q4_K's 6-bit scales and mins of 63.
template <typename Block>
void randomize_blocks(uint8_t* bytes, size_t n_bytes, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  auto random_half = [&] { return fp32_to_fp16(byte(rng) % 2 == 0 ? scale(rng) : -scale(rng)); };
  for (size_t i = 0; i < n_bytes; ++i) bytes[i] = static_cast<uint8_t>(byte(rng));
  for (size_t offset = 0; offset + sizeof(Block) <= n_bytes; offset += sizeof(Block)) {
    Block b;
    std::memcpy(&b, bytes + offset, sizeof(b));
    b.d = random_half();
    if constexpr (requires { b.dmin; }) b.dmin = random_half();
    if constexpr (requires { b.m; }) b.m = random_half();
    std::memcpy(bytes + offset, &b, sizeof(b));
  }
}

// Whether the type's weight bytes can be random (quantized types) and, if so, fills them.
bool fill_random_bytes(GgmlType type, std::vector<uint8_t>& bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  switch (type) {
    case GgmlType::Q4_0: randomize_blocks<quant::block_q4_0>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q4_1: randomize_blocks<quant::block_q4_1>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q5_0: randomize_blocks<quant::block_q5_0>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q5_1: randomize_blocks<quant::block_q5_1>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q8_0: randomize_blocks<quant::block_q8_0>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q2_K: randomize_blocks<quant::block_q2_K>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q3_K: randomize_blocks<quant::block_q3_K>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q4_K: randomize_blocks<quant::block_q4_K>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q5_K: randomize_blocks<quant::block_q5_K>(bytes.data(), bytes.size(), rng); return true;
    case GgmlType::Q6_K: randomize_blocks<quant::block_q6_K>(bytes.data(), bytes.size(), rng); return true;
    default: return false;
  }
}

// A weight [cols, rows] of `type`: quantized random values, or (random_bytes) random block bytes.
struct TestWeight {
  TestWeight(GgmlType type, int64_t cols, int64_t rows, uint32_t seed, bool random_bytes, std::string name = "w") {
    const size_t row_size = row_bytes(type, cols);
    bytes.resize(row_size * static_cast<size_t>(rows));
    if (!random_bytes || !fill_random_bytes(type, bytes, seed)) {
      const std::vector<float> values = random_values(static_cast<size_t>(cols * rows), seed);
      for (int64_t r = 0; r < rows; ++r) quantize_row(type, values.data() + r * cols, bytes.data() + r * row_size, cols);
    }
    info.name = std::move(name);  // (a literal assigned here trips GCC 12's -Wrestrict)
    info.type = type;
    info.shape = {cols, rows};
    info.n_bytes = bytes.size();
    info.data = bytes.data();
  }
  std::vector<uint8_t> bytes;
  gguf::TensorInfo info;
};

// y = w · x for `rows` random activation rows of width w.in_features() on `backend`.
std::vector<float> product(Backend& backend, const gguf::TensorInfo& w, int64_t rows, uint32_t seed) {
  const int64_t in = w.shape[0], out = w.shape[1];
  const std::unique_ptr<Weight> weight = backend.prepare_weight(w);
  auto x = backend.new_activation(rows, in), y = backend.new_activation(rows, out);
  backend.write(*x, random_values(static_cast<size_t>(rows * in), seed));
  backend.matmul(*weight, *x, *y, nullptr);
  std::vector<float> result(static_cast<size_t>(rows * out));
  backend.read(*y, result);
  return result;
}

// Row lengths: one block, and many (37 blocks of the 32-element types, 5 of the K-quants; float
// types 33 (dot kernel only) and 296 (panels too)).
std::vector<int64_t> widths(GgmlType type) {
  const int64_t block = type_traits(type).block_size;
  if (block == 1) return {33, 296};
  return {block, block * (block == 256 ? 5 : 37)};
}

// Output rows: 1 and 5 (dot kernel only), 8 (one panel), 24 (two panels, then one), 37 (four panels
// and 5 rows of dot kernel).
constexpr int64_t kOutputs[] = {1, 5, 8, 24, 37};
// Activation rows: 1..5 through the dot kernel (tiles of up to 4 rows), from 8 through panels (tiles of
// 3, 4, 6 or 8 rows and partial last tiles).
constexpr int64_t kBatchSizes[] = {1, 2, 3, 4, 5, 8, 9, 11, 17, 33};

std::string type_name(GgmlType type) { return std::string(type_traits(type).name); }

struct IsaAndType {
  CpuIsa isa;
  GgmlType type;
};

std::vector<IsaAndType> vnni_isas_and_types() {
  std::vector<IsaAndType> all;
  for (CpuIsa isa : {CpuIsa::AvxVnni, CpuIsa::Avx512}) {
    for (GgmlType type : kWeightTypes) all.push_back({isa, type});
  }
  return all;
}

std::string param_name(const ::testing::TestParamInfo<IsaAndType>& info) {
  return std::string(cpu::isa_name(info.param.isa)) + "_" + type_name(info.param.type);
}

class CpuVnniKernels : public ::testing::TestWithParam<IsaAndType> {};

// The same products through the AVX2 kernels and through this ISA's: identical bytes.
TEST_P(CpuVnniKernels, BitIdenticalToAvx2) {
  const auto [isa, type] = GetParam();
  SKIP_WITHOUT_ISA(isa);
  int compared = 0;
  for (int threads : {1, 3}) {
    const std::unique_ptr<Backend> avx2 = cpu::make_avx2_backend(threads, CpuIsa::Avx2);
    const std::unique_ptr<Backend> vnni = cpu::make_avx2_backend(threads, isa);
    for (bool random_bytes : {false, true}) {
      for (int64_t in : widths(type)) {
        for (int64_t out : kOutputs) {
          const TestWeight w(type, in, out, static_cast<uint32_t>(in * 131 + out + (random_bytes ? 7 : 0)), random_bytes);
          for (int64_t rows : kBatchSizes) {
            if (threads > 1 && rows != 5 && rows != 17) continue;  // threads split the panels: a few sizes
            const uint32_t seed = static_cast<uint32_t>(rows * 17 + out);
            const std::vector<float> expected = product(*avx2, w.info, rows, seed);
            const std::vector<float> got = product(*vnni, w.info, rows, seed);
            ASSERT_EQ(got.size(), expected.size());
            const bool same = std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0;
            if (!same) {
              const size_t i = static_cast<size_t>(
                  std::mismatch(got.begin(), got.end(), expected.begin(),
                                [](float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }).first -
                  got.begin());
              ADD_FAILURE() << type_name(type) << " " << cpu::isa_name(isa) << " in " << in << " out " << out << " rows "
                            << rows << " threads " << threads << (random_bytes ? " random bytes" : "")
                            << ": first difference at " << i << ": " << got[i] << " vs AVX2 " << expected[i];
            }
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 0);
}

// This ISA's products against the reference backend, pooled over the shapes and batch sizes.
TEST_P(CpuVnniKernels, MatchesReference) {
  const auto [isa, type] = GetParam();
  SKIP_WITHOUT_ISA(isa);
  const bool float_type = type_traits(type).block_size == 1;
  const double bound = float_type ? 1e-12 : 2e-4;  // as for the AVX2 kernels (test_cpu_avx2.cpp)
  const std::unique_ptr<Backend> ref = cpu::make_reference_backend();
  const std::unique_ptr<Backend> fast = cpu::make_avx2_backend(2, isa);
  double worst = 0.0;
  for (int64_t in : widths(type)) {
    for (int64_t out : kOutputs) {
      const TestWeight w(type, in, out, static_cast<uint32_t>(in + out), false);
      std::vector<float> all_fast, all_ref;
      for (int64_t rows : kBatchSizes) {
        const std::vector<float> f = product(*fast, w.info, rows, static_cast<uint32_t>(rows));
        const std::vector<float> r = product(*ref, w.info, rows, static_cast<uint32_t>(rows));
        all_fast.insert(all_fast.end(), f.begin(), f.end());
        all_ref.insert(all_ref.end(), r.begin(), r.end());
      }
      const double e = test::nmse(all_fast, all_ref);
      worst = std::max(worst, e);
      EXPECT_LT(e, bound) << type_name(type) << " " << cpu::isa_name(isa) << " in " << in << " out " << out;
    }
  }
  std::printf("[ %s %s ] matmul worst NMSE vs reference: %.3g\n", type_name(type).c_str(),
              std::string(cpu::isa_name(isa)).c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(VnniIsas, CpuVnniKernels, ::testing::ValuesIn(vnni_isas_and_types()), param_name);

// The AVX2 kernels, which the VNNI ones are compared with, also run on random weight bytes (the
// extremes of every quant) within the reference's error: the range arguments of maddubs hold there.
TEST(CpuVnniKernels, Avx2OnRandomBlockBytesMatchesReference) {
  SKIP_WITHOUT_ISA(CpuIsa::Avx2);
  const std::unique_ptr<Backend> ref = cpu::make_reference_backend();
  const std::unique_ptr<Backend> avx2 = cpu::make_avx2_backend(1, CpuIsa::Avx2);
  for (GgmlType type : kWeightTypes) {
    if (type_traits(type).block_size == 1) continue;
    const int64_t in = widths(type).back();
    const TestWeight w(type, in, 37, 5u, true);
    for (int64_t rows : {int64_t{3}, int64_t{17}}) {
      const std::vector<float> f = product(*avx2, w.info, rows, 11u), r = product(*ref, w.info, rows, 11u);
      EXPECT_LT(test::nmse(f, r), 2e-4) << type_name(type) << " rows " << rows;
    }
  }
}

// A 4-layer synthetic model: the prompt in batches of 9 (panels, then the dot kernels for the last 4
// rows) and 6 decoded tokens give the same logits, byte for byte, through every ISA the CPU has.
TEST(CpuVnniModel, LogitsBitIdenticalAcrossIsas) {
  SKIP_WITHOUT_ISA(CpuIsa::Avx2);
  test::ScratchDir dir;
  const std::vector<int32_t> prompt = {5, 17, 999, 0, 42, 42, 7, 150, 3, 88, 201, 640, 12};
  int compared = 0;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_0}) {
    const SyntheticModelSpec spec = test::small_model_spec(type);
    const std::string path = dir.file(type_name(type) + ".gguf");
    write_synthetic_model(spec, path);
    const std::unique_ptr<Model> model = Model::load(path);
    // Logits of the prompt, then of 6 greedy steps, concatenated.
    auto run = [&](CpuIsa isa) {
      const std::unique_ptr<Backend> backend = cpu::make_avx2_backend(2, isa);
      Transformer t(*model, Placement::all_on(*backend, model->config().n_layer), TransformerOptions{.n_ctx = 256, .n_batch = 9});
      std::vector<float> logits = t.eval(prompt), all = logits;
      for (int step = 0; step < 6; ++step) {
        const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        logits = t.eval(std::span<const int32_t>(&next, 1));
        all.insert(all.end(), logits.begin(), logits.end());
      }
      return all;
    };
    const std::vector<float> expected = run(CpuIsa::Avx2);
    for (CpuIsa isa : {CpuIsa::AvxVnni, CpuIsa::Avx512}) {
      if (!cpu::has_isa(cpu::cpu_features(), isa)) {
        std::printf("[ cpu ] --cpu-isa %s NOT TESTED on this CPU (it lacks %s)\n", std::string(cpu::isa_name(isa)).c_str(),
                    std::string(cpu::isa_requirements(isa)).c_str());
        continue;
      }
      const std::vector<float> got = run(isa);
      ASSERT_EQ(got.size(), expected.size());
      EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0)
          << type_name(type) << " " << cpu::isa_name(isa) << ": logits differ from AVX2's";
      ++compared;
    }
  }
  if (compared == 0) GTEST_SKIP() << "NOT TESTED: this CPU has neither AVX-VNNI nor AVX-512 VNNI, nothing to compare with AVX2";
}

TEST(CpuIsaChoice, DetectionAgreesWithTheCompilersCpuid) {
  const CpuFeatures& f = cpu::cpu_features();
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2, __builtin_cpu_supports("avx2") != 0);
  EXPECT_EQ(f.fma, __builtin_cpu_supports("fma") != 0);
  EXPECT_EQ(f.avxvnni, __builtin_cpu_supports("avxvnni") != 0);
  EXPECT_EQ(f.avx512f, __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(f.avx512bw, __builtin_cpu_supports("avx512bw") != 0);
  EXPECT_EQ(f.avx512vl, __builtin_cpu_supports("avx512vl") != 0);
  EXPECT_EQ(f.avx512vnni, __builtin_cpu_supports("avx512vnni") != 0);
  std::printf("[ cpu ] %s; kernel ISAs: avx2 %s, avxvnni %s, avx512 %s\n", f.summary().c_str(),
              cpu::has_isa(f, CpuIsa::Avx2) ? "yes" : "NO", cpu::has_isa(f, CpuIsa::AvxVnni) ? "yes" : "NO",
              cpu::has_isa(f, CpuIsa::Avx512) ? "yes" : "NO");
}

TEST(CpuIsaChoice, AutoTakesTheBestAndAMissingIsaIsRefusedInOneLine) {
  CpuFeatures f;
  EXPECT_EQ(cpu::choose_isa(f, "auto"), std::nullopt);  // no AVX2: the reference backend
  EXPECT_THROW(cpu::choose_isa(f, "avx2"), Error);
  f.avx2 = f.fma = f.f16c = true;
  EXPECT_EQ(cpu::choose_isa(f, "auto"), CpuIsa::Avx2);
  EXPECT_EQ(cpu::choose_isa(f, "avx2"), CpuIsa::Avx2);
  try {
    cpu::choose_isa(f, "avxvnni");
    ADD_FAILURE() << "avxvnni accepted without AVX-VNNI";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.rfind("--cpu-isa avxvnni: this CPU lacks it", 0), 0u) << message;
    EXPECT_NE(message.find("AVX-VNNI"), std::string::npos) << message;
  }
  f.avxvnni = true;
  EXPECT_EQ(cpu::choose_isa(f, "auto"), CpuIsa::AvxVnni);
  f.avx512f = f.avx512bw = f.avx512vl = true;  // Skylake-X: AVX-512 without VNNI
  EXPECT_EQ(cpu::choose_isa(f, "auto"), CpuIsa::AvxVnni);
  EXPECT_THROW(cpu::choose_isa(f, "avx512"), Error);
  f.avx512vnni = true;
  EXPECT_EQ(cpu::choose_isa(f, "auto"), CpuIsa::Avx512);
  f.avxvnni = false;  // Tiger Lake: AVX-512 VNNI, no AVX-VNNI
  EXPECT_EQ(cpu::choose_isa(f, "auto"), CpuIsa::Avx512);
  EXPECT_THROW(cpu::choose_isa(f, "avxvnni"), Error);
  EXPECT_THROW(cpu::choose_isa(f, "sse2"), Error);
  for (CpuIsa isa : cpu::kAllCpuIsas) EXPECT_EQ(cpu::parse_isa(cpu::isa_name(isa)), isa);
}

TEST(CpuIsaChoice, BackendNameSaysWhichKernelsRun) {
  for (CpuIsa isa : cpu::kAllCpuIsas) {
    const std::string name(cpu::isa_name(isa));
    if (!cpu::has_isa(cpu::cpu_features(), isa)) {
      EXPECT_THROW(cpu::make_cpu_backend(1, name), Error) << name;
      std::printf("[ cpu ] --cpu-isa %s NOT TESTED on this CPU (refused, as it should be)\n", name.c_str());
      continue;
    }
    const std::string expected = isa == CpuIsa::Avx2 ? "cpu-avx2 (1 threads)" : "cpu-avx2+" + name + " (1 threads)";
    EXPECT_EQ(cpu::make_cpu_backend(1, name)->name(), expected);
  }
}

}  // namespace
}  // namespace xelm
