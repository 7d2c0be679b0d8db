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

// One k or v row of the cache as fp32 [n_head_kv * head_dim].
void load_kv_row(const CpuKvCache& c, const uint8_t* row, float* out) { dequantize_row(c.type(), row, out, c.width); }

const RefWeight& wt(const Weight& w) { return static_cast<const RefWeight&>(w); }

class ReferenceBackend final : public CpuBackendBase {
 public:
  std::string name() const override { return "cpu-ref"; }
  bool supports(GgmlType) const override { return true; }

  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override {
    return std::make_unique<RefWeight>(tensor);
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

  void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, float freq_base) override {
    const int64_t half = head_dim / 2;
    const std::vector<float> inv_freq = rope_inv_freq(head_dim, freq_base);
    std::vector<float> cos_t, sin_t;  // [half] for the row's position
    for (int64_t t = 0; t < x.rows(); ++t) {
      rope_cos_sin(batch.positions[static_cast<size_t>(t)], inv_freq, cos_t, sin_t);
      for (int64_t h = 0; h < n_heads; ++h) rope_rotate_head(act(x).row(t) + h * head_dim, half, cos_t.data(), sin_t.data());
    }
  }

  void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch) override {
    CpuKvCache& c = kv(cache);
    for (int64_t t = 0; t < k.rows(); ++t) {
      const int64_t slot = batch.slots[static_cast<size_t>(t)];
      quantize_row(c.type(), act(k).row(t), c.k_row(slot), c.width);
      quantize_row(c.type(), act(v).row(t), c.v_row(slot), c.width);
    }
  }

  void do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch, const AttentionShape& shape,
                    Activation& out) override {
    const CpuKvCache& c = kv(cache);
    const int64_t d = shape.head_dim, kv_width = c.width, group = shape.n_head / shape.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    for (const KvRun& run : batch.runs) {
      // The run's sequence as fp32 [n_keys, kv_width], positions 0 .. the run's last.
      const int64_t n_keys_max = run.pos0 + run.n_rows;
      std::vector<float> keys(static_cast<size_t>(n_keys_max * kv_width)), values(keys.size());
      for (int64_t p = 0; p < n_keys_max; ++p) {
        load_kv_row(c, c.k_row(batch.row_of(run, p)), keys.data() + p * kv_width);
        load_kv_row(c, c.v_row(batch.row_of(run, p)), values.data() + p * kv_width);
      }
      std::vector<float> scores(static_cast<size_t>(n_keys_max));
      for (int64_t t = run.row0; t < run.row0 + run.n_rows; ++t) {
        const int64_t n_keys = batch.positions[static_cast<size_t>(t)] + 1;  // causal: positions 0 .. pos
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
