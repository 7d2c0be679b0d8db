// test_backend_ops.cpp — one harness for the op-level tests of every backend (in the manner of
// llama.cpp's test-backend-ops): a case is one op with one shape/type configuration; it runs that op
// on a backend under test and on the scalar reference backend with the same seeded inputs and bounds
// the normalized error (NMSE) of the outputs (and, where a case says so, the largest difference).
//
// Tests are named Ops/BackendOps.<Op>/<backend>_<configuration>, e.g.
// Ops/BackendOps.Matmul/opencl_Q4_K_256x17_rows9_bias, so a failure names the backend, the op and the
// shape. Backends under test ("variants"): the AVX2 backend with 1, 2 and 3 threads (skipped on CPUs
// without AVX2/FMA/F16C) and the OpenCL backend on the device the other OpenCL tests use (skipped
// without one), plus two OpenCL configurations of one op: the prefill GEMM path from 2 tokens
// (opencl_gemm) and the forced int8 fast path (opencl_int8).
//
// Adding an op: add an entry to kOps (its name and the function listing its cases). Adding a
// configuration: add a case to that list; a case says which variants it runs on (by default every
// backend in its default configuration) and bounds the error. The fused ops (NormMatmul, RopeStoreKv,
// MatmulAdd, NormSwiglu) are ops of their own since backends override them (their cases run on the
// OpenCL backend, the one that does; the AVX2 backend keeps Backend's defaults). The paged ops
// (PagedRope, PagedAttention, KvRows) run on every backend: batches of several sequences over block
// tables of scattered pages of a shared pool, and raw cache row transfers. Where the two
// backends were tested on different shapes with different bounds (matmul: AVX2 quantizes activations
// to 8 bits; attention), each keeps its own cases; the cheap ops run every case on every backend.
//
// ctest runs this suite as one test per backend family (tests/CMakeLists.txt), not one process per
// case; scripts/test.sh's rusticl stage selects the OpenCL variants by name.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "host/opencl_backend.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ggml_types.h"
#include "tests/backend_test_util.h"
#include "tests/test_util.h"

namespace xelm {
namespace {

using test::random_values;
using test::TestTensor;

// ---- Backends under test -------------------------------------------------------------------------

enum class Family { Avx2, OpenCl };

// One backend (or one configuration of it) the cases run on.
struct Variant {
  const char* name;  // first part of the test name: "avx2_t1", "opencl_gemm", ...
  Family family;
  int threads;       // AVX2: thread count
  bool special;      // a configuration for some cases only (they name it), not a default backend
};

const Variant kVariants[] = {
    {"avx2_t1", Family::Avx2, 1, false},
    {"avx2_t2", Family::Avx2, 2, false},
    {"avx2_t3", Family::Avx2, 3, false},
    {"opencl", Family::OpenCl, 0, false},
    // Matmul from 2 tokens on through the prefill GEMM path (dequantize + CLBlast SGEMM).
    {"opencl_gemm", Family::OpenCl, 0, true},
    // Q8_0/Q4_0 products on int8-quantized activations, forced (where the device lacks an integer dot
    // product the 4x8-bit dot is written out, the algorithm the same); compared with the reference on
    // the activations as the kernel rounds them (OpRun::product_input).
    {"opencl_int8", Family::OpenCl, 0, true},
};

bool is(const Variant& v, const char* name) { return std::string(v.name) == name; }

// Which variants a case runs on.
using RunsOn = bool (*)(const Variant&);
bool every_backend(const Variant& v) { return !v.special; }
bool avx2_backend(const Variant& v) { return v.family == Family::Avx2; }
bool opencl_backend(const Variant& v) { return is(v, "opencl"); }

// A variant's backend, made on first use and shared by its cases (the suite tears it down).
struct Instance {
  std::unique_ptr<Backend> backend;
  opencl::OpenClBackend* cl = nullptr;  // the same backend when it is an OpenCL one (for counters)
  std::string absent;                   // why it cannot run here: a skip, not a failure
  std::string error;                    // it should run here but could not be made: a failure
};

std::unique_ptr<opencl::OpenClBackend> make_opencl_variant(const Variant& v) {
  if (is(v, "opencl_gemm")) {
    auto b = test::make_test_opencl_backend([](opencl::OpenClOptions& o) { o.gemm_min_tokens = 2; }, "opencl_gemm");
    if (b->gemm_min_tokens() != 2) throw Error("the GEMM path is off on " + b->name());
    return b;
  }
  if (is(v, "opencl_int8")) {
    auto b = test::make_test_opencl_backend(
        [](opencl::OpenClOptions& o) {
          o.fast_paths = "int8";
          o.gemm_min_tokens = 0;
        },
        "opencl_int8");
    std::printf("[opencl_int8] fast paths: %s\n", b->fast_paths().describe().c_str());
    if (!b->fast_paths().int8) throw Error("the int8 fast path is off on " + b->name());
    return b;
  }
  return test::make_test_opencl_backend();
}

std::map<std::string, Instance>& instances() {
  static std::map<std::string, Instance> all;
  return all;
}

Instance& instance(const Variant& v) {
  auto [it, fresh] = instances().try_emplace(v.name);
  Instance& inst = it->second;
  if (!fresh) return inst;
  try {
    if (v.family == Family::Avx2) {
      if (!test::has_avx2()) {
        inst.absent = "CPU lacks AVX2/FMA/F16C";
      } else {
        inst.backend = cpu::make_avx2_backend(v.threads);
      }
    } else if (!test::has_opencl_device()) {
      inst.absent = "no OpenCL platform/device";
    } else {
      std::unique_ptr<opencl::OpenClBackend> b = make_opencl_variant(v);
      inst.cl = b.get();
      inst.backend = std::move(b);
    }
  } catch (const std::exception& e) {
    inst.error = std::string(v.name) + ": " + e.what();
  }
  return inst;
}

Backend& reference() {
  static std::unique_ptr<Backend> ref;
  if (!ref) ref = cpu::make_reference_backend();
  return *ref;
}

// ---- What a case runs ----------------------------------------------------------------------------

// x as the int8 fast path's kernel sees it: per 32-block d = max|x| / 127, q = round-to-even(x / d),
// x' = d q.
std::vector<float> int8_rounded(std::vector<float> x) {
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[b + k]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t k = 0; k < 32; ++k) x[b + k] = d * std::nearbyint(x[b + k] * id);
  }
  return x;
}

// The seeded inputs of one case, made once: both sides of a comparison, and the variants that run
// the case one after another (tests are registered case by case), read the same values.
class CaseInputs {
 public:
  const std::vector<float>& random(size_t n, uint32_t seed, float scale) {
    auto [it, fresh] = randoms_.try_emplace({n, seed, scale});
    if (fresh) it->second = random_values(n, seed, scale);
    return it->second;
  }
  const TestTensor& tensor(GgmlType type, int64_t in, int64_t out, uint32_t seed, float offset, const std::string& name) {
    auto [it, fresh] = tensors_.try_emplace({type, in, out, seed, offset, name});
    if (fresh) it->second = std::make_unique<TestTensor>(type, in, out, seed, offset, name);
    return *it->second;
  }
  // The reference backend's outputs, by whether product inputs were int8-rounded.
  std::optional<std::vector<float>> reference_out[2];

 private:
  std::map<std::tuple<size_t, uint32_t, float>, std::vector<float>> randoms_;
  std::map<std::tuple<GgmlType, int64_t, int64_t, uint32_t, float, std::string>, std::unique_ptr<TestTensor>> tensors_;
};

