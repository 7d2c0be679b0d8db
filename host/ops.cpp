// ops.cpp — the OpenCL backend's plain ops: each is one kernel of kernels/*.cl (matmul once per
// weight piece, attention twice when split over the keys) enqueued on the backend's queue, plus
// activations, KV caches and their raw row transfers, and the KvBatch's int arrays (uploaded once per
// batch, kernel_abi.h). add() is deferred (ClQueue::defer_add) so that the forward pass's
// `add; rms_norm` runs as one kernel. matmul takes the prefill GEMM path (gemm_path.cpp) from
// gemm_min_tokens activation rows, else kernel_matmul_<type>_f32, or with the int8 fast path
// kernel_matmul_{q8_0,q4_0}_q8 on activations quantized once per product.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "host/backend_impl.h"
#include "kernels/kernel_abi.h"
#include "runtime/error.h"
#include "runtime/rope.h"

namespace xelm::opencl {

std::unique_ptr<Activation> OpenClBackendImpl::new_activation(int64_t rows, int64_t cols) {
  return std::make_unique<ClActivation>(rows, cols, q_.new_buffer(static_cast<uint64_t>(rows * cols) * sizeof(float),
                                                                  "activation"));
}

std::unique_ptr<KvCacheLayer> OpenClBackendImpl::new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                                              GgmlType type) {
  if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::Q8_0) {
    throw Error(fmt::format("KV cache type {} is not supported (use f16, f32 or q8_0)", type_traits(type).name));
  }
  if (head_dim > kMaxHeadDim || head_dim % 2 != 0) {
    throw Error(fmt::format("head_dim {} is not supported by the OpenCL attention kernels (even, at most {})",
                            head_dim, kMaxHeadDim));
  }
  const uint64_t bytes = static_cast<uint64_t>(n_ctx) * row_bytes(type, n_head_kv * head_dim);
  return std::make_unique<ClKvCache>(n_ctx, n_head_kv, head_dim, type, q_.new_buffer(bytes, "KV cache"),
                                     q_.new_buffer(bytes, "KV cache"));
}

void OpenClBackendImpl::synchronize() { q_.finish(); }

void OpenClBackendImpl::do_write(Activation& dst, std::span<const float> src) {
  q_.upload(buf(dst), src.data(), src.size_bytes());
}

void OpenClBackendImpl::do_read(const Activation& src, std::span<float> dst) {
  q_.read(buf(src), dst.data(), dst.size_bytes());
}

void OpenClBackendImpl::do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row,
                                     int64_t n) {
  const size_t row = static_cast<size_t>(src.cols()) * sizeof(float);
  q_.copy(buf(src), static_cast<size_t>(src_row) * row, buf(dst), static_cast<size_t>(dst_row) * row,
          static_cast<size_t>(n) * row);
}

void OpenClBackendImpl::do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) {
  const ClWeight& w = wt(table);
  const cl::Buffer& token_buffer = q_.reserve(token_buffer_, tokens.size_bytes(), "token ids");
  q_.upload(token_buffer, tokens.data(), tokens.size_bytes());
  const std::string kernel = "kernel_get_rows_" + kernel_type_name(table.type()) + "_f32";
  const size_t chunks = static_cast<size_t>(w.in_features() / chunk_elements(table.type()));
  for (const ClWeight::Piece& p : w.pieces) {
    q_.launch(kernel, cl::NDRange(chunks, tokens.size()), cl::NullRange, p.buffer, cl_ulong{p.offset},
              cl_ulong{w.row_bytes}, cl_int(w.in_features()), cl_int(p.row0), cl_int(p.rows), token_buffer, buf(out));
  }
}

// A deferred `x += y` on this x is fused into the norm (one launch instead of two); any other
// deferred add is enqueued before the norm, as before every command.
void OpenClBackendImpl::do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) {
  const int64_t group = weight.in_features();
  const size_t wg = static_cast<size_t>(norm_wg());
  const cl::NDRange global(wg * static_cast<size_t>(x.cols() / group), static_cast<size_t>(x.rows()));
  const std::optional<cl::Buffer> y =
      buf(out)() != buf(x)() ? q_.take_deferred_add(buf(x), static_cast<size_t>(x.rows() * x.cols())) : std::nullopt;
  if (y) {
    q_.launch("kernel_add_rms_norm_f32", global, cl::NDRange(wg, 1), buf(x), *y, wt(weight).dense, buf(out),
              cl_int(x.cols()), cl_int(group), cl_float(eps));
    return;
  }
  q_.launch("kernel_rms_norm_f32", global, cl::NDRange(wg, 1), buf(x), wt(weight).dense, buf(out), cl_int(x.cols()),
            cl_int(group), cl_float(eps));
}

