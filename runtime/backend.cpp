// backend.cpp — the checked public ops of the backend interface (every shape and range check lives
// here, once) and the default (unfused) implementations of its fused ops.
#include "runtime/backend.h"

#include <atomic>
#include <bit>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"
#include "runtime/ggml_types.h"

namespace xelm {
namespace {

// Throws an "internal:" error naming the op when `ok` is false; `what` says which rule failed.
void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw Error(fmt::format("internal: {}: {}", op, what));
}

std::string shape(const Activation& a) { return fmt::format("[{}, {}]", a.rows(), a.cols()); }

void require_same_shape(const Activation& a, const Activation& b, const char* op) {
  require(a.rows() == b.rows() && a.cols() == b.cols(), op, fmt::format("{} and {} differ", shape(a), shape(b)));
}

// y = W · x (+ bias): x [n, in], y [n, out], bias [out].
void require_product(const Weight& w, const Activation& x, const Activation& y, const Weight* bias, const char* op) {
  require(x.cols() == w.in_features() && y.cols() == w.out_features() && x.rows() == y.rows(), op,
          fmt::format("'{}' [{}, {}] with x {} -> y {}", w.info().name, w.in_features(), w.out_features(), shape(x),
                      shape(y)));
  require(bias == nullptr || bias->in_features() == w.out_features(), op,
          fmt::format("bias of {} values for '{}' with {} outputs", bias != nullptr ? bias->in_features() : 0,
                      w.info().name, w.out_features()));
}

// The norm weight's length divides the row: whole rows, or one group per head.
void require_norm_groups(const Activation& x, const Weight& norm, const char* op) {
  const int64_t group = norm.in_features();
  require(group > 0 && x.cols() % group == 0, op,
          fmt::format("norm weight of {} values does not divide rows of {}", group, x.cols()));
}

void require_rope(const Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, const char* op) {
  require(head_dim > 0 && head_dim % 2 == 0 && n_heads >= 0 && n_heads * head_dim <= x.cols(), op,
          fmt::format("{} heads of {} dims in rows {}", n_heads, head_dim, shape(x)));
  require(batch.rows() == x.rows(), op, fmt::format("a batch of {} rows for {}", batch.rows(), shape(x)));
}

// The batch's runs cover its rows in order and every run's positions lie in its block table, whose
// pages lie in the cache.
void require_batch(const KvCacheLayer& cache, const KvBatch& batch, int64_t rows, const char* op) {
  require(batch.rows() == rows && batch.slots.size() == batch.positions.size() &&
              batch.run_of_row.size() == batch.positions.size(),
          op, fmt::format("a batch of {} rows for {} rows", batch.rows(), rows));
  require(batch.page_size > 0 && (batch.page_size & (batch.page_size - 1)) == 0, op,
          fmt::format("pages of {} rows (a power of two is required)", batch.page_size));
  int64_t next_row = 0;
  for (const KvRun& run : batch.runs) {
    require(run.row0 == next_row && run.n_rows > 0 && run.pos0 >= 0 && run.table >= 0 &&
                run.table + run.n_pages <= static_cast<int64_t>(batch.pages.size()) &&
                run.pos0 + run.n_rows <= run.n_pages * batch.page_size,
            op,
            fmt::format("run of {} rows at row {} position {} with {} pages at {} of {}", run.n_rows, run.row0,
                        run.pos0, run.n_pages, run.table, batch.pages.size()));
    // Every page of the table lies in the pool; the one holding the run's last position need only hold
    // the rows up to it (a contiguous batch's one page may be larger than a small cache).
    const int64_t last_page = (run.pos0 + run.n_rows - 1) / batch.page_size;
    for (int64_t i = 0; i < run.n_pages; ++i) {
      const int32_t page = batch.pages[static_cast<size_t>(run.table + i)];
      const int64_t used = i == last_page ? (run.pos0 + run.n_rows - 1) % batch.page_size + 1 : batch.page_size;
      const int64_t first_row = static_cast<int64_t>(page) * batch.page_size;
      require(page >= 0 && first_row + used <= cache.n_ctx(), op,
              fmt::format("page {} (rows {}..{}) outside the cache's {} rows", page, first_row, first_row + used - 1,
                          cache.n_ctx()));
    }
    next_row += run.n_rows;
  }
  require(next_row == rows, op, fmt::format("runs cover {} of {} rows", next_row, rows));
}

// k and v [n, n_head_kv * head_dim] fit the cache's rows.
void require_kv_rows(const KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch,
                     const char* op) {
  const int64_t width = cache.n_head_kv() * cache.head_dim();
  require(k.cols() == width && v.cols() == width && k.rows() == v.rows(), op,
          fmt::format("k {} and v {} for a cache of width {}", shape(k), shape(v), width));
  require_batch(cache, batch, k.rows(), op);
}

void require_attention_shape(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch,
                             const AttentionShape& s, const char* op) {
  require(s.n_head > 0 && s.n_head_kv > 0 && s.n_head % s.n_head_kv == 0 && s.head_dim == cache.head_dim() &&
              s.n_head_kv == cache.n_head_kv(),
          op,
          fmt::format("{} query heads over {} kv heads of {} dims, cache of {} kv heads of {} dims", s.n_head,
                      s.n_head_kv, s.head_dim, cache.n_head_kv(), cache.head_dim()));
  require(q.cols() == s.n_head * s.head_dim, op,
          fmt::format("q {} for {} heads of {} dims", shape(q), s.n_head, s.head_dim));
  require_batch(cache, batch, q.rows(), op);
}

void require_raw_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, size_t k_bytes, size_t v_bytes,
                      const char* op) {
  const size_t bytes = static_cast<size_t>(n) * row_bytes(cache.type(), cache.n_head_kv() * cache.head_dim());
  require(row0 >= 0 && n >= 0 && row0 + n <= cache.n_ctx() && k_bytes == bytes && v_bytes == bytes, op,
          fmt::format("rows {}..{} ({} and {} bytes) of a cache of {} rows ({} bytes for these)", row0, row0 + n - 1,
                      k_bytes, v_bytes, cache.n_ctx(), bytes));
}

}  // namespace

