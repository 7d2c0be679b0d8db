// test_batch_invariance.cpp — batch invariance of the AVX2 backend's matmul (continuous batching): a
// row of y = w · x is bit-identical (memcmp) whatever else is in the batch — the same activation row
// alone (n = 1, decode), in small batches (dot kernel tiles) and in large ones (panels), at any
// position of the batch, with 1 or 2 threads (the pool's chunks of output rows), with and without a
// bias, for every weight type and every kernel ISA the CPU has. Skipped on CPUs without AVX2/FMA/F16C.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "runtime/backend.h"
#include "runtime/ggml_types.h"
#include "tests/backend_test_util.h"

namespace xelm {
namespace {

using cpu::CpuIsa;

// Activation rows the batches are drawn from.
constexpr int64_t kPoolRows = 33;
// Batch sizes: 1..7 below the panel threshold (dot kernel tiles of up to 4 rows: 5 = 4 + 1), 8 and
// more through panels (tiles of 3, 4, 6 or 8 rows and partial last tiles).
constexpr int64_t kBatchSizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33};
// Batch row i is pool row (i + offset) % kPoolRows: with offset 6, pool row 6 is batch row 0, with
// offset 0 it is batch row 6.
constexpr int64_t kOffsets[] = {0, 6};

// Row lengths: quantized types 8 blocks (256) of the 32-element types, 2 of the K-quants; float types
// 296 (a multiple of 8: panels) and 37 (dot kernel only).
std::vector<int64_t> widths(GgmlType type) {
  const int64_t block = type_traits(type).block_size;
  if (block == 1) return {296, 37};
  return {block == 256 ? 2 * block : 8 * block};
}
// Output rows: 72 (9 panels, split between threads) and 37 (4 panels and 5 rows of dot kernel).
constexpr int64_t kOutputs[] = {72, 37};

// y [rows, out] = w · x (+ bias) for x [rows, in] (row-major values).
std::vector<float> product(Backend& backend, const Weight& w, const Weight* bias, const std::vector<float>& x,
                           int64_t rows) {
  const int64_t in = w.in_features(), out = w.out_features();
  auto xa = test::upload(backend, rows, in, x);
  auto y = backend.new_activation(rows, out);
  backend.matmul(w, *xa, *y, bias);
  return test::download(backend, *y);
}

struct IsaAndType {
  CpuIsa isa;
  GgmlType type;
};

std::vector<IsaAndType> isas_and_types() {
  std::vector<IsaAndType> all;
  for (CpuIsa isa : cpu::kAllCpuIsas) {
    for (GgmlType type : test::kMatmulWeightTypes) all.push_back({isa, type});
  }
  return all;
}

std::string param_name(const ::testing::TestParamInfo<IsaAndType>& info) {
  return std::string(cpu::isa_name(info.param.isa)) + "_" + std::string(type_traits(info.param.type).name);
}

class BatchInvariance : public ::testing::TestWithParam<IsaAndType> {};

// Every row of every batch against the same activation row multiplied alone.
TEST_P(BatchInvariance, RowsMatchTheRowAlone) {
  const auto [isa, type] = GetParam();
  if (!test::has_avx2()) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C";
  if (!cpu::has_isa(cpu::cpu_features(), isa)) {
    GTEST_SKIP() << "--cpu-isa " << cpu::isa_name(isa) << " NOT TESTED: this CPU lacks " << cpu::isa_requirements(isa);
  }
  const std::string type_name(type_traits(type).name);
  int compared = 0;
  for (int threads : {1, 2}) {
    const std::unique_ptr<Backend> backend = cpu::make_avx2_backend(threads, isa);
    for (int64_t in : widths(type)) {
      const std::vector<float> pool = test::random_values(static_cast<size_t>(kPoolRows * in), static_cast<uint32_t>(in));
      for (int64_t out : kOutputs) {
        const test::TestTensor w_tensor(type, in, out, static_cast<uint32_t>(in * 131 + out));
        const test::TestTensor bias_tensor(GgmlType::F32, out, 0, static_cast<uint32_t>(out), 0.0f, "test.bias");
        const std::unique_ptr<Weight> w = backend->prepare_weight(w_tensor.info);
        const std::unique_ptr<Weight> bias_weight = backend->prepare_weight(bias_tensor.info);
        for (const Weight* bias : {static_cast<const Weight*>(nullptr), static_cast<const Weight*>(bias_weight.get())}) {
          // alone[k]: pool row k multiplied alone, [out].
          std::vector<std::vector<float>> alone(kPoolRows);
          for (int64_t k = 0; k < kPoolRows; ++k) {
            const std::vector<float> row(pool.begin() + k * in, pool.begin() + (k + 1) * in);
            alone[static_cast<size_t>(k)] = product(*backend, *w, bias, row, 1);
          }
          for (int64_t n : kBatchSizes) {
            for (int64_t offset : kOffsets) {
              std::vector<float> x(static_cast<size_t>(n * in));  // [n, in]
              for (int64_t i = 0; i < n; ++i) {
                const int64_t k = (i + offset) % kPoolRows;
                std::copy_n(pool.begin() + k * in, in, x.begin() + i * in);
              }
              const std::vector<float> y = product(*backend, *w, bias, x, n);
              for (int64_t i = 0; i < n; ++i) {
                const std::vector<float>& expected = alone[static_cast<size_t>((i + offset) % kPoolRows)];
                const float* got = y.data() + i * out;
                ++compared;
                if (std::memcmp(got, expected.data(), static_cast<size_t>(out) * sizeof(float)) == 0) continue;
                int64_t o = 0;
                while (std::memcmp(got + o, &expected[static_cast<size_t>(o)], sizeof(float)) == 0) ++o;
                ADD_FAILURE() << type_name << " " << cpu::isa_name(isa) << " in " << in << " out " << out << " batch " << n
                              << " row " << i << " (pool row " << (i + offset) % kPoolRows << ") threads " << threads
                              << (bias != nullptr ? " bias" : "") << ": output " << o << " is " << got[o]
                              << ", alone " << expected[static_cast<size_t>(o)];
                break;  // one message per batch
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 0);
}

INSTANTIATE_TEST_SUITE_P(CpuIsas, BatchInvariance, ::testing::ValuesIn(isas_and_types()), param_name);

}  // namespace
}  // namespace xelm