void OpenClBackendImpl::do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) {
  const ClWeight& cw = wt(w);
  if (gemm_.applies(x.rows()) && gemm_.matmul(q_, tuning_, cw, x, y, bias)) return;
  const bool int8 = fast_.int8 && (w.type() == GgmlType::Q8_0 || w.type() == GgmlType::Q4_0);
  if (int8) quantize_activations(x);
  const std::string kernel = "kernel_matmul_" + kernel_type_name(w.type()) + (int8 ? "_q8" : "_f32");
  const size_t wg = static_cast<size_t>(matmul_wg());
  const size_t token_groups = static_cast<size_t>((x.rows() + matmul_tokens() - 1) / matmul_tokens());
  const cl::Buffer& bias_buffer = bias != nullptr ? wt(*bias).dense : q_.dummy();
  for (const ClWeight::Piece& p : cw.pieces) {
    const size_t row_groups = static_cast<size_t>((p.rows + tuning_.matmul_rows - 1) / tuning_.matmul_rows);
    const cl::NDRange global(wg * row_groups, token_groups), local(wg, 1);
    if (int8) {
      q_.launch(kernel, global, local, p.buffer, cl_ulong{p.offset}, cl_ulong{cw.row_bytes}, cl_int(w.in_features()),
                cl_int(p.row0), cl_int(p.rows), act_q_.buffer, act_d_.buffer, buf(y), cl_int(y.cols()),
                cl_int(x.rows()), bias_buffer, cl_int(bias != nullptr));
    } else {
      q_.launch(kernel, global, local, p.buffer, cl_ulong{p.offset}, cl_ulong{cw.row_bytes}, cl_int(w.in_features()),
                cl_int(p.row0), cl_int(p.rows), buf(x), buf(y), cl_int(y.cols()), cl_int(x.rows()), bias_buffer,
                cl_int(bias != nullptr));
    }
  }
}

void OpenClBackendImpl::quantize_activations(const Activation& x) {
  const size_t elements = static_cast<size_t>(x.rows() * x.cols());
  q_.reserve(act_q_, elements, "int8 activations");
  q_.reserve(act_d_, elements / 32 * sizeof(float), "int8 activation scales");
  q_.launch("kernel_quantize_act_q8", cl::NDRange(static_cast<size_t>(x.cols() / 32), static_cast<size_t>(x.rows())),
            cl::NullRange, buf(x), act_q_.buffer, act_d_.buffer, cl_int(x.cols()));
}

void OpenClBackendImpl::do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch,
                                float freq_base) {
  q_.launch("kernel_rope_neox_f32",
            cl::NDRange(static_cast<size_t>(head_dim / 2), static_cast<size_t>(n_heads), static_cast<size_t>(x.rows())),
            cl::NullRange, buf(x), cl_int(x.cols()), cl_int(head_dim), kv_batch(batch), inv_freq(head_dim, freq_base));
}

const cl::Buffer& OpenClBackendImpl::inv_freq(int64_t head_dim, float freq_base) {
  auto& slot = inv_freq_[{head_dim, freq_base}];
  if (slot() == nullptr) {
    std::vector<float> values = rope_inv_freq(head_dim, freq_base);
    q_.guarded("rope table", [&] {
      slot = cl::Buffer(q_.context(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(float),
                        values.data());
    });
    q_.counters().bytes_to_device += values.size() * sizeof(float);
  }
  return slot;
}

const cl::Buffer& OpenClBackendImpl::kv_batch(const KvBatch& batch) {
  if (batch.id != 0 && batch.id == kv_batch_id_) return kv_batch_.buffer;
  const int64_t n = batch.rows();
  std::vector<int32_t> ints(static_cast<size_t>(KV_BATCH_INTS(n, static_cast<int64_t>(batch.pages.size()))));
  std::copy(batch.positions.begin(), batch.positions.end(), ints.begin() + KV_BATCH_POSITIONS(n));
  std::copy(batch.slots.begin(), batch.slots.end(), ints.begin() + KV_BATCH_SLOTS(n));
  for (int64_t t = 0; t < n; ++t) {
    const KvRun& run = batch.runs[static_cast<size_t>(batch.run_of_row[static_cast<size_t>(t)])];
    ints[static_cast<size_t>(KV_BATCH_TABLES(n) + t)] = static_cast<int32_t>(run.table);
  }
  std::copy(batch.pages.begin(), batch.pages.end(), ints.begin() + KV_BATCH_PAGES(n));
  const size_t bytes = ints.size() * sizeof(int32_t);
  q_.upload(q_.reserve(kv_batch_, bytes, "KV batch"), ints.data(), bytes);
  kv_batch_id_ = batch.id;
  return kv_batch_.buffer;
}

void OpenClBackendImpl::do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v,
                                    const KvBatch& batch) {
  auto& c = static_cast<ClKvCache&>(cache);
  const int64_t width = c.n_head_kv() * c.head_dim();
  const int64_t items = c.type() == GgmlType::Q8_0 ? width / 32 : width;
  q_.launch("kernel_store_kv_" + kernel_type_name(c.type()),
            cl::NDRange(static_cast<size_t>(items), static_cast<size_t>(k.rows())), cl::NullRange, buf(k), buf(v), c.k,
            c.v, cl_int(width), kv_batch(batch));
}