void Activation::set_rows(int64_t rows) {
  if (rows < 1 || rows > capacity_) {
    throw Error(fmt::format("internal: activation set to {} rows, capacity is {}", rows, capacity_));
  }
  rows_ = rows;
}

void KvBatch::add_run(int64_t pos0, int64_t n, std::span<const int32_t> block_table) {
  const KvRun run{rows(), n, pos0, static_cast<int64_t>(pages.size()), static_cast<int64_t>(block_table.size())};
  const auto run_index = static_cast<int32_t>(runs.size());
  runs.push_back(run);
  pages.insert(pages.end(), block_table.begin(), block_table.end());
  for (int64_t p = pos0; p < pos0 + n; ++p) {
    positions.push_back(static_cast<int32_t>(p));
    slots.push_back(static_cast<int32_t>(p / page_size < run.n_pages ? row_of(run, p) : -1));
    run_of_row.push_back(run_index);
  }
}

void KvBatch::finish() {
  static std::atomic<uint64_t> next_id{1};
  id = next_id.fetch_add(1);
}

KvBatch KvBatch::contiguous(int64_t pos0, int64_t n) {
  KvBatch batch;
  batch.page_size = static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(pos0 + n)));
  const int32_t page0 = 0;
  batch.add_run(pos0, n, std::span<const int32_t>(&page0, 1));
  batch.finish();
  return batch;
}

void Backend::write(Activation& dst, std::span<const float> src) {
  require(static_cast<int64_t>(src.size()) == dst.rows() * dst.cols(), "write",
          fmt::format("{} floats into {}", src.size(), shape(dst)));
  do_write(dst, src);
}

void Backend::read(const Activation& src, std::span<float> dst) {
  require(static_cast<int64_t>(dst.size()) == src.rows() * src.cols(), "read",
          fmt::format("{} into {} floats", shape(src), dst.size()));
  do_read(src, dst);
}

void Backend::copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) {
  require(src.cols() == dst.cols() && n >= 0 && src_row >= 0 && dst_row >= 0 && src_row + n <= src.rows() &&
              dst_row + n <= dst.rows(),
          "copy_rows",
          fmt::format("{} rows from row {} of {} to row {} of {}", n, src_row, shape(src), dst_row, shape(dst)));
  do_copy_rows(src, src_row, dst, dst_row, n);
}

void Backend::get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) {
  require(out.cols() == table.in_features() && static_cast<int64_t>(tokens.size()) == out.rows(), "get_rows",
          fmt::format("{} tokens of '{}' ({} values) into {}", tokens.size(), table.info().name, table.in_features(),
                      shape(out)));
  for (const int32_t token : tokens) {
    require(token >= 0 && token < table.out_features(), "get_rows",
            fmt::format("row {} of '{}' with {} rows", token, table.info().name, table.out_features()));
  }
  do_get_rows(table, tokens, out);
}

void Backend::rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) {
  require_same_shape(x, out, "rms_norm");
  require_norm_groups(x, weight, "rms_norm");
  do_rms_norm(x, weight, eps, out);
}

void Backend::matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) {
  require_product(w, x, y, bias, "matmul");
  do_matmul(w, x, y, bias);
}

