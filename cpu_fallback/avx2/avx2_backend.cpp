// avx2_backend.cpp — the Backend ops of the AVX2 CPU path. Activations are fp32 rows in host
// memory; weights are the mmapped GGUF bytes, used in place. Shapes: n = rows (tokens) of a batch.
#include "cpu_fallback/avx2/avx2_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "cpu_fallback/avx2/kernels.h"
#include "cpu_fallback/avx2/simd_util.h"
#include "cpu_fallback/thread_pool.h"
#include "cpu_fallback/cpu_backend_base.h"
#include "runtime/error.h"
#include "runtime/quant_blocks.h"
#include "runtime/rope.h"

namespace xelm::cpu {
namespace {

using avx2::ActivationFormat;

// Output rows per cache block of a matmul: their weights stay in L1/L2 while every tile of
// activation rows passes over them.
constexpr int64_t kOutputRowBlock = 16;
// Query rows per attention work item (they share each K/V tile converted to fp32).
constexpr int64_t kQueryTile = 16;
// Element-wise ops below this size run on the calling thread (a barrier costs more).
constexpr int64_t kParallelElements = 16384;

// A weight: 1-D tensors dequantized; matrices as their whole panels repacked for the panel kernel
// (kernels.h) and, for the rows after the last whole panel, the file's rows. The panels are made at
// the first product, so a table only read by get_rows (an untied token embedding) is never repacked.
class Avx2Weight final : public Weight {
 public:
  Avx2Weight(const gguf::TensorInfo& info, CpuIsa isa)
      : Weight(info),
        row_bytes(xelm::row_bytes(info.type, info.shape[0])),
        kernel(avx2::dot_kernel(info.type, isa)),
        panel_kernel(avx2::panel_kernel(info.type, info.shape[0], isa)),
        n_panels(info.shape.size() > 1 && panel_kernel ? out_features() / avx2::kPanelRows : 0) {
    if (info.shape.size() == 1) {  // norms and biases: kept dequantized (a few KiB)
      dense.resize(static_cast<size_t>(info.shape[0]));
      dequantize_row(info.type, info.data, dense.data(), info.shape[0]);
    }
  }
  // The panels, repacked at the first call: a few MiB of the file's rows at a time, the file pages
  // of each part released once it is repacked (GgufFile::release_pages), so that memory never holds
  // a matrix twice.
  const uint8_t* repacked_panels(ThreadPool& pool) const {
    std::call_once(repacked_, [&] {
      constexpr size_t kPartBytes = size_t{4} << 20;
      panels_.resize(static_cast<size_t>(n_panels) * panel_kernel.panel_bytes);
      const int64_t panels_per_part =
          std::max<int64_t>(1, static_cast<int64_t>(kPartBytes / (row_bytes * avx2::kPanelRows)));
      for (int64_t first = 0; first < n_panels; first += panels_per_part) {
        const int64_t last = std::min(n_panels, first + panels_per_part);
        pool.parallel_for(last - first, [&](int64_t begin, int64_t end) {
          for (int64_t p = first + begin; p < first + end; ++p) {
            panel_kernel.repack(row(p * avx2::kPanelRows), row_bytes, in_features(),
                                panels_.data() + static_cast<size_t>(p) * panel_kernel.panel_bytes);
          }
        });
        // Everything up to the end of this part (release_pages keeps the partial pages at the ends).
        if (info().file != nullptr) {
          info().file->release_pages(info().data, static_cast<size_t>(last * avx2::kPanelRows) * row_bytes);
        }
      }
    });
    return panels_.data();
  }
  const uint8_t* row(int64_t r) const { return info().data + static_cast<size_t>(r) * row_bytes; }
  size_t row_bytes;
  avx2::DotKernel kernel;          // nullptr for types without a product kernel
  avx2::PanelKernel panel_kernel;  // empty for types (or float widths) without one
  int64_t n_panels;                // whole panels: output rows [0, kPanelRows * n_panels)
  std::vector<float> dense;        // [in_features] for 1-D tensors