// A case's run function gets one of these per side: the backend, helpers to make its inputs there,
// and the outputs it appends to `out` for the comparison.
class OpRun {
 public:
  OpRun(Backend& backend, bool int8_products, CaseInputs& inputs, opencl::OpenClBackend* cl)
      : b(backend), int8_products_(int8_products), inputs_(inputs), cl_(cl) {}

  // n samples of N(0, scale^2) from seed (random_values), the same on both sides.
  const std::vector<float>& random(size_t n, uint32_t seed, float scale = 1.0f) {
    return inputs_.random(n, seed, scale);
  }
  // A weight tensor (TestTensor: a matrix [in, n_out], or a vector [in] when n_out is 0).
  const TestTensor& tensor(GgmlType type, int64_t in, int64_t n_out, uint32_t seed, float offset = 0.0f,
                           const std::string& name = "") {
    return inputs_.tensor(type, in, n_out, seed, offset, name);
  }
  std::unique_ptr<Weight> weight(const TestTensor& t) { return b.prepare_weight(t.info); }
  std::unique_ptr<Activation> input(int64_t rows, int64_t cols, std::span<const float> values) {
    return test::upload(b, rows, cols, values);
  }
  // The activations of a product: where a reference stands in for the int8 fast path, rounded as its
  // kernels round them, so that the comparison is exact to float rounding.
  std::unique_ptr<Activation> product_input(int64_t rows, int64_t cols, const std::vector<float>& values) {
    if (int8_products_) return input(rows, cols, int8_rounded(values));
    return input(rows, cols, values);
  }
  void output(const Activation& a) {
    const std::vector<float> values = test::download(b, a);
    out.insert(out.end(), values.begin(), values.end());
  }
  // Runs the op under test (setup and read-back stay outside, so the counters are the op's alone).
  template <typename F>
  void op(F&& f) {
    if (cl_ != nullptr) cl_->reset_counters();
    f();
    if (cl_ != nullptr) counters = cl_->counters();
  }

  Backend& b;
  std::vector<float> out;
  std::optional<opencl::OpenClCounters> counters;  // of the last op() on a backend that counts

 private:
  bool int8_products_;
  CaseInputs& inputs_;
  opencl::OpenClBackend* cl_;
};

struct OpCase {
  OpCase() = default;
  OpCase(std::string config_name, std::string description, double nmse_bound, std::function<void(OpRun&)> run_op,
         RunsOn variants = every_backend)
      : config(std::move(config_name)), what(std::move(description)), nmse(nmse_bound), run(std::move(run_op)),
        runs_on(variants) {}

  std::string config;  // the test name after the variant: "Q4_K_256x17_rows9_bias"
  std::string what;    // one line for the test list and failure messages
  double nmse = 0.0;   // bound on the NMSE of the outputs vs the reference
  std::function<void(OpRun&)> run;
  RunsOn runs_on = every_backend;
  std::optional<float> max_abs;  // bound on the largest |difference| (0: the outputs must be equal)
  // Where the backend counts its work (OpenCL): kernel launches the op must take (the fused decode
  // kernels: one), and whether it must go through the GEMM path.
  std::optional<uint64_t> launches;
  std::optional<bool> gemm;
};

struct Op {
  const char* name;  // the test name's op part: "Matmul"
  std::vector<OpCase> (*cases)();
};

// ---- Naming --------------------------------------------------------------------------------------

std::string type_name(GgmlType type) { return std::string(type_traits(type).name); }

std::string joined(const std::vector<int64_t>& values, const char* separator = "_") {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) s += (i > 0 ? separator : "") + std::to_string(values[i]);
  return s;
}

std::string shape_name(int64_t rows, int64_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

const std::vector<GgmlType>& kWeightTypes = test::kMatmulWeightTypes;

// Another weight type whose block divides the same widths (v beside q/k in a Q4_K_M layer is Q6_K).
GgmlType other_type(GgmlType type) {
  switch (type_traits(type).block_size) {
    case 256: return type == GgmlType::Q6_K ? GgmlType::Q4_K : GgmlType::Q6_K;
    case 32: return type == GgmlType::Q8_0 ? GgmlType::Q5_1 : GgmlType::Q8_0;
    default: return type == GgmlType::F16 ? GgmlType::BF16 : GgmlType::F16;
  }
}

// ---- Matmul --------------------------------------------------------------------------------------

// y = W x (+ bias) with W [in, out] of one type, for one or more batch sizes whose outputs are pooled
// into one comparison (the AVX2 cases: a single output row still gives a meaningful NMSE that way).
struct MatmulShape {
  GgmlType type;
  int64_t in, out;
  std::vector<std::pair<int64_t, bool>> batches;  // (rows, with bias)
  uint32_t w_seed, bias_seed;
  std::optional<uint32_t> x_seed;                 // nullopt: the batch's row count
};

OpCase matmul_case(const MatmulShape& s, double nmse, RunsOn runs_on) {
  std::vector<int64_t> batch_rows;
  bool any_bias = false, all_bias = true;
  for (auto [rows, bias] : s.batches) {
    batch_rows.push_back(rows);
    any_bias |= bias;
    all_bias &= bias;
  }
  OpCase c;
  c.config = type_name(s.type) + "_" + std::to_string(s.in) + "x" + std::to_string(s.out) + "_rows" +
             joined(batch_rows) + (s.batches.size() == 1 && any_bias ? "_bias" : "");
  c.what = "matmul " + type_name(s.type) + " in " + std::to_string(s.in) + " out " + std::to_string(s.out) + " rows " +
           joined(batch_rows, ",") + (all_bias ? " with bias" : any_bias ? " (bias on odd rows)" : "");
  c.nmse = nmse;
  c.runs_on = runs_on;
  c.run = [s](OpRun& r) {
    const auto w = r.weight(r.tensor(s.type, s.in, s.out, s.w_seed));
    const auto bias = r.weight(r.tensor(GgmlType::F32, s.out, 0, s.bias_seed));
    for (auto [rows, with_bias] : s.batches) {
      const uint32_t x_seed = s.x_seed.value_or(static_cast<uint32_t>(rows));
      auto x = r.product_input(rows, s.in, r.random(static_cast<size_t>(rows * s.in), x_seed));  // [rows, in]
      auto y = r.b.new_activation(rows, s.out);                                                 // [rows, out]
      r.op([&] { r.b.matmul(*w, *x, *y, with_bias ? bias.get() : nullptr); });
      r.output(*y);
    }
  };
  return c;
}

std::vector<OpCase> matmul_cases() {
  std::vector<OpCase> cases;
  // AVX2: odd shapes, batch sizes 1..33 pooled per shape (2 and 3 threads: a few batch sizes). Float
  // types take any width: 33 goes through the dot kernel only, 296 (37 blocks of the panel kernel's
  // 8 elements) through panels too; from 8 rows the types with a panel kernel take it (panels of 8
  // output rows, the rest through the dot kernel; tiles of up to 8 activation rows, the last one
  // partial). Bounds ~3-5x the measured worst: float types differ from the reference only in
  // summation order (<= 2e-13); the integer paths quantize activations to 8 bits (3e-5 .. 8e-5).
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const double bound = type_traits(type).is_quantized ? 2e-4 : 1e-12;
    for (int64_t in : {block == 1 ? int64_t{33} : block, (block == 1 ? 8 : block) * (block == 256 ? 5 : 37)}) {
      for (int64_t out : {1, 16, 37}) {
        MatmulShape one_thread{type, in, out, {}, 7u + static_cast<uint32_t>(in + out), 99u, std::nullopt};
        MatmulShape more_threads = one_thread;
        for (int64_t rows : {1, 2, 3, 4, 5, 8, 9, 17, 33}) one_thread.batches.push_back({rows, rows % 2 == 1});
        for (int64_t rows : {5, 17, 33}) more_threads.batches.push_back({rows, rows % 2 == 1});
        cases.push_back(matmul_case(one_thread, bound, [](const Variant& v) { return is(v, "avx2_t1"); }));
        cases.push_back(matmul_case(more_threads, bound, [](const Variant& v) {
          return avx2_backend(v) && !is(v, "avx2_t1");
        }));
      }
    }
  }
  // OpenCL: every type at one block per row, several blocks, and (float types) an odd width; odd
  // heights and batch sizes; bias on odd batches of more than one output.
  uint32_t seed = 1;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    std::vector<int64_t> widths = {block == 1 ? 32 : block, block == 1 ? 1000 : block * 5};
    if (block == 1) widths.push_back(67);
    for (int64_t in : widths) {
      for (int64_t out : {1, 2, 5, 16, 17}) {
        for (int64_t tokens : {1, 3, 9, 17}) {
          const uint32_t w_seed = seed++, bias_seed = seed++, x_seed = seed++;
          cases.push_back(matmul_case({type, in, out, {{tokens, out > 1 && tokens % 2 == 1}}, w_seed, bias_seed, x_seed},
                                      1e-10, opencl_backend));
        }
      }
    }
  }
  // OpenCL's GEMM path from 2 tokens: every type, odd output counts, with and without bias; one token
  // stays on the matmul kernel.
  const RunsOn gemm_path = [](const Variant& v) { return is(v, "opencl_gemm"); };
  seed = 500;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    for (int64_t in : {block == 1 ? int64_t{67} : block, block == 1 ? int64_t{1000} : block * 3}) {
      for (int64_t out : {1, 17, 64}) {
        for (int64_t tokens : {2, 9, 33}) {
          const uint32_t w_seed = seed++, bias_seed = seed++, x_seed = seed++;
          OpCase c = matmul_case({type, in, out, {{tokens, tokens != 9}}, w_seed, bias_seed, x_seed}, 1e-10, gemm_path);
          c.gemm = true;
          cases.push_back(std::move(c));
        }
      }
    }
  }
  OpCase one_token = matmul_case({GgmlType::Q4_K, 256, 8, {{1, false}}, 9, 0, 10}, 1e-10, gemm_path);
  one_token.gemm = false;
  cases.push_back(std::move(one_token));
  // OpenCL's int8 fast path: exact (to float rounding) against the reference on the same int8-rounded
  // activations; its error against float activations is OpenClTest.Int8FastPathStaysWithin...
  seed = 700;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (int64_t in : {32, 96, 1024}) {
      for (int64_t out : {1, 5, 17}) {
        for (int64_t tokens : {1, 3, 9, 17}) {
          const uint32_t w_seed = seed++, bias_seed = seed++, x_seed = seed++;
          cases.push_back(matmul_case({type, in, out, {{tokens, tokens % 2 == 1}}, w_seed, bias_seed, x_seed}, 1e-10,
                                      [](const Variant& v) { return is(v, "opencl_int8"); }));
        }
      }
    }
  }
  return cases;
}