void Backend::rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, float freq_base) {
  require_rope(x, n_heads, head_dim, batch, "rope");
  do_rope(x, n_heads, head_dim, batch, freq_base);
}

void Backend::store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch) {
  require_kv_rows(cache, k, v, batch, "store_kv");
  do_store_kv(cache, k, v, batch);
}

void Backend::attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch,
                        const AttentionShape& shape, Activation& out) {
  require_same_shape(q, out, "attention");
  require_attention_shape(q, cache, batch, shape, "attention");
  do_attention(q, cache, batch, shape, out);
}

void Backend::read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t n, std::span<uint8_t> k,
                           std::span<uint8_t> v) {
  require_raw_rows(cache, row0, n, k.size(), v.size(), "read_kv_rows");
  if (n > 0) do_read_kv_rows(cache, row0, n, k, v);
}

void Backend::write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t n, std::span<const uint8_t> k,
                            std::span<const uint8_t> v) {
  require_raw_rows(cache, row0, n, k.size(), v.size(), "write_kv_rows");
  if (n > 0) do_write_kv_rows(cache, row0, n, k, v);
}

void Backend::swiglu(const Activation& gate, const Activation& up, Activation& out) {
  require_same_shape(gate, up, "swiglu");
  require_same_shape(gate, out, "swiglu");
  do_swiglu(gate, up, out);
}

void Backend::add(Activation& x, const Activation& y) {
  require_same_shape(x, y, "add");
  do_add(x, y);
}

void Backend::norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                          std::span<const Product> products) {
  require(!products.empty() && products.size() <= 3, "norm_matmul", "takes 1 to 3 products");
  require_same_shape(x, h, "norm_matmul");
  require(norm.in_features() == x.cols(), "norm_matmul",
          fmt::format("norm weight of {} values for rows of {}", norm.in_features(), x.cols()));
  for (const Product& p : products) require_product(*p.weight, x, *p.out, p.bias, "norm_matmul");
  do_norm_matmul(x, norm, eps, h, products);
}

void Backend::rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                            const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                            const AttentionShape& shape, float freq_base) {
  require_kv_rows(cache, k, v, batch, "rope_store_kv");
  require_attention_shape(q, cache, batch, shape, "rope_store_kv");
  require(q.rows() == k.rows(), "rope_store_kv", fmt::format("q has {} rows, k {}", q.rows(), k.rows()));
  for (const Weight* norm : {q_norm, k_norm}) {
    require(norm == nullptr || norm->in_features() == shape.head_dim, "rope_store_kv",
            fmt::format("per-head norm of {} values for heads of {}", norm != nullptr ? norm->in_features() : 0,
                        shape.head_dim));
  }
  do_rope_store_kv(q, k, v, q_norm, k_norm, eps, cache, batch, shape, freq_base);
}

void Backend::matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) {
  require_product(w, a, x, nullptr, "matmul_add");
  require_same_shape(x, scratch, "matmul_add");
  do_matmul_add(w, a, x, scratch);
}

void Backend::norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                          const Weight& w_up, Activation& h, Activation& up, Activation& out) {
  require_same_shape(x, h, "norm_swiglu");
  require(norm.in_features() == x.cols(), "norm_swiglu",
          fmt::format("norm weight of {} values for rows of {}", norm.in_features(), x.cols()));
  require_product(w_gate, x, out, nullptr, "norm_swiglu");
  require_product(w_up, x, up, nullptr, "norm_swiglu");
  require_same_shape(up, out, "norm_swiglu");
  do_norm_swiglu(x, norm, eps, w_gate, w_up, h, up, out);
}

void Backend::do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                             std::span<const Product> products) {
  rms_norm(x, norm, eps, h);
  for (const Product& p : products) matmul(*p.weight, h, *p.out, p.bias);
}

void Backend::do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                               const Weight* k_norm, float eps, KvCacheLayer& cache, const KvBatch& batch,
                               const AttentionShape& shape, float freq_base) {
  if (q_norm != nullptr) rms_norm(q, *q_norm, eps, q);
  if (k_norm != nullptr) rms_norm(k, *k_norm, eps, k);
  rope(q, shape.n_head, shape.head_dim, batch, freq_base);
  rope(k, shape.n_head_kv, shape.head_dim, batch, freq_base);
  store_kv(cache, k, v, batch);
}

void Backend::do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) {
  matmul(w, a, scratch, nullptr);
  add(x, scratch);
}

void Backend::do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                             const Weight& w_up, Activation& h, Activation& up, Activation& out) {
  rms_norm(x, norm, eps, h);
  matmul(w_gate, h, out, nullptr);
  matmul(w_up, h, up, nullptr);
  swiglu(out, up, out);
}

}  // namespace xelm
