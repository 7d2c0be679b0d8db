// backend.cpp — the non-virtual helpers of the backend interface and the default (unfused)
// implementations of its fused ops.
#include "runtime/backend.h"

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {

void Activation::set_rows(int64_t rows) {
  if (rows < 1 || rows > capacity_) {
    throw Error(fmt::format("internal: activation set to {} rows, capacity is {}", rows, capacity_));
  }
  rows_ = rows;
}

void check_same_shape(const Activation& a, const Activation& b, const char* op) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    throw Error(fmt::format("internal: {} on [{}, {}] and [{}, {}]", op, a.rows(), a.cols(), b.rows(), b.cols()));
  }
}

void Backend::norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                          std::span<const Product> products) {
  if (products.empty() || products.size() > 3) throw Error("internal: norm_matmul takes 1 to 3 products");
  rms_norm(x, norm, eps, h);
  for (const Product& p : products) matmul(*p.weight, h, *p.out, p.bias);
}

void Backend::rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                            const Weight* k_norm, float eps, KvCacheLayer& cache, int64_t pos0,
                            const AttentionShape& shape, float freq_base) {
  if (q_norm != nullptr) rms_norm(q, *q_norm, eps, q);
  if (k_norm != nullptr) rms_norm(k, *k_norm, eps, k);
  rope(q, shape.n_head, shape.head_dim, pos0, freq_base);
  rope(k, shape.n_head_kv, shape.head_dim, pos0, freq_base);
  store_kv(cache, k, v, pos0);
}

void Backend::matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) {
  matmul(w, a, scratch, nullptr);
  add(x, scratch);
}

void Backend::norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                          const Weight& w_up, Activation& h, Activation& up, Activation& out) {
  rms_norm(x, norm, eps, h);
  matmul(w_gate, h, out, nullptr);
  matmul(w_up, h, up, nullptr);
  swiglu(out, up, out);
}

}  // namespace xelm
