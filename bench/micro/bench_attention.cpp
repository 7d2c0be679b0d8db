// bench_attention.cpp — Google Benchmark of attention at Qwen3-0.6B's geometry (16 query / 8 KV
// heads × 128): decode (one query token over a filled KV cache) per KV storage type and context
// length, on the AVX2 backend and, when an OpenCL device exists, the OpenCL backend, reporting the KV
// bytes read per second (SetBytesProcessed), since decode attention is bound by reading the cache;
// and prefill (a whole causal prompt at once, AVX2), reporting multiply-adds per second ("MAC/s"),
// since it is bound by arithmetic.
// Threads: XELM_BENCH_THREADS (default: one per physical core). OpenCL: the device and settings xelm
// reads from the environment (XELM_OPENCL_DEVICE, ...; tools/xelm/environment.h).
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/cpu_features.h"
#include "host/opencl_backend.h"
#include "runtime/error.h"
#include "runtime/ggml_types.h"
#include "tools/xelm/environment.h"

namespace {

using xelm::GgmlType;

constexpr int64_t kHeads = 16, kKvHeads = 8, kHeadDim = 128;

std::unique_ptr<xelm::Backend> make_backend(const std::string& name, std::string& why_not) {
  try {
    if (name == "opencl") return xelm::opencl::make_opencl_backend(xelm::cli::read_environment().opencl);
    const xelm::cpu::CpuFeatures& f = xelm::cpu::cpu_features();
    if (!(f.avx2 && f.fma && f.f16c)) throw xelm::Error("CPU lacks AVX2/FMA/F16C");
    const char* threads = std::getenv("XELM_BENCH_THREADS");
    return xelm::cpu::make_avx2_backend(threads != nullptr ? std::atoi(threads) : 0);
  } catch (const xelm::Error& e) {
    why_not = e.what();
    return nullptr;
  }
}

void BM_DecodeAttention(benchmark::State& state, const std::string& backend_name, GgmlType kv_type) {
  std::string why_not;
  auto backend = make_backend(backend_name, why_not);
  if (!backend) {
    state.SkipWithError(why_not.c_str());
    return;
  }
  const int64_t n_ctx = state.range(0), kv_width = kKvHeads * kHeadDim;
  auto cache = backend->new_kv_cache(n_ctx, kKvHeads, kHeadDim, kv_type);
  // Fill every position: k, v [n_ctx, kv_width] written in batches of up to 256 rows.
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  constexpr int64_t kBatch = 256;
  auto k = backend->new_activation(kBatch, kv_width), v = backend->new_activation(kBatch, kv_width);
  std::vector<float> values(static_cast<size_t>(kBatch * kv_width));
  for (int64_t pos = 0; pos < n_ctx; pos += kBatch) {
    const int64_t n = std::min(kBatch, n_ctx - pos);
    k->set_rows(n);
    v->set_rows(n);
    values.resize(static_cast<size_t>(n * kv_width));
    for (float& x : values) x = dist(rng);
    backend->write(*k, values);
    backend->write(*v, values);
    backend->store_kv(*cache, *k, *v, pos);
  }
  auto q = backend->new_activation(1, kHeads * kHeadDim), out = backend->new_activation(1, kHeads * kHeadDim);
  values.resize(static_cast<size_t>(kHeads * kHeadDim));
  for (float& x : values) x = dist(rng);
  backend->write(*q, values);
  const xelm::AttentionShape shape{kHeads, kKvHeads, kHeadDim};
  for (auto _ : state) {
    backend->attention(*q, *cache, n_ctx - 1, shape, *out);  // the query at the last position sees them all
    backend->synchronize();
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(xelm::row_bytes(kv_type, kv_width)) * n_ctx);
}

void BM_PrefillAttention(benchmark::State& state, GgmlType kv_type) {
  std::string why_not;
  auto backend = make_backend("avx2", why_not);
  if (!backend) {
    state.SkipWithError(why_not.c_str());
    return;
  }
  const int64_t n = state.range(0), kv_width = kKvHeads * kHeadDim, q_width = kHeads * kHeadDim;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto random_activation = [&](int64_t cols) {
    std::vector<float> values(static_cast<size_t>(n * cols));
    for (float& x : values) x = dist(rng);
    auto a = backend->new_activation(n, cols);
    backend->write(*a, values);
    return a;
  };
  auto cache = backend->new_kv_cache(n, kKvHeads, kHeadDim, kv_type);
  auto k = random_activation(kv_width), v = random_activation(kv_width), q = random_activation(q_width);
  auto out = backend->new_activation(n, q_width);
  backend->store_kv(*cache, *k, *v, 0);
  const xelm::AttentionShape shape{kHeads, kKvHeads, kHeadDim};
  for (auto _ : state) {
    backend->attention(*q, *cache, 0, shape, *out);
    backend->synchronize();
  }
  // Causal: query t sees t + 1 keys; two products (Q·Kᵀ and P·V) of head_dim each per (query, key, head).
  const double macs = 2.0 * kHeads * kHeadDim * static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
  state.counters["MAC/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * macs, benchmark::Counter::kIsRate);
}

void register_all() {
  benchmark::RegisterBenchmark("prefill_attention/avx2/F16", BM_PrefillAttention, GgmlType::F16)
      ->Arg(512)
      ->Unit(benchmark::kMillisecond);
  for (const char* backend : {"avx2", "opencl"}) {
    for (GgmlType type : {GgmlType::F16, GgmlType::F32, GgmlType::Q8_0}) {
      const std::string name = std::string("decode_attention/") + backend + "/" +
                               std::string(xelm::type_traits(type).name);
      benchmark::RegisterBenchmark(name.c_str(), BM_DecodeAttention, std::string(backend), type)
          ->Arg(512)
          ->Arg(4096)
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

const int registered = (register_all(), 0);

}  // namespace
