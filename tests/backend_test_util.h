// backend_test_util.h — helpers shared by the tests that drive a Backend directly (the op harness
// test_backend_ops.cpp, and the AVX2 and OpenCL suites): seeded random values, weight tensors built
// from them in any GgmlType, host <-> backend activation transfers, and how the tests find and make
// the AVX2 and OpenCL backends (the same device choice everywhere: $XELM_OPENCL_DEVICE, else the
// default one).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cpu_fallback/cpu_features.h"
#include "host/device_info.h"
#include "host/opencl_backend.h"
#include "runtime/backend.h"
#include "runtime/ggml_types.h"
#include "runtime/synthetic_model.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm::test {

// n samples of N(0, scale^2), the same for the same seed on every platform that has mt19937's
// standard output (normal_distribution's algorithm is the library's: libstdc++ here).
inline std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Every weight type the CPU and OpenCL backends multiply (matmul): the float types and the quants.
inline const std::vector<GgmlType> kMatmulWeightTypes = {
    GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
    GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// A weight tensor whose bytes live in the test: random values (+ offset) quantized to `type`, in a
// 4096-aligned allocation (so an OpenCL backend on unified memory takes its zero-copy path when the
// size allows). A matrix [in, out] (out rows of in values), or a vector [in] when out is 0 (norm
// weights, biases).
struct TestTensor {
  TestTensor(GgmlType type, int64_t in, int64_t out, uint32_t seed, float offset = 0.0f, std::string name = "") {
    const bool vector = out == 0;
    const int64_t rows = vector ? 1 : out;
    const size_t row = row_bytes(type, in);
    const size_t bytes = row * static_cast<size_t>(rows);
    storage.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)));
    std::vector<float> values = random_values(static_cast<size_t>(in * rows), seed);
    for (float& v : values) v += offset;
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, values.data() + r * in, storage.get() + r * row, in);
    info.name = name.empty() ? "test." + std::string(type_traits(type).name) : std::move(name);
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

// A new activation [rows, cols] on b holding values (row-major, rows * cols of them).
inline std::unique_ptr<Activation> upload(Backend& b, int64_t rows, int64_t cols, std::span<const float> values) {
  auto a = b.new_activation(rows, cols);
  b.write(*a, values);
  return a;
}

// All rows() * cols() values of a, row-major.
inline std::vector<float> download(Backend& b, const Activation& a) {
  std::vector<float> out(static_cast<size_t>(a.rows() * a.cols()));
  b.read(a, out);
  return out;
}

// The small synthetic model the whole-model CPU tests share: 4 layers, n_embd 256, 4/2 heads × 64,
// n_ff 512, vocab 1000, context 256, matrices of `weight_type`.
inline SyntheticModelSpec small_model_spec(GgmlType weight_type) {
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
  return spec;
}

// `spec` with the real Qwen tokenizer embedded and Qwen's padded vocabulary (151936), for tests
// that tokenize, render chat templates or serve.
inline SyntheticModelSpec with_real_tokenizer(SyntheticModelSpec spec) {
  spec.n_vocab = 151936;
  spec.tokenizer_path = default_tokenizer_path();
  return spec;
}

// Whether this CPU can run the AVX2 backend (cpu::make_avx2_backend needs all three).
inline bool has_avx2() {
  const cpu::CpuFeatures& f = cpu::cpu_features();
  return f.avx2 && f.fma && f.f16c;
}

// Whether any OpenCL device exists (asked once per process).
inline bool has_opencl_device() {
  static const bool present = !opencl::discover_devices().devices.empty();
  return present;
}

// The kernel binary cache of the tests' OpenCL backends: one scratch directory per process, so the
// second backend made with the same build options loads the programs the first one built.
inline std::string test_kernel_cache_dir() {
  static const ScratchDir dir;
  return dir.file("kernels");
}

// An OpenCL backend on the device the tests use (OpenClOptions::device left empty: the one
// $XELM_OPENCL_DEVICE names, else the default choice), with the options `configure` sets. With a
// label, prints "[label] <name>, options: <build options>" (scripts/test.sh checks the "[opencl]"
// line to see which device ran). Throws xelm::Error as make_opencl_backend does.
template <typename F>
std::unique_ptr<opencl::OpenClBackend> make_test_opencl_backend(F&& configure, const char* label = nullptr) {
  opencl::OpenClOptions options = cli::read_environment().opencl;
  options.cache_dir = test_kernel_cache_dir();
  configure(options);
  std::unique_ptr<opencl::OpenClBackend> backend = opencl::make_opencl_backend(options);
  if (label != nullptr) {
    std::printf("[%s] %s, options: %s\n", label, backend->name().c_str(), backend->build_options().c_str());
  }
  return backend;
}

// The default configuration, announced as "[opencl] ...".
inline std::unique_ptr<opencl::OpenClBackend> make_test_opencl_backend() {
  return make_test_opencl_backend([](opencl::OpenClOptions&) {}, "opencl");
}

}  // namespace xelm::test