// ---- Element-wise ops and copies -----------------------------------------------------------------

// The shapes of the element-wise ops: [rows, cols] with the seeds of the operands and the scale of
// the first.
struct ElementwiseShape {
  int64_t rows, cols;
  uint32_t seed_a, seed_b;
  float scale_a;
};

std::vector<ElementwiseShape> elementwise_shapes() {
  std::vector<ElementwiseShape> shapes;
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t cols : {8, 72, 3000}) shapes.push_back({rows, cols, 1u, 2u, 1.0f});
  }
  shapes.push_back({3, 101, 8u, 9u, 3.0f});
  return shapes;
}

std::vector<OpCase> swiglu_cases() {
  std::vector<OpCase> cases;
  for (const ElementwiseShape& s : elementwise_shapes()) {
    cases.push_back({shape_name(s.rows, s.cols), "swiglu in place [" + shape_name(s.rows, s.cols) + "]", 1e-12,
                     [s](OpRun& r) {
                       const size_t n = static_cast<size_t>(s.rows * s.cols);
                       auto gate = r.input(s.rows, s.cols, r.random(n, s.seed_a, s.scale_a));  // [rows, cols]
                       auto up = r.input(s.rows, s.cols, r.random(n, s.seed_b));               // [rows, cols]
                       r.op([&] { r.b.swiglu(*gate, *up, *gate); });  // out aliases gate, as in the layer
                       r.output(*gate);
                     }});
  }
  return cases;
}

std::vector<OpCase> add_cases() {
  std::vector<OpCase> cases;
  for (const ElementwiseShape& s : elementwise_shapes()) {
    cases.push_back({shape_name(s.rows, s.cols), "x += y [" + shape_name(s.rows, s.cols) + "]", 1e-12, [s](OpRun& r) {
                       const size_t n = static_cast<size_t>(s.rows * s.cols);
                       auto x = r.input(s.rows, s.cols, r.random(n, s.seed_a, s.scale_a));  // [rows, cols]
                       auto y = r.input(s.rows, s.cols, r.random(n, s.seed_b));             // [rows, cols]
                       r.op([&] { r.b.add(*x, *y); });
                       r.output(*x);
                     }});
  }
  return cases;
}

// A copy: the outputs must be equal. Rows 0..rows-1 of src into rows 1..rows of a destination of
// rows + 2 rows (the others keep their 0.5), and the last two rows of 3 into a 2-row destination.
std::vector<OpCase> copy_rows_cases() {
  std::vector<OpCase> cases;
  for (const ElementwiseShape& s : elementwise_shapes()) {
    const bool tail = s.cols == 101;
    const int64_t src_row = tail ? 1 : 0, dst_row = tail ? 0 : 1, n = tail ? 2 : s.rows;
    const int64_t dst_rows = tail ? 2 : s.rows + 2;
    OpCase c{shape_name(s.rows, s.cols) + "_src" + std::to_string(src_row) + "_to" + std::to_string(dst_row) + "_n" +
                 std::to_string(n),
             "copy_rows: " + std::to_string(n) + " rows from row " + std::to_string(src_row) + " of [" +
                 shape_name(s.rows, s.cols) + "] to row " + std::to_string(dst_row) + " of [" +
                 shape_name(dst_rows, s.cols) + "]",
             1e-12, nullptr};
    c.max_abs = 0.0f;
    c.run = [=](OpRun& r) {
      auto src = r.input(s.rows, s.cols, r.random(static_cast<size_t>(s.rows * s.cols), s.seed_a, s.scale_a));
      auto dst = r.input(dst_rows, s.cols, std::vector<float>(static_cast<size_t>(dst_rows * s.cols), 0.5f));
      r.op([&] { r.b.copy_rows(*src, src_row, *dst, dst_row, n); });
      r.output(*dst);
    };
    cases.push_back(std::move(c));
  }
  return cases;
}

// ---- Norm, rope, embedding lookup ----------------------------------------------------------------