 private:
  mutable std::once_flag repacked_;
  mutable std::vector<uint8_t> panels_;  // [n_panels][panel_kernel.panel_bytes]
};

// Stores fp32 values [width] as one cache row of the cache's type (F32, F16 or Q8_0).
void store_kv_row(const CpuKvCache& c, const float* values, uint8_t* dst) {
  switch (c.type()) {
    case GgmlType::F32: std::memcpy(dst, values, static_cast<size_t>(c.width) * sizeof(float)); break;
    case GgmlType::F16: avx2::fp32_to_fp16_row(values, reinterpret_cast<uint16_t*>(dst), c.width); break;
    default: quantize_row(c.type(), values, dst, c.width); break;
  }
}

// out[0, head_dim) = kv head `head` of one cache row, as fp32.
void load_kv_head(const CpuKvCache& c, const uint8_t* row, int64_t head, float* dst) {
  const int64_t d = c.head_dim(), first = head * d;
  switch (c.type()) {
    case GgmlType::F32: std::memcpy(dst, reinterpret_cast<const float*>(row) + first, static_cast<size_t>(d) * 4); break;
    case GgmlType::F16: avx2::fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(row) + first, dst, d); break;
    default: {  // Q8_0: element e is qs[e % 32] of block e / 32
      const auto* blocks = reinterpret_cast<const quant::block_q8_0*>(row);
      if (first % 32 == 0 && d % 32 == 0) {  // whole blocks (head_dim 64, 128, ...): 8 at a time
        for (int64_t b = first / 32; b < (first + d) / 32; ++b) {
          const __m256 scale = _mm256_set1_ps(avx2::half_to_float(blocks[b].d));
          for (int part = 0; part < 4; ++part) {
            const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blocks[b].qs + 8 * part));
            _mm256_storeu_ps(dst + (b * 32 - first) + 8 * part,
                             _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
          }
        }
        break;
      }
      for (int64_t e = first; e < first + d; ++e) {
        const quant::block_q8_0& b = blocks[e / 32];
        dst[e - first] = avx2::half_to_float(b.d) * static_cast<float>(b.qs[e % 32]);
      }
    }
  }
}

const Avx2Weight& wt(const Weight& w) { return static_cast<const Avx2Weight&>(w); }

float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float sum = avx2::hsum(acc);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

class Avx2Backend final : public CpuBackendBase {
 public:
  Avx2Backend(int n_threads, CpuIsa isa) : isa_(isa), pool_(n_threads) {}

  std::string name() const override {
    return fmt::format("cpu-avx2{}{} ({} threads)", isa_ == CpuIsa::Avx2 ? "" : "+", isa_ == CpuIsa::Avx2 ? "" : isa_name(isa_),
                       pool_.size());
  }
  bool supports(GgmlType weight_type) const override { return avx2::dot_kernel(weight_type, isa_) != nullptr; }

  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override {
    if (tensor.shape.size() > 1 && !supports(tensor.type)) {
      throw Error(fmt::format("tensor '{}': type {} has no AVX2 kernel", tensor.name, type_traits(tensor.type).name));
    }
    return std::make_unique<Avx2Weight>(tensor, isa_);
  }

