// fused_ops.cpp — the OpenCL backend's fused decode ops (kernels/fused.cl): a decoded token (one
// row) runs each layer in six launches — norm + q|k|v product, q/k norm + rope + KV store,
// attention (two when split over the keys), attn_output product added into the residual,
// norm + gate|up + SiLU product, ffn_down product added into the residual. Prefill batches, weights
// split by row ranges and gate/up of different types take Backend's defaults (the unfused ops),
// except rope_store_kv, which serves any batch. OpenClOptions::fused = false turns them all off.
#include <cstddef>

#include "host/backend_impl.h"
#include "kernels/kernel_abi.h"

namespace xelm::opencl {

// Each weight one buffer (not split by rows), each output another buffer than x (shapes are checked
// by Backend).
bool OpenClBackendImpl::fusable(const Activation& x, std::span<const Product> products) const {
  for (const Product& p : products) {
    if (wt(*p.weight).pieces.size() != 1 || buf(*p.out)() == buf(x)()) return false;
  }
  return true;
}

// The scalars of kernel_matvec_f32's segments go by value (kernel_abi.h); both sides must lay the
// struct out alike.
static_assert(sizeof(MatvecSegment) == 32 && offsetof(MatvecSegment, offset) == 0 &&
              offsetof(MatvecSegment, row_bytes) == 8 && offsetof(MatvecSegment, type) == 16 &&
              offsetof(MatvecSegment, rows) == 20 && offsetof(MatvecSegment, has_bias) == 24);
static_assert(sizeof(MatvecSegments) == MATVEC_SEGMENTS * sizeof(MatvecSegment));

// y_s (+)= W_s · h for the products s of the one row of x, h = rms_norm(x) * norm when norm is given,
// else x; `accumulate` adds into y_s (the residual add). Segments beyond products.size() are empty.
void OpenClBackendImpl::launch_matvec(const Activation& x, const Weight* norm, float eps, bool accumulate,
                                      std::span<const Product> products) {
  const size_t rows_per_group = static_cast<size_t>(tuning_.matmul_rows);
  size_t groups = 0;
  MatvecSegments segments{};
  cl::Buffer w[MATVEC_SEGMENTS], y[MATVEC_SEGMENTS], bias[MATVEC_SEGMENTS];
  for (size_t s = 0; s < MATVEC_SEGMENTS; ++s) {
    w[s] = y[s] = bias[s] = q_.dummy();
    if (s >= products.size()) continue;
    const Product& p = products[s];
    const ClWeight& cw = wt(*p.weight);
    segments.s[s] = {cw.pieces[0].offset, cw.row_bytes, static_cast<cl_int>(p.weight->type()),
                     static_cast<cl_int>(p.weight->out_features()), p.bias != nullptr, 0};
    w[s] = cw.pieces[0].buffer;
    y[s] = buf(*p.out);
    if (p.bias != nullptr) bias[s] = wt(*p.bias).dense;
    groups += (static_cast<size_t>(p.weight->out_features()) + rows_per_group - 1) / rows_per_group;
  }
  const size_t wg = static_cast<size_t>(matmul_wg());
  q_.launch("kernel_matvec_f32", cl::NDRange(wg * groups), cl::NDRange(wg), buf(x),
            norm != nullptr ? wt(*norm).dense : q_.dummy(), cl_float(eps), cl_int(norm != nullptr), cl_int(accumulate),
            cl_int(x.cols()), segments, w[0], w[1], w[2], y[0], y[1], y[2], bias[0], bias[1], bias[2]);
}

// Decode: one kernel_matvec_f32 launch for up to three products of one row; else the unfused ops.
void OpenClBackendImpl::do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                                       std::span<const Product> products) {
  if (!fused_ || x.rows() != 1 || !fusable(x, products)) {
    Backend::do_norm_matmul(x, norm, eps, h, products);
    return;
  }
  launch_matvec(x, &norm, eps, false, products);
}

// Any batch: one kernel_rope_store_<kv> launch (Q8_0 caches need heads of whole 32-element blocks).
void OpenClBackendImpl::do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                                         const Weight* k_norm, float eps, KvCacheLayer& cache,
                                         const KvBatch& batch, const AttentionShape& shape, float freq_base) {
  auto& c = static_cast<ClKvCache&>(cache);
  const int64_t d = shape.head_dim;
  if (!fused_ || (c.type() == GgmlType::Q8_0 && d % 32 != 0)) {
    Backend::do_rope_store_kv(q, k, v, q_norm, k_norm, eps, cache, batch, shape, freq_base);
    return;
  }
  const size_t wg = static_cast<size_t>(norm_wg());
  q_.launch("kernel_rope_store_" + kernel_type_name(c.type()),
            cl::NDRange(wg, static_cast<size_t>(shape.n_head + 2 * shape.n_head_kv), static_cast<size_t>(q.rows())),
            cl::NDRange(wg, 1, 1), buf(q), buf(k), buf(v), q_norm != nullptr ? wt(*q_norm).dense : q_.dummy(),
            k_norm != nullptr ? wt(*k_norm).dense : q_.dummy(), cl_int(q_norm != nullptr), cl_int(k_norm != nullptr),
            cl_float(eps), c.k, c.v, cl_int(shape.n_head), cl_int(shape.n_head_kv), cl_int(d), kv_batch(batch),
            inv_freq(d, freq_base));
}

// Decode: the product adds itself into x (one kernel_matvec_f32 launch); else matmul, then add.
void OpenClBackendImpl::do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) {
  const Product product{&w, nullptr, &x};
  if (!fused_ || a.rows() != 1 || !fusable(a, std::span<const Product>(&product, 1))) {
    Backend::do_matmul_add(w, a, x, scratch);
    return;
  }
  launch_matvec(a, nullptr, 0.0f, true, std::span<const Product>(&product, 1));
}

// Decode with gate and up of one type: one kernel_norm_swiglu_f32 launch; else the unfused ops.
void OpenClBackendImpl::do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                                       const Weight& w_up, Activation& h, Activation& up, Activation& out) {
  const Product gate{&w_gate, nullptr, &out};
  if (!fused_ || x.rows() != 1 || w_gate.type() != w_up.type() || !fusable(x, std::span<const Product>(&gate, 1)) ||
      wt(w_up).pieces.size() != 1) {
    Backend::do_norm_swiglu(x, norm, eps, w_gate, w_up, h, up, out);
    return;
  }
  const ClWeight& g = wt(w_gate);
  const ClWeight& u = wt(w_up);
  const size_t groups = static_cast<size_t>((w_gate.out_features() + tuning_.matmul_rows - 1) / tuning_.matmul_rows);
  const size_t wg = static_cast<size_t>(matmul_wg());
  q_.launch("kernel_norm_swiglu_f32", cl::NDRange(wg * groups), cl::NDRange(wg), buf(x), wt(norm).dense,
            cl_float(eps), cl_int(x.cols()), g.pieces[0].buffer, cl_ulong{g.pieces[0].offset}, u.pieces[0].buffer,
            cl_ulong{u.pieces[0].offset}, cl_ulong{g.row_bytes}, cl_int(static_cast<int>(w_gate.type())),
            cl_int(w_gate.out_features()), buf(out));
}

}  // namespace xelm::opencl
