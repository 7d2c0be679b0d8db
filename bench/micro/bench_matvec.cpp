// bench_matvec.cpp — Google Benchmark of the AVX2 backend's products per weight type at the
// Qwen3-0.6B FFN shapes 1024×3072 and 3072×1024: the matrix-vector product (one token, the decode
// case) reports weight bytes per second (SetBytesProcessed), since decode is bound by reading the
// weights (and, as matvec_head, at the output head's 1024×151936, which streams from DRAM); the
// 2-, 4- and 8-token products (a decode step of that many sequences together) and the 64- and
// 512-token matrix-matrix products (prompt processing; 512 as in pp512) report multiply-adds per
// second (counter "MAC/s"), since they are bound by arithmetic.
// Threads: XELM_BENCH_THREADS (default: one per physical core); kernel ISA: XELM_BENCH_ISA (auto,
// avx2, avxvnni, avx512; default auto, the best the CPU has). For A/B comparisons of kernels on a
// shared machine, XELM_BENCH_THREADS=1 and the CPU-time column are the steadiest figures.
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "runtime/ggml_types.h"
#include "runtime/gguf.h"

namespace {

using xelm::GgmlType;

void BM_Product(benchmark::State& state, GgmlType type, int64_t n_tokens) {
  const char* isa_env = std::getenv("XELM_BENCH_ISA");
  std::optional<xelm::cpu::CpuIsa> isa;
  try {
    isa = xelm::cpu::choose_isa(xelm::cpu::cpu_features(), isa_env != nullptr ? isa_env : "auto");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (!isa) {
    state.SkipWithError("CPU lacks AVX2/FMA/F16C");
    return;
  }
  const int64_t in = state.range(0), out = state.range(1);
  // Weights [in, out]: a few distinct quantized rows repeated (quantizing 3M values per type with the
  // reference quantizers would dominate the run; the kernel's speed does not depend on the values).
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  constexpr int64_t kDistinctRows = 8;
  const size_t row_size = xelm::row_bytes(type, in);
  std::vector<uint8_t> bytes(row_size * static_cast<size_t>(out));
  std::vector<float> values(static_cast<size_t>(in));
  for (int64_t r = 0; r < kDistinctRows; ++r) {
    for (float& v : values) v = dist(rng);
    xelm::quantize_row(type, values.data(), bytes.data() + static_cast<size_t>(r) * row_size, in);
  }
  for (int64_t r = kDistinctRows; r < out; ++r) {
    std::copy_n(bytes.data() + static_cast<size_t>(r % kDistinctRows) * row_size, row_size,
                bytes.data() + static_cast<size_t>(r) * row_size);
  }
  xelm::gguf::TensorInfo info;
  info.name = "w";
  info.type = type;
  info.shape = {in, out};
  info.n_bytes = bytes.size();
  info.data = bytes.data();

  const char* threads_env = std::getenv("XELM_BENCH_THREADS");
  auto backend = xelm::cpu::make_avx2_backend(threads_env != nullptr ? std::atoi(threads_env) : 0, *isa);
  auto weight = backend->prepare_weight(info);
  auto x = backend->new_activation(n_tokens, in), y = backend->new_activation(n_tokens, out);
  std::vector<float> x_values(static_cast<size_t>(n_tokens * in));
  for (float& v : x_values) v = dist(rng);
  backend->write(*x, x_values);
  for (auto _ : state) {
    backend->matmul(*weight, *x, *y, nullptr);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
  state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(in * out * n_tokens),
                                               benchmark::Counter::kIsRate);
}

void register_all() {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                        GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                        GgmlType::Q6_K}) {
    for (const int64_t n_tokens : {1, 2, 4, 8, 64, 512}) {
      const std::string name = (n_tokens == 1 ? std::string("matvec/") : "matmul" + std::to_string(n_tokens) + "/") +
                               std::string(xelm::type_traits(type).name);
      benchmark::RegisterBenchmark(name.c_str(), BM_Product, type, n_tokens)
          ->Args({1024, 3072})
          ->Args({3072, 1024})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
    // The tied output head (vocabulary 151936): 90-310 MB of weights, far beyond the caches, so this
    // one shows the product as decode meets it, streaming from DRAM.
    const std::string name = "matvec_head/" + std::string(xelm::type_traits(type).name);
    benchmark::RegisterBenchmark(name.c_str(), BM_Product, type, int64_t{1})
        ->Args({1024, 151936})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

const bool registered = (register_all(), true);

}  // namespace