 protected:
  void do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) override {
    const Avx2Weight& w = wt(table);
    for (size_t t = 0; t < tokens.size(); ++t) {
      float* dst = act(out).row(static_cast<int64_t>(t));
      if (w.type() == GgmlType::F16) {
        avx2::fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(w.row(tokens[t])), dst, w.in_features());
      } else {
        dequantize_row(w.type(), w.row(tokens[t]), dst, w.in_features());
      }
    }
  }

  void do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) override {
    const std::vector<float>& w = wt(weight).dense;
    const int64_t group = static_cast<int64_t>(w.size());
    for_rows(x.rows(), x.cols(), [&](int64_t r) {
      const float* src = act(x).row(r);
      float* dst = act(out).row(r);
      for (int64_t g = 0; g < x.cols(); g += group) {
        const float scale = 1.0f / std::sqrt(dot(src + g, src + g, group) / static_cast<float>(group) + eps);
        for (int64_t i = 0; i < group; ++i) dst[g + i] = src[g + i] * scale * w[static_cast<size_t>(i)];
      }
    });
  }

  void do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) override {
    const Avx2Weight& weight = wt(w);
    const int64_t n = x.rows(), in = w.in_features();
    const ActivationFormat format = avx2::activation_format(w.type());
    // The activations once per matmul in the kernel's format: xq [n][x_stride bytes].
    const uint8_t* xq = reinterpret_cast<const uint8_t*>(act(x).row(0));
    size_t x_stride = static_cast<size_t>(in) * sizeof(float);
    if (format != ActivationFormat::F32) {
      x_stride = avx2::activation_row_bytes(format, in);
      if (scratch_.size() < x_stride * static_cast<size_t>(n)) scratch_.resize(x_stride * static_cast<size_t>(n));
      uint8_t* dst = scratch_.data();
      for_rows(n, in, [&](int64_t t) { avx2::quantize_activation_row(format, act(x).row(t), dst + t * x_stride, in); });
      xq = dst;
    }
    const float* b = bias != nullptr ? wt(*bias).dense.data() : nullptr;
    // Whole panels of output rows through the panel kernel (chunks of the pool are whole panels), the
    // rows after the last one through the dot kernel (kernels.h).
    const uint8_t* panels = weight.n_panels > 0 ? weight.repacked_panels(pool_) : nullptr;
    pool_.parallel_for(w.out_features(), [&](int64_t o_begin, int64_t o_end) {
      const int64_t panel_begin = o_begin / avx2::kPanelRows;
      const int64_t n_panels = std::max<int64_t>(0, std::min(o_end / avx2::kPanelRows, weight.n_panels) - panel_begin);
      if (n_panels > 0) {
        const uint8_t* first_panel = panels + static_cast<size_t>(panel_begin) * weight.panel_kernel.panel_bytes;
        weight.panel_kernel.product({first_panel, n_panels, xq, x_stride, n, in, act(y).row(0) + o_begin, y.cols(),
                                     b != nullptr ? b + o_begin : nullptr});
      }
      const int64_t first = o_begin + n_panels * avx2::kPanelRows;  // first output row for the dot kernel
      float result[avx2::kMaxTileRows];
      for (int64_t block = first; block < o_end; block += kOutputRowBlock) {
        const int64_t block_end = std::min(o_end, block + kOutputRowBlock);
        for (int64_t t = 0; t < n; t += avx2::kMaxTileRows) {
          const int tile = static_cast<int>(std::min<int64_t>(avx2::kMaxTileRows, n - t));
          for (int64_t o = block; o < block_end; ++o) {
            weight.kernel(weight.row(o), xq + t * x_stride, x_stride, tile, in, b != nullptr ? b[o] : 0.0f, result);
            for (int r = 0; r < tile; ++r) act(y).row(t + r)[o] = result[r];
          }
        }
      }
    }, weight.n_panels > 0 ? avx2::kPanelRows : 1);
  }

  void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, const KvBatch& batch, float freq_base) override {
    const int64_t half = head_dim / 2, n = x.rows();
    // cos/sin per (row, pair): [n, half] each, from the angles every backend uses (runtime/rope.h).
    const std::vector<float> inv_freq = rope_inv_freq(head_dim, freq_base);
    rope_cos_.resize(static_cast<size_t>(n * half));
    rope_sin_.resize(static_cast<size_t>(n * half));
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const float theta = rope_angle(batch.positions[static_cast<size_t>(t)], inv_freq[static_cast<size_t>(i)]);
        rope_cos_[static_cast<size_t>(t * half + i)] = std::cos(theta);
        rope_sin_[static_cast<size_t>(t * half + i)] = std::sin(theta);
      }
    }
    for_rows(n, x.cols(), [&](int64_t t) {
      const float* cos_t = rope_cos_.data() + t * half;
      const float* sin_t = rope_sin_.data() + t * half;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* a = act(x).row(t) + h * head_dim;
        float* b = a + half;
        int64_t i = 0;
        for (; i + 8 <= half; i += 8) {
          const __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
          const __m256 c = _mm256_loadu_ps(cos_t + i), s = _mm256_loadu_ps(sin_t + i);
          _mm256_storeu_ps(a + i, _mm256_fmsub_ps(va, c, _mm256_mul_ps(vb, s)));
          _mm256_storeu_ps(b + i, _mm256_fmadd_ps(va, s, _mm256_mul_ps(vb, c)));
        }
        for (; i < half; ++i) {
          const float va = a[i], vb = b[i];
          a[i] = va * cos_t[i] - vb * sin_t[i];
          b[i] = va * sin_t[i] + vb * cos_t[i];
        }
      }
    });
  }

  void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, const KvBatch& batch) override {
    CpuKvCache& c = kv(cache);
    for_rows(k.rows(), 2 * k.cols(), [&](int64_t t) {
      const int64_t slot = batch.slots[static_cast<size_t>(t)];
      store_kv_row(c, act(k).row(t), c.k_row(slot));
      store_kv_row(c, act(v).row(t), c.v_row(slot));
    });
  }

  // Flash-attention style: online softmax over key tiles, no [n, n_keys] score matrix. A work item
  // is (tile of up to kQueryTile query rows of one run, kv head): each K/V tile of the run's sequence is
  // converted to fp32 once (rows gathered through its block table) and serves every query row of the
  // tile and the n_head / n_head_kv query heads sharing that kv head, as one set of "slots" for
  // avx2::attend_key_tile. Key tiles start at position 0 of the sequence whatever the batch holds, so a
  // row's result does not depend on the other rows (batch invariance). Items run from the query tiles
  // with the most keys to the fewest, for load balance.
  void do_attention(const Activation& q, const KvCacheLayer& cache, const KvBatch& batch, const AttentionShape& shape,
                    Activation& out) override {
    const CpuKvCache& c = kv(cache);
    const int64_t d = shape.head_dim, group = shape.n_head / shape.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    struct QueryTile {
      const KvRun* run;
      int64_t t0, t_end;  // batch rows [t0, t_end) of the run
    };
    std::vector<QueryTile> tiles;
    for (const KvRun& run : batch.runs) {
      for (int64_t t0 = run.row0; t0 < run.row0 + run.n_rows; t0 += kQueryTile) {
        tiles.push_back({&run, t0, std::min(run.row0 + run.n_rows, t0 + kQueryTile)});
      }
    }
    auto last_position = [&](const QueryTile& tile) { return batch.positions[static_cast<size_t>(tile.t_end - 1)]; };
    std::stable_sort(tiles.begin(), tiles.end(),
                     [&](const QueryTile& a, const QueryTile& b) { return last_position(a) > last_position(b); });
    const auto n_tiles = static_cast<int64_t>(tiles.size());
    pool_.parallel_for(n_tiles * shape.n_head_kv, [&](int64_t item_begin, int64_t item_end) {
      constexpr int64_t kKeyTile = avx2::kAttentionKeyTile;
      const size_t max_slots = static_cast<size_t>(kQueryTile * group);
      std::vector<float> keys(static_cast<size_t>(kKeyTile * d)), values(static_cast<size_t>(kKeyTile * d));
      std::vector<float> acc(max_slots * static_cast<size_t>(d));  // [slot = query row * group + head, d]
      std::vector<float> running_max(max_slots), denom(max_slots), scores(max_slots * kKeyTile);
      std::vector<const float*> q_of_slot(max_slots);
      std::vector<int64_t> visible(max_slots);
      for (int64_t item = item_begin; item < item_end; ++item) {
        const QueryTile& tile = tiles[static_cast<size_t>(item / shape.n_head_kv)];
        const KvRun& run = *tile.run;
        const int64_t t0 = tile.t0, kv_head = item % shape.n_head_kv;
        const int64_t n_slots = (tile.t_end - t0) * group;
        // Slot s is query row t0 + s / group, head kv_head * group + s % group: its d values in q or out.
        auto head_of_slot = [&](auto& a, int64_t slot) {
          return act(a).row(t0 + slot / group) + (kv_head * group + slot % group) * d;
        };
        for (int64_t slot = 0; slot < n_slots; ++slot) q_of_slot[static_cast<size_t>(slot)] = head_of_slot(q, slot);
        std::fill(acc.begin(), acc.end(), 0.0f);
        std::fill(running_max.begin(), running_max.end(), -std::numeric_limits<float>::infinity());
        std::fill(denom.begin(), denom.end(), 0.0f);
        const avx2::AttentionSlots slots{n_slots,      q_of_slot.data(), visible.data(), acc.data(),
                                         running_max.data(), denom.data(), scores.data()};
        const int64_t n_keys_max = last_position(tile) + 1;  // keys seen by the tile's last row (causal)
        for (int64_t p0 = 0; p0 < n_keys_max; p0 += kKeyTile) {
          const int64_t n_tile = std::min(kKeyTile, n_keys_max - p0);
          for (int64_t j = 0; j < n_tile; ++j) {
            const int64_t row = batch.row_of(run, p0 + j);
            load_kv_head(c, c.k_row(row), kv_head, keys.data() + j * d);
            load_kv_head(c, c.v_row(row), kv_head, values.data() + j * d);
          }
          for (int64_t slot = 0; slot < n_slots; ++slot) {  // row t sees positions <= positions[t]
            visible[static_cast<size_t>(slot)] = batch.positions[static_cast<size_t>(t0 + slot / group)] + 1 - p0;
          }
          avx2::attend_key_tile(slots, keys.data(), values.data(), n_tile, d, scale);
        }
        for (int64_t slot = 0; slot < n_slots; ++slot) {
          const float inv = 1.0f / denom[static_cast<size_t>(slot)];
          const float* a = acc.data() + slot * d;
          float* o = head_of_slot(out, slot);
          for (int64_t i = 0; i < d; ++i) o[i] = a[i] * inv;
        }
      }
    });
  }

  void do_swiglu(const Activation& gate, const Activation& up, Activation& out) override {
    const float* g = act(gate).data.data();
    const float* u = act(up).data.data();
    float* o = act(out).data.data();
    for_elements(gate.rows() * gate.cols(), [&](int64_t begin, int64_t end) {
      int64_t i = begin;
      const __m256 one = _mm256_set1_ps(1.0f);
      for (; i + 8 <= end; i += 8) {  // g / (1 + e^-g) * u
        const __m256 vg = _mm256_loadu_ps(g + i);
        const __m256 e = avx2::exp8(_mm256_sub_ps(_mm256_setzero_ps(), vg));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(vg, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
      }
      for (; i < end; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    });
  }

  void do_add(Activation& x, const Activation& y) override {
    float* a = act(x).data.data();
    const float* b = act(y).data.data();
    for_elements(x.rows() * x.cols(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) a[i] += b[i];
    });
  }

 private:
  // fn(row) for each of n rows of `cols` elements; on the pool when the work is large enough.
  template <typename Fn>
  void for_rows(int64_t n, int64_t cols, Fn&& fn) {
    auto chunk = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(r);
    };
    if (n > 1 && n * cols >= kParallelElements) {
      pool_.parallel_for(n, chunk);
    } else {
      chunk(0, n);
    }
  }
  template <typename Fn>
  void for_elements(int64_t n, Fn&& fn) {
    if (n >= kParallelElements) {
      pool_.parallel_for(n, fn, 64);
    } else {
      fn(0, n);
    }
  }

  CpuIsa isa_;
  ThreadPool pool_;
  std::vector<uint8_t> scratch_;  // quantized activations of the current matmul
  std::vector<float> rope_cos_, rope_sin_;
};

}  // namespace

std::unique_ptr<Backend> make_avx2_backend(int n_threads, CpuIsa isa) {
  return std::make_unique<Avx2Backend>(n_threads, isa);
}

}  // namespace xelm::cpu