// In place, as the forward pass does for q/k: x [rows, cols] normed per group of `group` columns (a
// whole row, or each head) by weight [group].
OpCase rms_norm_case(int64_t rows, int64_t cols, int64_t group, uint32_t x_seed, float x_scale, uint32_t w_seed,
                     float w_offset, double nmse) {
  OpCase c{shape_name(rows, cols) + "_group" + std::to_string(group),
           "rms_norm in place [" + shape_name(rows, cols) + "] per " + std::to_string(group) + " columns", nmse,
           nullptr};
  c.run = [=](OpRun& r) {
    const auto w = r.weight(r.tensor(GgmlType::F32, group, 0, w_seed, w_offset));
    auto x = r.input(rows, cols, r.random(static_cast<size_t>(rows * cols), x_seed, x_scale));
    r.op([&] { r.b.rms_norm(*x, *w, 1e-6f, *x); });
    r.output(*x);
  };
  return c;
}

std::vector<OpCase> rms_norm_cases() {
  std::vector<OpCase> cases;
  for (int64_t rows : {1, 4, 17}) {
    for (auto [cols, group] : {std::pair<int64_t, int64_t>{1, 1}, {100, 100}, {1000, 1000}, {96, 32}, {257, 257}}) {
      cases.push_back(rms_norm_case(rows, cols, group, 3, 2.0f, 4, 1.0f, 1e-12));
    }
  }
  // 3 heads of 24: whole rows and per head, weights N(0, 1).
  for (int64_t rows : {1, 5, 17}) {
    cases.push_back(rms_norm_case(rows, 72, 72, 3, 1.0f, 5, 0.0f, 1e-11));
    cases.push_back(rms_norm_case(rows, 72, 24, 3, 1.0f, 6, 0.0f, 1e-11));
  }
  return cases;
}

// x [rows, heads * head_dim] rotated in place, row t at position pos0 + t, freq_base 1e6.
OpCase rope_case(int64_t rows, int64_t heads, int64_t head_dim, int64_t pos0, uint32_t seed, double nmse) {
  const int64_t cols = heads * head_dim;
  OpCase c{std::to_string(rows) + "x" + std::to_string(heads) + "x" + std::to_string(head_dim) + "_pos" +
               std::to_string(pos0),
           "rope [" + std::to_string(rows) + ", " + std::to_string(heads) + " heads x " + std::to_string(head_dim) +
               "] from position " + std::to_string(pos0),
           nmse, nullptr};
  c.run = [=](OpRun& r) {
    auto x = r.input(rows, cols, r.random(static_cast<size_t>(rows * cols), seed));
    r.op([&] { r.b.rope(*x, heads, head_dim, pos0, 1000000.0f); });
    r.output(*x);
  };
  return c;
}

std::vector<OpCase> rope_cases() {
  std::vector<OpCase> cases;
  for (auto [heads, head_dim, pos0] : {std::tuple<int64_t, int64_t, int64_t>{1, 2, 0}, {4, 64, 3}, {3, 128, 4000}}) {
    cases.push_back(rope_case(5, heads, head_dim, pos0, 5, 1e-10));
  }
  for (int64_t rows : {1, 5, 17}) cases.push_back(rope_case(rows, 3, 24, 1000, 3, 1e-11));
  return cases;
}

// out [tokens, in] = rows of a table [in, vocab], dequantized.
OpCase get_rows_case(GgmlType type, int64_t in, int64_t vocab, uint32_t seed, std::vector<int32_t> tokens,
                     std::optional<float> max_abs) {
  OpCase c{type_name(type) + "_" + std::to_string(in) + "x" + std::to_string(vocab) + "_rows" +
               std::to_string(tokens.size()),
           "get_rows of " + std::to_string(tokens.size()) + " tokens from a " + type_name(type) + " table [" +
               std::to_string(in) + ", " + std::to_string(vocab) + "]",
           1e-12, nullptr};
  c.max_abs = max_abs;
  c.run = [=](OpRun& r) {
    const auto table = r.weight(r.tensor(type, in, vocab, seed, 0.0f, "token_embd"));
    auto out = r.b.new_activation(static_cast<int64_t>(tokens.size()), in);
    r.op([&] { r.b.get_rows(*table, tokens, *out); });
    r.output(*out);
  };
  return c;
}

std::vector<OpCase> get_rows_cases() {
  std::vector<OpCase> cases;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    cases.push_back(get_rows_case(type, block == 1 ? 37 : block * 3, 11, 7, {3, 0, 10, 3, 7}, std::nullopt));
  }
  // The CPU's embedding types at a model-like width: equal to the reference.
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_K, GgmlType::Q8_0}) {
    for (int64_t rows : {1, 5, 17}) {
      std::vector<int32_t> tokens;
      for (int64_t t = 0; t < rows; ++t) tokens.push_back(static_cast<int32_t>((t * 7) % 40));
      cases.push_back(get_rows_case(type, 256, 40, 8, tokens, 0.0f));
    }
  }
  return cases;
}

// ---- KV cache and attention ----------------------------------------------------------------------

std::string heads_name(const AttentionShape& s) {
  return "h" + std::to_string(s.n_head) + "_kv" + std::to_string(s.n_head_kv) + "_d" + std::to_string(s.head_dim);
}
std::string heads_what(const AttentionShape& s) {
  return std::to_string(s.n_head) + "/" + std::to_string(s.n_head_kv) + " heads of " + std::to_string(s.head_dim);
}

// The AVX2 attention sequence: prompt chunks from position 0, then decode steps that cross key tile
// boundaries, for GQA 3:1 with head_dim 32 (an odd number of query vectors per kv head and query
// tile); Qwen3's 2:1 with head_dim 128; no grouping with head_dim 24 and 12 (dimensions that are not
// a multiple of the 32-wide value chunks, or of a vector). KV rows are whole Q8_0 blocks in every
// case. Chunk i holds rows [pos_i, pos_i + n_i) with q, k, v seeded by pos_i.
const AttentionShape kChunkedShapes[] = {{6, 2, 32}, {4, 2, 128}, {4, 4, 24}, {8, 8, 12}};
const int64_t kChunks[] = {17, 60, 1, 1, 70, 1};
constexpr int64_t kChunkedContext = 160;

int64_t chunk_pos(size_t chunk) {
  int64_t pos = 0;
  for (size_t i = 0; i < chunk; ++i) pos += kChunks[i];
  return pos;
}

// Chunk `chunk`'s queries [n, n_head * head_dim], keys and values [n, n_head_kv * head_dim].
const std::vector<float>& chunk_q(OpRun& r, const AttentionShape& s, size_t chunk) {
  return r.random(static_cast<size_t>(kChunks[chunk] * s.n_head * s.head_dim), static_cast<uint32_t>(chunk_pos(chunk)),
                  2.0f);
}
const std::vector<float>& chunk_k(OpRun& r, const AttentionShape& s, size_t chunk) {
  return r.random(static_cast<size_t>(kChunks[chunk] * s.n_head_kv * s.head_dim),
                  static_cast<uint32_t>(chunk_pos(chunk)) + 1, 2.0f);
}
const std::vector<float>& chunk_v(OpRun& r, const AttentionShape& s, size_t chunk) {
  return r.random(static_cast<size_t>(kChunks[chunk] * s.n_head_kv * s.head_dim),
                  static_cast<uint32_t>(chunk_pos(chunk)) + 2);
}

std::string attention_config(GgmlType kv, const AttentionShape& s, int64_t pos0, int64_t n) {
  return type_name(kv) + "_" + heads_name(s) + "_pos" + std::to_string(pos0) + "_rows" + std::to_string(n);
}

