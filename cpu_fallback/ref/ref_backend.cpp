// ref_backend.cpp — scalar implementations of the Backend ops. Activations are std::vector<float>
// in host memory; weights are the mmapped GGUF bytes, dequantized a row at a time.
#include "cpu_fallback/ref/ref_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_fallback/cpu_backend_base.h"
#include "runtime/rope.h"

namespace xelm::cpu {
namespace {

class RefWeight final : public Weight {
 public:
  explicit RefWeight(const gguf::TensorInfo& info)
      : Weight(info), row_bytes_(xelm::row_bytes(info.type, info.shape[0])) {
    if (info.shape.size() == 1) {  // vectors (norms, biases) are kept dequantized
      dense_.resize(static_cast<size_t>(info.shape[0]));
      dequantize_row(info.type, info.data, dense_.data(), info.shape[0]);
    }
  }
  // Dequantizes row `r` ([in_features]) into dst.
  void row(int64_t r, float* dst) const {
    dequantize_row(type(), info().data + static_cast<size_t>(r) * row_bytes_, dst, in_features());
  }
  const std::vector<float>& dense() const { return dense_; }

 private:
  size_t row_bytes_;
  std::vector<float> dense_;
};

// Rows of n_head_kv * head_dim values per position, each stored as one row of type().
class RefKvCache final : public KvCacheLayer {
 public:
  RefKvCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type)
      : KvCacheLayer(n_ctx, n_head_kv, head_dim, type),
        width(n_head_kv * head_dim),
        row_size(row_bytes(type, width)),
        k(row_size * static_cast<size_t>(n_ctx)),
        v(row_size * static_cast<size_t>(n_ctx)) {}
  void store(std::vector<uint8_t>& cache, int64_t pos, const float* values) {
    quantize_row(type(), values, cache.data() + static_cast<size_t>(pos) * row_size, width);
  }
  // Positions [0, n) as floats [n, width].
  std::vector<float> load(const std::vector<uint8_t>& cache, int64_t n) const {
    std::vector<float> out(static_cast<size_t>(n * width));
    for (int64_t p = 0; p < n; ++p) {
      dequantize_row(type(), cache.data() + static_cast<size_t>(p) * row_size, out.data() + p * width, width);
    }
    return out;
  }
  int64_t width;
  size_t row_size;
  std::vector<uint8_t> k, v;  // [n_ctx][row_size]
};

const RefWeight& wt(const Weight& w) { return static_cast<const RefWeight&>(w); }

class ReferenceBackend final : public CpuBackendBase {
 public:
  std::string name() const override { return "cpu-ref"; }
  bool supports(GgmlType) const override { return true; }

  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override {
    return std::make_unique<RefWeight>(tensor);
  }
  std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                             GgmlType type) override {
    return std::make_unique<RefKvCache>(n_ctx, n_head_kv, head_dim, type);
  }