void OpenClBackendImpl::do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch,
                                     const AttentionShape& shape, Activation& out) {
  const auto& c = static_cast<const ClKvCache&>(cache);
  const int64_t n_q = q.rows(), d = shape.head_dim;
  // Splits over the keys: enough work-groups to fill the device (flash decoding), none when the
  // query rows and heads already do. Every row gets the splits of the row with the most keys (rows
  // with fewer leave the later ones empty).
  const int64_t n_keys = *std::max_element(batch.positions.begin(), batch.positions.end()) + 1;
  const int64_t max_splits = (n_keys + tuning_.attn_split_len - 1) / tuning_.attn_split_len;
  const int64_t wanted_groups = 4 * static_cast<int64_t>(q_.info().compute_units);
  const int64_t n_splits = std::clamp<int64_t>((wanted_groups + n_q * shape.n_head - 1) / (n_q * shape.n_head), 1,
                                               max_splits);
  const int64_t split_len = (n_keys + n_splits - 1) / n_splits;
  const size_t part_floats = static_cast<size_t>(n_q * shape.n_head * n_splits * d);
  if (n_splits > 1) {
    q_.reserve(part_acc_, part_floats * sizeof(float), "attention partials");
    q_.reserve(part_ml_, part_floats / static_cast<size_t>(d) * 2 * sizeof(float), "attention partials");
  }
  const cl::Buffer& batch_buffer = kv_batch(batch);
  const size_t wg = static_cast<size_t>(attn_wg());
  q_.launch("kernel_attention_" + kernel_type_name(c.type()) + "_f32",
            cl::NDRange(wg * static_cast<size_t>(n_splits), static_cast<size_t>(shape.n_head), static_cast<size_t>(n_q)),
            cl::NDRange(wg, 1, 1), buf(q), c.k, c.v, buf(out), n_splits > 1 ? part_acc_.buffer : q_.dummy(),
            n_splits > 1 ? part_ml_.buffer : q_.dummy(), cl_int(shape.n_head), cl_int(shape.n_head_kv), cl_int(d),
            batch_buffer, cl_int(batch.page_size), cl_int(split_len),
            cl_float(1.0f / std::sqrt(static_cast<float>(d))));
  if (n_splits > 1) {
    q_.launch("kernel_attention_reduce_f32",
              cl::NDRange(static_cast<size_t>(d), static_cast<size_t>(shape.n_head), static_cast<size_t>(n_q)),
              cl::NullRange, part_acc_.buffer, part_ml_.buffer, buf(out), cl_int(n_splits));
  }
}

// Raw rows: one byte range of each of k and v, through the queue (after every op called before).
void OpenClBackendImpl::do_read_kv_rows(const KvCacheLayer& cache, int64_t row0, int64_t /*n*/, std::span<uint8_t> k,
                                        std::span<uint8_t> v) {
  const auto& c = static_cast<const ClKvCache&>(cache);
  const size_t offset = static_cast<size_t>(row0) * row_bytes(c.type(), c.n_head_kv() * c.head_dim());
  q_.read(c.k, k.data(), k.size(), offset);
  q_.read(c.v, v.data(), v.size(), offset);
}

void OpenClBackendImpl::do_write_kv_rows(KvCacheLayer& cache, int64_t row0, int64_t /*n*/, std::span<const uint8_t> k,
                                         std::span<const uint8_t> v) {
  auto& c = static_cast<ClKvCache&>(cache);
  const size_t offset = static_cast<size_t>(row0) * row_bytes(c.type(), c.n_head_kv() * c.head_dim());
  q_.upload(c.k, k.data(), k.size(), offset);
  q_.upload(c.v, v.data(), v.size(), offset);
}

void OpenClBackendImpl::do_swiglu(const Activation& gate, const Activation& up, Activation& out) {
  q_.launch("kernel_swiglu_f32", cl::NDRange(static_cast<size_t>(gate.rows() * gate.cols())), cl::NullRange,
            buf(gate), buf(up), buf(out));
}

// Deferred: the queue enqueues it before its next command, unless rms_norm of x fuses it first.
void OpenClBackendImpl::do_add(Activation& x, const Activation& y) {
  q_.defer_add(buf(x), buf(y), static_cast<size_t>(x.rows() * x.cols()));
}

}  // namespace xelm::opencl