std::vector<OpCase> attention_cases() {
  std::vector<OpCase> cases;
  const auto what = [](GgmlType kv, const AttentionShape& s, int64_t pos0, int64_t n) {
    return "attention of " + std::to_string(n) + " queries from position " + std::to_string(pos0) + ", " +
           heads_what(s) + ", " + type_name(kv) + " cache";
  };
  // AVX2: over a cache filled by one store_kv of every chunk up to this one (StoreKv checks the
  // chunked stores), the queries of the chunk at its position.
  for (const AttentionShape& s : kChunkedShapes) {
    for (GgmlType kv : {GgmlType::F16, GgmlType::F32, GgmlType::Q8_0}) {
      for (size_t chunk = 0; chunk < std::size(kChunks); ++chunk) {
        const int64_t pos0 = chunk_pos(chunk), n = kChunks[chunk];
        OpCase c{attention_config(kv, s, pos0, n), what(kv, s, pos0, n), 1e-11, nullptr, avx2_backend};
        c.run = [=](OpRun& r) {
          const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim;
          std::vector<float> keys, values;  // [pos0 + n, kv_width] each
          for (size_t i = 0; i <= chunk; ++i) {
            keys.insert(keys.end(), chunk_k(r, s, i).begin(), chunk_k(r, s, i).end());
            values.insert(values.end(), chunk_v(r, s, i).begin(), chunk_v(r, s, i).end());
          }
          auto cache = r.b.new_kv_cache(kChunkedContext, s.n_head_kv, s.head_dim, kv);
          auto k = r.input(pos0 + n, kv_width, keys), v = r.input(pos0 + n, kv_width, values);
          r.b.store_kv(*cache, *k, *v, 0);
          auto q = r.input(n, q_width, chunk_q(r, s, chunk));  // [n, q_width]
          auto out = r.b.new_activation(n, q_width);
          r.op([&] { r.b.attention(*q, *cache, pos0, s, *out); });
          r.output(*out);
        };
        cases.push_back(std::move(c));
      }
    }
  }
  // OpenCL: store_kv of a long history, then attention for prefill rows (causal) and a decode row far
  // into the context (which the backend splits over the keys), for every cache type and GQA ratio.
  for (GgmlType kv : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    for (const AttentionShape s : {AttentionShape{4, 4, 32}, AttentionShape{8, 2, 64}, AttentionShape{2, 1, 128}}) {
      for (auto [history, n_q] : {std::pair<int64_t, int64_t>{0, 7}, {5, 3}, {1400, 1}, {1100, 9}}) {
        OpCase c{attention_config(kv, s, history, n_q), what(kv, s, history, n_q), kv == GgmlType::Q8_0 ? 1e-6 : 1e-10,
                 nullptr, opencl_backend};
        c.run = [=](OpRun& r) {
          const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim, n_keys = history + n_q;
          auto cache = r.b.new_kv_cache(1500, s.n_head_kv, s.head_dim, kv);
          auto k = r.input(n_keys, kv_width, r.random(static_cast<size_t>(n_keys * kv_width), 10));  // [n_keys, kv_width]
          auto v = r.input(n_keys, kv_width, r.random(static_cast<size_t>(n_keys * kv_width), 11));  // [n_keys, kv_width]
          r.b.store_kv(*cache, *k, *v, 0);
          auto q = r.input(n_q, q_width, r.random(static_cast<size_t>(n_q * q_width), 12));  // [n_q, q_width]
          auto out = r.b.new_activation(n_q, q_width);
          r.op([&] { r.b.attention(*q, *cache, history, s, *out); });
          r.output(*out);
        };
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// AVX2: store_kv of one chunk at its position into a cache holding the chunks before it (stored the
// same way); a cache cannot be read back, so it is compared through attention of that chunk's
// queries.
std::vector<OpCase> store_kv_cases() {
  std::vector<OpCase> cases;
  for (const AttentionShape& s : kChunkedShapes) {
    for (GgmlType kv : {GgmlType::F16, GgmlType::F32, GgmlType::Q8_0}) {
      for (size_t chunk = 0; chunk < std::size(kChunks); ++chunk) {
        const int64_t pos0 = chunk_pos(chunk), n = kChunks[chunk];
        OpCase c{attention_config(kv, s, pos0, n),
                 "store_kv of " + std::to_string(n) + " rows at position " + std::to_string(pos0) + ", " +
                     heads_what(s) + ", " + type_name(kv) + " cache (read by attention)",
                 1e-11, nullptr, avx2_backend};
        c.run = [=](OpRun& r) {
          const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim;
          auto cache = r.b.new_kv_cache(kChunkedContext, s.n_head_kv, s.head_dim, kv);
          for (size_t i = 0; i <= chunk; ++i) {
            auto k = r.input(kChunks[i], kv_width, chunk_k(r, s, i));  // [n_i, kv_width]
            auto v = r.input(kChunks[i], kv_width, chunk_v(r, s, i));  // [n_i, kv_width]
            if (i < chunk) {
              r.b.store_kv(*cache, *k, *v, chunk_pos(i));
            } else {
              r.op([&] { r.b.store_kv(*cache, *k, *v, pos0); });
            }
          }
          auto q = r.input(n, q_width, chunk_q(r, s, chunk));  // [n, q_width]
          auto out = r.b.new_activation(n, q_width);
          r.b.attention(*q, *cache, pos0, s, *out);
          r.output(*out);
        };
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// ---- Fused ops (the OpenCL backend overrides them with kernels/fused.cl for one-row batches) -----

// h = rms_norm(x) * g; q, k, v = W · h (+ b): odd heights, v of another type; one launch for a
// decode row.
std::vector<OpCase> norm_matmul_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 200;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 67 : block * 3;
    const uint32_t first = seed;  // wq, wk, wv, bq, bk, bv, norm
    seed += 7;
    for (int64_t rows : {1, 3}) {
      for (bool with_bias : {false, true}) {
        const uint32_t x_seed = seed++;
        OpCase c{type_name(type) + "_" + std::to_string(in) + "x17_5_3_rows" + std::to_string(rows) +
                     (with_bias ? "_bias" : ""),
                 "norm_matmul: rms_norm of [" + shape_name(rows, in) + "], then " + type_name(type) + " q [" +
                     std::to_string(in) + ", 17], k [" + std::to_string(in) + ", 5], " + type_name(other_type(type)) +
                     " v [" + std::to_string(in) + ", 3]" + (with_bias ? " with biases" : ""),
                 1e-10, nullptr, opencl_backend};
        if (rows == 1) c.launches = 1;
        c.run = [=](OpRun& r) {
          const auto q = r.weight(r.tensor(type, in, 17, first)), k = r.weight(r.tensor(type, in, 5, first + 1));
          const auto v = r.weight(r.tensor(other_type(type), in, 3, first + 2));
          const auto qb = r.weight(r.tensor(GgmlType::F32, 17, 0, first + 3));
          const auto kb = r.weight(r.tensor(GgmlType::F32, 5, 0, first + 4));
          const auto vb = r.weight(r.tensor(GgmlType::F32, 3, 0, first + 5));
          const auto g = r.weight(r.tensor(GgmlType::F32, in, 0, first + 6, 1.0f));
          auto x = r.input(rows, in, r.random(static_cast<size_t>(rows * in), x_seed, 2.0f));  // [rows, in]
          auto h = r.b.new_activation(rows, in);
          auto yq = r.b.new_activation(rows, 17), yk = r.b.new_activation(rows, 5), yv = r.b.new_activation(rows, 3);
          const Product products[] = {{q.get(), with_bias ? qb.get() : nullptr, yq.get()},
                                      {k.get(), with_bias ? kb.get() : nullptr, yk.get()},
                                      {v.get(), with_bias ? vb.get() : nullptr, yv.get()}};
          r.op([&] { r.b.norm_matmul(*x, *g, 1e-6f, *h, products); });
          for (const Activation* y : {yq.get(), yk.get(), yv.get()}) r.output(*y);
        };
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// x += W · a (the residual add in the product); one launch for a decode row.
std::vector<OpCase> matmul_add_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 300;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 45 : block * 2, out = 19;
    const uint32_t w_seed = seed++;
    for (int64_t rows : {1, 3}) {
      const uint32_t a_seed = seed++, x_seed = seed++;
      OpCase c{type_name(type) + "_" + std::to_string(in) + "x" + std::to_string(out) + "_rows" + std::to_string(rows),
               "matmul_add: x [" + shape_name(rows, out) + "] += " + type_name(type) + " W [" + std::to_string(in) +
                   ", " + std::to_string(out) + "] · a [" + shape_name(rows, in) + "]",
               1e-10, nullptr, opencl_backend};
      if (rows == 1) c.launches = 1;
      c.run = [=](OpRun& r) {
        const auto w = r.weight(r.tensor(type, in, out, w_seed));
        auto a = r.input(rows, in, r.random(static_cast<size_t>(rows * in), a_seed));          // [rows, in]
        auto x = r.input(rows, out, r.random(static_cast<size_t>(rows * out), x_seed, 3.0f));  // [rows, out]
        auto scratch = r.b.new_activation(rows, out);
        r.op([&] { r.b.matmul_add(*w, *a, *x, *scratch); });
        r.output(*x);
      };
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

// out = silu(W_gate · h) * (W_up · h), h = rms_norm(x) * g: one launch for a decode row with gate and
// up of one type; mixed types take the unfused path and agree too.
std::vector<OpCase> norm_swiglu_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 400;
  for (GgmlType type : kWeightTypes) {
    const int64_t block = type_traits(type).block_size;
    const int64_t in = block == 1 ? 53 : block * 2, n_ff = 23;
    for (bool mixed : {false, true}) {
      const GgmlType up_type = mixed ? other_type(type) : type;
      const uint32_t gate_seed = seed++, up_seed = seed++, norm_seed = seed++;
      for (int64_t rows : {1, 3}) {
        const uint32_t x_seed = seed++;
        OpCase c{type_name(type) + (mixed ? "_" + type_name(up_type) : "") + "_" + std::to_string(in) + "x" +
                     std::to_string(n_ff) + "_rows" + std::to_string(rows),
                 "norm_swiglu: rms_norm of [" + shape_name(rows, in) + "], gate " + type_name(type) + " and up " +
                     type_name(up_type) + " [" + std::to_string(in) + ", " + std::to_string(n_ff) + "]",
                 1e-10, nullptr, opencl_backend};
        if (rows == 1 && !mixed) c.launches = 1;
        c.run = [=](OpRun& r) {
          const auto g = r.weight(r.tensor(type, in, n_ff, gate_seed)), u = r.weight(r.tensor(up_type, in, n_ff, up_seed));
          const auto norm = r.weight(r.tensor(GgmlType::F32, in, 0, norm_seed, 1.0f));
          auto x = r.input(rows, in, r.random(static_cast<size_t>(rows * in), x_seed, 2.0f));  // [rows, in]
          auto h = r.b.new_activation(rows, in);
          auto up = r.b.new_activation(rows, n_ff), out = r.b.new_activation(rows, n_ff);
          r.op([&] { r.b.norm_swiglu(*x, *norm, 1e-6f, *g, *u, *h, *up, *out); });
          r.output(*out);
        };
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// Per-head q/k norm (or none, qwen2) + rope + KV store in one launch, for every cache type, GQA ratio
// and batch; compared through q, k and attention over the written cache (Q8_0 with heads narrower
// than a block takes the unfused path).
std::vector<OpCase> rope_store_kv_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 500;
  for (GgmlType kv : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    for (const AttentionShape s : {AttentionShape{3, 1, 32}, AttentionShape{4, 2, 64}, AttentionShape{2, 2, 6},
                                   AttentionShape{4, 2, 16}, AttentionShape{2, 1, 128}}) {
      const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim;
      if (kv == GgmlType::Q8_0 && kv_width % 32 != 0) continue;
      const bool fused = kv != GgmlType::Q8_0 || s.head_dim % 32 == 0;
      for (bool with_norms : {true, false}) {
        for (auto [pos0, rows] : {std::pair<int64_t, int64_t>{0, 1}, {5, 1}, {7, 3}, {300, 1}}) {
          const uint32_t first = seed;  // q_norm, k_norm, history k, history v, q, k, v
          seed += 7;
          OpCase c{type_name(kv) + "_" + heads_name(s) + (with_norms ? "_norms" : "") + "_pos" + std::to_string(pos0) +
                       "_rows" + std::to_string(rows),
                   "rope_store_kv of " + std::to_string(rows) + " rows at position " + std::to_string(pos0) + ", " +
                       heads_what(s) + ", " + type_name(kv) + " cache" + (with_norms ? ", q/k norms" : "") +
                       " (q, k and attention over the cache compared)",
                   kv == GgmlType::Q8_0 ? 1e-6 : 1e-10, nullptr, opencl_backend};
          if (fused) c.launches = 1;
          c.run = [=](OpRun& r) {
            const auto qn = r.weight(r.tensor(GgmlType::F32, s.head_dim, 0, first, 1.0f));
            const auto kn = r.weight(r.tensor(GgmlType::F32, s.head_dim, 0, first + 1, 1.0f));
            auto cache = r.b.new_kv_cache(512, s.n_head_kv, s.head_dim, kv);
            if (pos0 > 0) {
              auto hk = r.input(pos0, kv_width, r.random(static_cast<size_t>(pos0 * kv_width), first + 2));
              auto hv = r.input(pos0, kv_width, r.random(static_cast<size_t>(pos0 * kv_width), first + 3));
              r.b.store_kv(*cache, *hk, *hv, 0);
            }
            auto q = r.input(rows, q_width, r.random(static_cast<size_t>(rows * q_width), first + 4, 2.0f));
            auto k = r.input(rows, kv_width, r.random(static_cast<size_t>(rows * kv_width), first + 5, 2.0f));
            auto v = r.input(rows, kv_width, r.random(static_cast<size_t>(rows * kv_width), first + 6));
            r.op([&] {
              r.b.rope_store_kv(*q, *k, *v, with_norms ? qn.get() : nullptr, with_norms ? kn.get() : nullptr, 1e-6f,
                                *cache, pos0, s, 1000000.0f);
            });
            auto out = r.b.new_activation(rows, q_width);
            r.b.attention(*q, *cache, pos0, s, *out);
            for (const Activation* a : {q.get(), k.get(), out.get()}) r.output(*a);
          };
          cases.push_back(std::move(c));
        }
      }
    }
  }
  return cases;
}

// ---- Paged KV cache (several sequences in one batch, block tables over a shared pool) ------------

// A batch's sequences: each run of rows at its position, and the history before it (positions 0 ..
// pos0 - 1, stored by an earlier batch).
struct PagedRun {
  int64_t pos0, n_rows;
};

// A layout of runs over a pool of pages of kPageSize rows. Block tables take the pool's pages in the
// scattered, non-monotonic order (i * stride + offset) % n_pages (stride odd, so every page once), run
// after run.
struct PagedLayout {
  const char* name;
  std::vector<PagedRun> runs;
  int64_t n_pages;  // pool [n_pages * kPageSize] rows
  int64_t stride, offset;
};

constexpr int64_t kPageSize = 16;

// A prompt chunk at position 0, a decode row at 37 and a chunk at 70 (the batch of mixed steps), and two
// decode rows far apart (OpenCL splits every row's keys by the largest position; the short row's later
// splits stay empty).
const PagedLayout kPagedLayouts[] = {
    {"mixed", {{0, 5}, {37, 1}, {70, 3}}, 16, 7, 3},
    {"decode2", {{5, 1}, {637, 1}}, 64, 37, 5},
};

// Each run's block table (pages for positions 0 .. pos0 + n_rows - 1).
std::vector<std::vector<int32_t>> paged_tables(const PagedLayout& layout) {
  std::vector<std::vector<int32_t>> tables;
  int64_t next = 0;
  for (const PagedRun& run : layout.runs) {
    std::vector<int32_t>& table = tables.emplace_back();
    for (int64_t p = 0; p < run.pos0 + run.n_rows; p += kPageSize) {
      table.push_back(static_cast<int32_t>((next++ * layout.stride + layout.offset) % layout.n_pages));
    }
  }
  return tables;
}

// The batch of the layout's runs (step), or of their histories (the runs with pos0 > 0).
KvBatch paged_batch(const PagedLayout& layout, bool history) {
  const std::vector<std::vector<int32_t>> tables = paged_tables(layout);
  KvBatch batch;
  batch.page_size = kPageSize;
  for (size_t i = 0; i < layout.runs.size(); ++i) {
    const PagedRun& run = layout.runs[i];
    if (!history) {
      batch.add_run(run.pos0, run.n_rows, tables[i]);
    } else if (run.pos0 > 0) {
      batch.add_run(0, run.pos0, tables[i]);
    }
  }
  batch.finish();
  return batch;
}

std::string paged_what(const PagedLayout& layout) {
  std::string what;
  for (const PagedRun& run : layout.runs) {
    what += (what.empty() ? "" : ", ") + std::to_string(run.n_rows) + " rows at " + std::to_string(run.pos0);
  }
  return "runs of " + what + " over scattered pages of " + std::to_string(kPageSize) + " rows (pool of " +
         std::to_string(layout.n_pages) + ")";
}

// Rope of a batch of several sequences: row t at positions[t].
std::vector<OpCase> paged_rope_cases() {
  std::vector<OpCase> cases;
  for (const PagedLayout& layout : kPagedLayouts) {
    for (auto [heads, head_dim] : {std::pair<int64_t, int64_t>{4, 64}, {3, 128}}) {
      OpCase c{std::string(layout.name) + "_" + std::to_string(heads) + "x" + std::to_string(head_dim),
               "rope of " + std::to_string(heads) + " heads of " + std::to_string(head_dim) + ", " + paged_what(layout),
               1e-10, nullptr};
      c.run = [=, &layout](OpRun& r) {
        const KvBatch batch = paged_batch(layout, false);
        const int64_t rows = batch.rows(), cols = heads * head_dim;
        auto x = r.input(rows, cols, r.random(static_cast<size_t>(rows * cols), 20));  // [rows, cols]
        r.op([&] { r.b.rope(*x, heads, head_dim, batch, 1000000.0f); });
        r.output(*x);
      };
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

// The histories stored by one batch, then the step's rows stored through the step batch (store_kv, or
// rope_store_kv with q/k norms) and attended: each row over its own sequence's pages. Every cache type;
// compared through the attention output (and q, k of rope_store_kv).
std::vector<OpCase> paged_attention_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 800;
  for (const PagedLayout& layout : kPagedLayouts) {
    for (GgmlType kv : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
      for (const AttentionShape s : {AttentionShape{4, 2, 32}, AttentionShape{2, 1, 128}}) {
        for (bool fused : {false, true}) {
          const uint32_t first = seed;  // history k, history v, q, k, v, q_norm, k_norm
          seed += 7;
          OpCase c{std::string(layout.name) + "_" + type_name(kv) + "_" + heads_name(s) +
                       (fused ? "_rope_store_kv" : "_store_kv"),
                   std::string(fused ? "rope_store_kv (q/k norms)" : "store_kv") + " and attention, " +
                       heads_what(s) + ", " + type_name(kv) + " cache, " + paged_what(layout),
                   kv == GgmlType::Q8_0 ? 1e-6 : 1e-10, nullptr};
          c.run = [=, &layout](OpRun& r) {
            const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim;
            const KvBatch history = paged_batch(layout, true), step = paged_batch(layout, false);
            const int64_t n_hist = history.rows(), n = step.rows();
            auto cache = r.b.new_kv_cache(layout.n_pages * kPageSize, s.n_head_kv, s.head_dim, kv);
            auto hk = r.input(n_hist, kv_width, r.random(static_cast<size_t>(n_hist * kv_width), first, 2.0f));
            auto hv = r.input(n_hist, kv_width, r.random(static_cast<size_t>(n_hist * kv_width), first + 1));
            r.b.store_kv(*cache, *hk, *hv, history);
            auto q = r.input(n, q_width, r.random(static_cast<size_t>(n * q_width), first + 2, 2.0f));   // [n, q_width]
            auto k = r.input(n, kv_width, r.random(static_cast<size_t>(n * kv_width), first + 3, 2.0f)); // [n, kv_width]
            auto v = r.input(n, kv_width, r.random(static_cast<size_t>(n * kv_width), first + 4));       // [n, kv_width]
            const auto qn = r.weight(r.tensor(GgmlType::F32, s.head_dim, 0, first + 5, 1.0f));
            const auto kn = r.weight(r.tensor(GgmlType::F32, s.head_dim, 0, first + 6, 1.0f));
            auto out = r.b.new_activation(n, q_width);
            r.op([&] {
              if (fused) {
                r.b.rope_store_kv(*q, *k, *v, qn.get(), kn.get(), 1e-6f, *cache, step, s, 1000000.0f);
              } else {
                r.b.store_kv(*cache, *k, *v, step);
              }
              r.b.attention(*q, *cache, step, s, *out);
            });
            if (fused) {
              r.output(*q);
              r.output(*k);
            }
            r.output(*out);
          };
          cases.push_back(std::move(c));
        }
      }
    }
  }
  return cases;
}

// Raw cache rows: the read bytes must equal the written ones (the outputs are bytes, compared for
// equality). "overwrite": rows 0..15 written, then rows 5..7 again with other bytes, then rows 0..15 and
// 6..8 read. "moved": a sequence stored through its block table, one of its pages read out raw, written
// into a free page and zeroed, and attention through the table naming the new page (compared as
// attention).
std::vector<OpCase> kv_rows_cases() {
  std::vector<OpCase> cases;
  const AttentionShape s{4, 2, 32};
  for (GgmlType kv : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    OpCase overwrite{type_name(kv) + "_overwrite",
                     "write_kv_rows of 16 rows, then of rows 5..7, read_kv_rows of 0..15 and 6..8, " + type_name(kv) +
                         " cache",
                     1e-12, nullptr};
    overwrite.max_abs = 0.0f;
    overwrite.run = [=](OpRun& r) {
      auto cache = r.b.new_kv_cache(16, s.n_head_kv, s.head_dim, kv);
      const size_t row = row_bytes(kv, s.n_head_kv * s.head_dim);
      // n rows of bytes from seed, as the values' low bits.
      const auto bytes = [&](int64_t n, uint32_t seed) {
        std::vector<uint8_t> b;
        for (const float x : r.random(static_cast<size_t>(n) * row, seed)) {
          b.push_back(static_cast<uint8_t>(static_cast<int>(std::fabs(x) * 1000.0f) & 255));
        }
        return b;
      };
      std::vector<uint8_t> k_all(16 * row), v_all(16 * row), k_part(3 * row), v_part(3 * row);
      r.op([&] {
        r.b.write_kv_rows(*cache, 0, 16, bytes(16, 30), bytes(16, 31));
        r.b.write_kv_rows(*cache, 5, 3, bytes(3, 32), bytes(3, 33));
        r.b.read_kv_rows(*cache, 0, 16, k_all, v_all);
        r.b.read_kv_rows(*cache, 6, 3, k_part, v_part);
      });
      for (const std::vector<uint8_t>* b : {&k_all, &v_all, &k_part, &v_part}) r.out.insert(r.out.end(), b->begin(), b->end());
    };
    cases.push_back(std::move(overwrite));

    OpCase moved{type_name(kv) + "_moved",
                 "store_kv of 40 positions through pages {2, 0, 3}, page 0 moved to page 5 by read_kv_rows and "
                 "write_kv_rows and then zeroed, attention of the last 3 through {2, 5, 3}, " +
                     type_name(kv) + " cache",
                 kv == GgmlType::Q8_0 ? 1e-6 : 1e-10, nullptr};
    moved.run = [=](OpRun& r) {
      const int64_t kv_width = s.n_head_kv * s.head_dim, q_width = s.n_head * s.head_dim, n = 40;
      auto cache = r.b.new_kv_cache(6 * kPageSize, s.n_head_kv, s.head_dim, kv);
      const std::vector<int32_t> before = {2, 0, 3}, after = {2, 5, 3};
      KvBatch store;
      store.page_size = kPageSize;
      store.add_run(0, n, before);
      store.finish();
      auto k = r.input(n, kv_width, r.random(static_cast<size_t>(n * kv_width), 40, 2.0f));  // [n, kv_width]
      auto v = r.input(n, kv_width, r.random(static_cast<size_t>(n * kv_width), 41));        // [n, kv_width]
      r.b.store_kv(*cache, *k, *v, store);
      const size_t page_bytes = static_cast<size_t>(kPageSize) * row_bytes(kv, kv_width);
      std::vector<uint8_t> k_page(page_bytes), v_page(page_bytes), zeros(page_bytes);
      KvBatch attend;
      attend.page_size = kPageSize;
      attend.add_run(n - 3, 3, after);
      attend.finish();
      auto q = r.input(3, q_width, r.random(static_cast<size_t>(3 * q_width), 42, 2.0f));  // [3, q_width]
      auto out = r.b.new_activation(3, q_width);
      r.op([&] {
        r.b.read_kv_rows(*cache, 0 * kPageSize, kPageSize, k_page, v_page);
        r.b.write_kv_rows(*cache, 5 * kPageSize, kPageSize, k_page, v_page);
        r.b.write_kv_rows(*cache, 0, kPageSize, zeros, zeros);  // what reads the old page reads zeros
        r.b.attention(*q, *cache, attend, s, *out);
      });
      r.output(*out);
    };
    cases.push_back(std::move(moved));
  }
  return cases;
}

// ---- The op table --------------------------------------------------------------------------------

const Op kOps[] = {
    {"Matmul", matmul_cases},
    {"GetRows", get_rows_cases},
    {"RmsNorm", rms_norm_cases},
    {"Rope", rope_cases},
    {"Swiglu", swiglu_cases},
    {"Add", add_cases},
    {"CopyRows", copy_rows_cases},
    {"StoreKv", store_kv_cases},
    {"Attention", attention_cases},
    {"NormMatmul", norm_matmul_cases},
    {"MatmulAdd", matmul_add_cases},
    {"NormSwiglu", norm_swiglu_cases},
    {"RopeStoreKv", rope_store_kv_cases},
    {"PagedRope", paged_rope_cases},
    {"PagedAttention", paged_attention_cases},
    {"KvRows", kv_rows_cases},
};

// ---- The test ------------------------------------------------------------------------------------

class BackendOps : public ::testing::Test {
 public:
  BackendOps(const Variant* variant, std::shared_ptr<const OpCase> op_case)
      : variant_(variant), case_(std::move(op_case)) {}

  // The backends live for the suite: one per variant, made by its first case.
  static void TearDownTestSuite() {
    instances().clear();
    inputs_.reset();
    inputs_of_ = nullptr;
  }

  void TestBody() override {
    const Instance& inst = instance(*variant_);
    if (!inst.absent.empty()) GTEST_SKIP() << "backend not present: " << inst.absent;
    ASSERT_TRUE(inst.error.empty()) << inst.error;
    if (inputs_of_ != case_.get()) {  // inputs are kept while the same case runs on other variants
      inputs_ = std::make_unique<CaseInputs>();
      inputs_of_ = case_.get();
    }
    const bool int8_products = is(*variant_, "opencl_int8");
    OpRun got(*inst.backend, false, *inputs_, inst.cl);
    case_->run(got);
    std::optional<std::vector<float>>& want = inputs_->reference_out[int8_products];
    if (!want) {
      OpRun on_reference(reference(), int8_products, *inputs_, nullptr);
      case_->run(on_reference);
      want = std::move(on_reference.out);
    }
    ASSERT_FALSE(want->empty());
    ASSERT_EQ(got.out.size(), want->size());
    const double e = test::nmse(got.out, *want);
    char measured[32];
    std::snprintf(measured, sizeof measured, "%.3g", e);
    RecordProperty("nmse", measured);  // in --gtest_output=xml, to see how close cases come to their bounds
    EXPECT_LT(e, case_->nmse) << case_->what;
    if (case_->max_abs) {
      if (*case_->max_abs == 0.0f) {
        EXPECT_EQ(got.out, *want) << case_->what;
      } else {
        EXPECT_LE(test::max_abs_diff(got.out, *want), *case_->max_abs) << case_->what;
      }
    }
    if (got.counters && case_->launches) {
      EXPECT_EQ(got.counters->kernel_launches, *case_->launches) << case_->what;
    }
    if (got.counters && case_->gemm) {
      if (*case_->gemm) {
        EXPECT_GT(got.counters->gemm_calls, 0u) << "CLBlast was not used (or failed): " << case_->what;
      } else {
        EXPECT_EQ(got.counters->gemm_calls, 0u) << case_->what;
      }
    }
  }

 private:
  static inline std::unique_ptr<CaseInputs> inputs_;
  static inline const OpCase* inputs_of_ = nullptr;
  const Variant* variant_;
  std::shared_ptr<const OpCase> case_;
};

// Registers Ops/BackendOps.<op>/<variant>_<config> for every case and every variant it runs on, a
// case's variants one after another (at static initialization, as TEST does; whether a backend
// exists is asked when its first case runs).
bool register_backend_ops() {
  std::set<std::string> names;
  for (const Op& op : kOps) {
    for (OpCase& c : op.cases()) {
      auto shared = std::make_shared<const OpCase>(std::move(c));
      for (const Variant& v : kVariants) {
        if (!shared->runs_on(v)) continue;
        const std::string name = std::string(op.name) + "/" + v.name + "_" + shared->config;
        if (!names.insert(name).second) {
          std::fprintf(stderr, "test_backend_ops: two cases are named %s\n", name.c_str());
          std::abort();
        }
        ::testing::RegisterTest("Ops/BackendOps", name.c_str(), nullptr, shared->what.c_str(), __FILE__, __LINE__,
                                [&v, shared]() -> BackendOps* { return new BackendOps(&v, shared); });
      }
    }
  }
  return true;
}

[[maybe_unused]] const bool registered = register_backend_ops();

}  // namespace
}  // namespace xelm