 protected:
  void do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) override {
    for (size_t t = 0; t < tokens.size(); ++t) wt(table).row(tokens[t], act(out).row(static_cast<int64_t>(t)));
  }

  void do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) override {
    const std::vector<float>& w = wt(weight).dense();
    const int64_t group = static_cast<int64_t>(w.size());
    for (int64_t r = 0; r < x.rows(); ++r) {
      const float* src = act(x).row(r);
      float* dst = act(out).row(r);
      for (int64_t g = 0; g < x.cols(); g += group) {
        float sum_sq = 0.0f;
        for (int64_t i = 0; i < group; ++i) sum_sq += src[g + i] * src[g + i];
        const float scale = 1.0f / std::sqrt(sum_sq / static_cast<float>(group) + eps);
        for (int64_t i = 0; i < group; ++i) dst[g + i] = src[g + i] * scale * w[static_cast<size_t>(i)];
      }
    }
  }

  void do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) override {
    std::vector<float> w_row(static_cast<size_t>(w.in_features()));
    for (int64_t o = 0; o < w.out_features(); ++o) {
      wt(w).row(o, w_row.data());
      const float b = bias != nullptr ? wt(*bias).dense()[static_cast<size_t>(o)] : 0.0f;
      for (int64_t t = 0; t < x.rows(); ++t) {
        const float* xr = act(x).row(t);
        float sum = 0.0f;
        for (int64_t i = 0; i < w.in_features(); ++i) sum += w_row[static_cast<size_t>(i)] * xr[i];
        act(y).row(t)[o] = sum + b;
      }
    }
  }

  void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) override {
    const int64_t half = head_dim / 2;
    const std::vector<float> inv_freq = rope_inv_freq(head_dim, freq_base);
    for (int64_t t = 0; t < x.rows(); ++t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = act(x).row(t) + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float theta = rope_angle(pos0 + t, inv_freq[static_cast<size_t>(i)]);
          const float cos_t = std::cos(theta), sin_t = std::sin(theta);
          const float a = v[i], b = v[i + half];
          v[i] = a * cos_t - b * sin_t;
          v[i + half] = a * sin_t + b * cos_t;
        }
      }
    }
  }

  void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, int64_t pos0) override {
    auto& c = static_cast<RefKvCache&>(cache);
    for (int64_t t = 0; t < k.rows(); ++t) {
      c.store(c.k, pos0 + t, act(k).row(t));
      c.store(c.v, pos0 + t, act(v).row(t));
    }
  }

  void do_attention(const Activation& q, const KvCacheLayer& cache, int64_t pos0, const AttentionShape& shape,
                    Activation& out) override {
    const auto& c = static_cast<const RefKvCache&>(cache);
    const int64_t d = shape.head_dim, kv_width = shape.n_head_kv * d, group = shape.n_head / shape.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const std::vector<float> keys = c.load(c.k, pos0 + q.rows());    // [n_keys, kv_width]
    const std::vector<float> values = c.load(c.v, pos0 + q.rows());
    std::vector<float> scores(static_cast<size_t>(pos0 + q.rows()));
    for (int64_t t = 0; t < q.rows(); ++t) {
      const int64_t n_keys = pos0 + t + 1;  // causal: positions 0 .. pos0 + t
      for (int64_t h = 0; h < shape.n_head; ++h) {
        const float* qh = act(q).row(t) + h * d;
        const int64_t kvh = h / group;
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t p = 0; p < n_keys; ++p) {
          const float* kp = keys.data() + p * kv_width + kvh * d;
          float dot = 0.0f;
          for (int64_t i = 0; i < d; ++i) dot += qh[i] * kp[i];
          scores[static_cast<size_t>(p)] = dot * scale;
          max_score = std::max(max_score, scores[static_cast<size_t>(p)]);
        }
        float denom = 0.0f;
        for (int64_t p = 0; p < n_keys; ++p) {
          scores[static_cast<size_t>(p)] = std::exp(scores[static_cast<size_t>(p)] - max_score);
          denom += scores[static_cast<size_t>(p)];
        }
        float* oh = act(out).row(t) + h * d;
        std::fill_n(oh, d, 0.0f);
        for (int64_t p = 0; p < n_keys; ++p) {
          const float weight = scores[static_cast<size_t>(p)] / denom;
          const float* vp = values.data() + p * kv_width + kvh * d;
          for (int64_t i = 0; i < d; ++i) oh[i] += weight * vp[i];
        }
      }
    }
  }

  void do_swiglu(const Activation& gate, const Activation& up, Activation& out) override {
    const size_t n = static_cast<size_t>(gate.rows() * gate.cols());
    for (size_t i = 0; i < n; ++i) {
      const float g = act(gate).data[i];
      act(out).data[i] = g / (1.0f + std::exp(-g)) * act(up).data[i];
    }
  }

  void do_add(Activation& x, const Activation& y) override {
    const size_t n = static_cast<size_t>(x.rows() * x.cols());
    for (size_t i = 0; i < n; ++i) act(x).data[i] += act(y).data[i];
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace xelm::cpu
