// test_backend_checks.cpp — the Backend interface checks every op once (runtime/backend.cpp): a
// mis-shaped call is an "internal: <op>: ..." error on every backend present, before any backend
// code runs (the backends themselves no longer check).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cpu_fallback/avx2/avx2_backend.h"
#include "cpu_fallback/ref/ref_backend.h"
#include "runtime/error.h"
#include "tests/backend_test_util.h"

namespace xelm {
namespace {

using test::TestTensor;
using ::testing::HasSubstr;

// Every backend this machine has: the reference, AVX2 and OpenCL when present.
std::vector<std::unique_ptr<Backend>> backends_present() {
  std::vector<std::unique_ptr<Backend>> list;
  list.push_back(cpu::make_reference_backend());
  if (test::has_avx2()) list.push_back(cpu::make_avx2_backend(1));
  if (test::has_opencl_device()) list.push_back(test::make_test_opencl_backend());
  return list;
}

// Runs `call` and expects the one-line interface error naming `op` and containing `detail`.
void expect_rejected(const Backend& b, const std::function<void()>& call, const std::string& op,
                     const std::string& detail) {
  try {
    call();
    ADD_FAILURE() << b.name() << ": " << op << " accepted a mis-shaped call";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("internal: " + op + ": ")) << b.name();
    EXPECT_THAT(e.what(), HasSubstr(detail)) << b.name();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << b.name() << ": not one line";
  }
}

TEST(BackendChecks, EveryOpRejectsMisshapedCallsOnEveryBackend) {
  const TestTensor w(GgmlType::Q8_0, 64, 16, 1);       // [in 64, out 16]
  const TestTensor norm(GgmlType::F32, 64, 0, 2, 1.0f);  // [64]
  const TestTensor head_norm(GgmlType::F32, 16, 0, 3, 1.0f);  // [16] (a head of 16)
  const TestTensor wrong_bias(GgmlType::F32, 15, 0, 4);  // [15] for 16 outputs
  for (const std::unique_ptr<Backend>& owned : backends_present()) {
    Backend& b = *owned;
    SCOPED_TRACE(b.name());
    const auto weight = b.prepare_weight(w.info), norm_w = b.prepare_weight(norm.info);
    const auto head_norm_w = b.prepare_weight(head_norm.info), bias = b.prepare_weight(wrong_bias.info);
    auto x = b.new_activation(2, 64), x3 = b.new_activation(3, 64), y = b.new_activation(2, 16);
    auto y_wide = b.new_activation(2, 17), h = b.new_activation(2, 64), odd = b.new_activation(2, 60);
    auto cache = b.new_kv_cache(8, 2, 16, GgmlType::F16);  // 8 positions of 2 kv heads × 16
    auto kv = b.new_activation(2, 32), kv_wide = b.new_activation(2, 48);
    auto q = b.new_activation(2, 64);                     // 4 query heads × 16
    const AttentionShape shape{4, 2, 16};
    std::vector<float> floats(7);
    const std::vector<int32_t> tokens = {3, 16};  // 16 is past the table's 16 rows
    // Paged batches over the cache's 2 pages of 4 rows: a block table naming page 2; a run at positions
    // 3..4 with a table of one page; one row for activations of two; pages of 3 rows.
    auto paged = [](int64_t pos0, int64_t n, std::vector<int32_t> table, int64_t page_size = 4) {
      KvBatch batch;
      batch.page_size = page_size;
      batch.add_run(pos0, n, table);
      batch.finish();
      return batch;
    };
    const KvBatch past_pool = paged(0, 2, {1, 2}), past_table = paged(3, 2, {1}), one_row = paged(0, 1, {0}),
                  pages_of_3 = paged(0, 2, {0}, 3);
    std::vector<uint8_t> bytes_128(128), bytes_64(64);  // 2 and 1 rows of 2 × 16 halves

    expect_rejected(b, [&] { b.write(*x, floats); }, "write", "7 floats into [2, 64]");
    expect_rejected(b, [&] { b.read(*x, floats); }, "read", "[2, 64] into 7 floats");
    expect_rejected(b, [&] { b.copy_rows(*x, 1, *h, 0, 2); }, "copy_rows", "2 rows from row 1");
    expect_rejected(b, [&] { b.copy_rows(*x, 0, *y, 0, 1); }, "copy_rows", "rows from row 0 of [2, 64]");
    expect_rejected(b, [&] { b.get_rows(*weight, tokens, *x); }, "get_rows", "row 16 of");
    expect_rejected(b, [&] { b.rms_norm(*x, *norm_w, 1e-6f, *x3); }, "rms_norm", "[2, 64] and [3, 64] differ");
    expect_rejected(b, [&] { b.rms_norm(*odd, *head_norm_w, 1e-6f, *odd); }, "rms_norm", "does not divide rows of 60");
    expect_rejected(b, [&] { b.matmul(*weight, *x, *y_wide, nullptr); }, "matmul", "-> y [2, 17]");
    expect_rejected(b, [&] { b.matmul(*weight, *x3, *y, nullptr); }, "matmul", "with x [3, 64]");
    expect_rejected(b, [&] { b.matmul(*weight, *x, *y, bias.get()); }, "matmul", "bias of 15 values");
    expect_rejected(b, [&] { b.rope(*q, 5, 16, 0, 10000.0f); }, "rope", "5 heads of 16 dims");
    expect_rejected(b, [&] { b.rope(*q, 4, 15, 0, 10000.0f); }, "rope", "4 heads of 15 dims");
    expect_rejected(b, [&] { b.rope(*q, 4, 16, one_row, 10000.0f); }, "rope", "a batch of 1 rows for [2, 64]");
    expect_rejected(b, [&] { b.store_kv(*cache, *kv_wide, *kv, 0); }, "store_kv", "for a cache of width 32");
    // Positions 7..8 from row 0 need rows 0..8 of one page, more than the cache's 8.
    expect_rejected(b, [&] { b.store_kv(*cache, *kv, *kv, 7); }, "store_kv",
                    "page 0 (rows 0..8) outside the cache's 8 rows");
    expect_rejected(b, [&] { b.store_kv(*cache, *kv, *kv, past_pool); }, "store_kv",
                    "page 2 (rows 8..11) outside the cache's 8 rows");
    expect_rejected(b, [&] { b.store_kv(*cache, *kv, *kv, one_row); }, "store_kv", "a batch of 1 rows for 2 rows");
    expect_rejected(b, [&] { b.store_kv(*cache, *kv, *kv, pages_of_3); }, "store_kv",
                    "pages of 3 rows (a power of two is required)");
    expect_rejected(b, [&] { b.attention(*q, *cache, 7, shape, *q); }, "attention",
                    "page 0 (rows 0..8) outside the cache's 8 rows");
    expect_rejected(b, [&] { b.attention(*q, *cache, past_table, shape, *q); }, "attention",
                    "run of 2 rows at row 0 position 3 with 1 pages at 0 of 1");
    expect_rejected(b, [&] { b.attention(*q, *cache, past_pool, shape, *q); }, "attention",
                    "page 2 (rows 8..11) outside the cache's 8 rows");
    expect_rejected(b, [&] { b.read_kv_rows(*cache, 7, 2, bytes_128, bytes_128); }, "read_kv_rows",
                    "rows 7..8 (128 and 128 bytes) of a cache of 8 rows");
    expect_rejected(b, [&] { b.write_kv_rows(*cache, 0, 2, bytes_128, bytes_64); }, "write_kv_rows",
                    "(128 and 64 bytes) of a cache of 8 rows (128 bytes for these)");
    expect_rejected(b, [&] { b.attention(*q, *cache, 0, {4, 1, 16}, *q); }, "attention", "over 1 kv heads");
    expect_rejected(b, [&] { b.attention(*q, *cache, 0, shape, *x3); }, "attention", "differ");
    expect_rejected(b, [&] { b.swiglu(*x, *h, *x3); }, "swiglu", "differ");
    expect_rejected(b, [&] { b.add(*x, *x3); }, "add", "differ");
    const Product four[] = {{weight.get(), nullptr, y.get()}, {weight.get(), nullptr, y.get()},
                            {weight.get(), nullptr, y.get()}, {weight.get(), nullptr, y.get()}};
    expect_rejected(b, [&] { b.norm_matmul(*x, *norm_w, 1e-6f, *h, four); }, "norm_matmul", "1 to 3 products");
    const Product wide[] = {{weight.get(), nullptr, y_wide.get()}};
    expect_rejected(b, [&] { b.norm_matmul(*x, *norm_w, 1e-6f, *h, wide); }, "norm_matmul", "-> y [2, 17]");
    expect_rejected(b, [&] { b.rope_store_kv(*q, *kv, *kv, head_norm_w.get(), nullptr, 1e-6f, *cache, 7, shape, 1e4f); },
                    "rope_store_kv", "page 0 (rows 0..8) outside the cache's 8 rows");
    expect_rejected(
        b, [&] { b.rope_store_kv(*q, *kv, *kv, nullptr, nullptr, 1e-6f, *cache, past_pool, shape, 1e4f); },
        "rope_store_kv", "page 2 (rows 8..11) outside the cache's 8 rows");
    expect_rejected(b, [&] { b.rope_store_kv(*q, *kv, *kv, norm_w.get(), nullptr, 1e-6f, *cache, 0, shape, 1e4f); },
                    "rope_store_kv", "per-head norm of 64 values for heads of 16");
    expect_rejected(b, [&] { b.matmul_add(*weight, *x, *y_wide, *y_wide); }, "matmul_add", "-> y [2, 17]");
    expect_rejected(b, [&] { b.norm_swiglu(*x, *norm_w, 1e-6f, *weight, *weight, *h, *y, *y_wide); }, "norm_swiglu",
                    "-> y [2, 17]");
  }
}

}  // namespace
}  // namespace xelm
