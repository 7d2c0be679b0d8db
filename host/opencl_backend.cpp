// opencl_backend.cpp — Backend on an OpenCL device. Every op is a kernel from kernels/*.cl enqueued
// on one in-order queue; nothing waits for the device except synchronize() and read().
//
// Memory: activations are fp32 cl::Buffers [capacity, cols]; matrices keep their GGUF bytes (one
// buffer per row range of at most the max allocation), used in place (CL_MEM_USE_HOST_PTR) on
// unified memory when the mapped pointer is 4096-aligned and the size a multiple of 64, copied
// otherwise; vectors (norm weights, biases) are dequantized to fp32 buffers; KV caches are
// [n_ctx, n_head_kv * head_dim] buffers of F32, F16 or Q8_0.
// Host data given to a non-blocking write is staged in `staging_` until the next wait. add() is
// deferred to the next op so that the forward pass's `add; rms_norm` runs as one kernel.
//
// Products: decode and small batches run kernel_matmul_<type>_f32 (matmul.cl), or with the int8
// fast path kernel_matmul_{q8_0,q4_0}_q8 on activations quantized once per product. From
// gemm_min_tokens activation rows (tuning table) the prefill GEMM path dequantizes the weight into
// an f32 scratch matrix, a block of rows at a time (gemm_scratch_mb bounds it), and multiplies it
// with CLBlast's SGEMM; if CLBlast fails on the device (its kernels do not build, say), the path
// is switched off with one warning and the kernels above do the work.
//
// Fused ops (kernels/fused.cl): a decoded token (one row) runs each layer in six launches —
// norm+q|k|v product, q/k norm+rope+KV store, attention (two when split over the keys), attn_output
// product added into the residual, norm+gate|up+SiLU product, ffn_down product added into the
// residual. Prefill batches take the unfused ops (the tiled kernels or the GEMM path), except
// rope_store_kv.
#include "host/opencl_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <clblast.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "host/build_options.h"
#include "host/program_cache.h"
#include "runtime/error.h"
#include "runtime/rope.h"

namespace xelm::opencl {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uintptr_t kZeroCopyAlignment = 4096;

// Program files, each built with common.cl prepended.
constexpr const char* kProgramFiles[] = {"matmul.cl",      "get_rows.cl", "norm.cl",      "rope.cl", "elementwise.cl",
                                         "kv_cache.cl",    "attention.cl", "gemm.cl",     "fused.cl"};

std::string kernel_type_name(GgmlType type) {
  std::string name(type_traits(type).name);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

bool is_weight_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q4_0: case GgmlType::Q4_1:
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    case GgmlType::Q8_1: case GgmlType::Q8_K:
      break;
  }
  return false;
}

// Elements one work-item dequantizes at a time (CHUNK_* in common.cl).
int64_t chunk_elements(GgmlType type) {
  const int64_t block = type_traits(type).block_size;
  return block == 1 ? 1 : 32;
}

class ClActivation final : public Activation {
 public:
  ClActivation(int64_t rows, int64_t cols, cl::Buffer b) : Activation(rows, cols), buffer(std::move(b)) {}
  cl::Buffer buffer;  // [capacity, cols] f32
};

class ClWeight final : public Weight {
 public:
  struct Piece {
    cl::Buffer buffer;  // holds rows [row0, row0 + rows) of the tensor, raw GGUF bytes, from byte `offset`
    uint64_t offset;    // > 0 when the buffer maps the page-aligned region around the rows in place
    int64_t row0, rows;
  };
  explicit ClWeight(const gguf::TensorInfo& info) : Weight(info) {}
  std::vector<Piece> pieces;  // matrices
  size_t row_bytes = 0;
  cl::Buffer dense;           // vectors, as f32 [in_features]
};

class ClKvCache final : public KvCacheLayer {
 public:
  ClKvCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, GgmlType type, cl::Buffer k_buf, cl::Buffer v_buf)
      : KvCacheLayer(n_ctx, n_head_kv, head_dim, type), k(std::move(k_buf)), v(std::move(v_buf)) {}
  cl::Buffer k, v;  // [n_ctx, n_head_kv * head_dim] of type()
};

const cl::Buffer& buf(const Activation& a) { return static_cast<const ClActivation&>(a).buffer; }
const ClWeight& wt(const Weight& w) { return static_cast<const ClWeight&>(w); }

bool env_is(const char* name, const char* value) {
  const char* env = std::getenv(name);
  return env != nullptr && std::strcmp(env, value) == 0;
}

uint64_t max_alloc_cap(const DeviceInfo& info, uint64_t requested) {
  uint64_t cap = info.max_alloc_bytes;
  if (const char* env = std::getenv("XELM_OPENCL_MAX_ALLOC_MB"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (end == env || *end != '\0' || mb == 0) {
      throw Error(fmt::format("XELM_OPENCL_MAX_ALLOC_MB='{}' is not a positive number of MiB", env));
    }
    cap = std::min<uint64_t>(cap, mb * kMiB);
  }
  if (requested != 0) cap = std::min(cap, requested);
  return cap;
}

std::string option_or_env(const std::optional<std::string>& option, const char* env, const char* fallback) {
  if (option) return *option;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? value : fallback;
}

int gemm_threshold(const std::optional<int>& option, int table) {
  if (option) return std::max(0, *option);
  if (const char* env = std::getenv("XELM_OPENCL_GEMM_MIN_TOKENS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || n < 0 || n > 1000000) {
      throw Error(fmt::format("XELM_OPENCL_GEMM_MIN_TOKENS='{}' is not a token count (0 = off)", env));
    }
    return static_cast<int>(n);
  }
  return table;
}

class OpenClBackendImpl final : public OpenClBackend {
 public:
  OpenClBackendImpl(const DiscoveredDevice& device, const OpenClOptions& options)
      : device_(device.device),
        info_(device.info),
        context_(device_),
        queue_(context_, device_, options.profile_kernels ? cl::QueueProperties::Profiling : cl::QueueProperties::None),
        profile_kernels_(options.profile_kernels),
        tuning_(select_tuning(info_)),
        fast_(select_fast_paths(info_, tuning_, option_or_env(options.fast_paths, "XELM_OPENCL_FAST_PATHS", "auto"))),
        options_string_(opencl::build_options(tuning_, fast_)),
        gemm_min_tokens_(gemm_threshold(options.gemm_min_tokens, tuning_.gemm_min_tokens)),
        gemm_fault_(options.gemm_fault_for_testing),
        max_alloc_(max_alloc_cap(info_, options.max_alloc_bytes)),
        fused_(options.fused && !env_is("XELM_OPENCL_FUSED", "0")),
        cache_(context_, device_, info_, options.cache_dir.value_or(default_kernel_cache_dir())) {
    for (const char* file : kProgramFiles) {
      cl::Program program = cache_.build(file, options_string_);
      std::vector<cl::Kernel> kernels;
      program.createKernels(&kernels);
      for (cl::Kernel& k : kernels) kernels_.emplace(k.getInfo<CL_KERNEL_FUNCTION_NAME>(), k);
    }
    dummy_ = cl::Buffer(context_, CL_MEM_READ_WRITE, sizeof(float));
    spdlog::debug("OpenCL: {} on {}, options '{}', fast paths {}, GEMM from {} tokens", info_.name,
                  info_.platform_name, options_string_, fast_.describe(), gemm_min_tokens_);
  }

  std::string name() const override { return "opencl:" + info_.name; }
  bool supports(GgmlType weight_type) const override { return is_weight_type(weight_type); }
  const DeviceInfo& device_info() const override { return info_; }
  const OpenClCounters& counters() const override { return counters_; }
  void reset_counters() override { counters_ = {}; }
  std::map<std::string, KernelTime> take_kernel_times() override {
    harvest_kernel_events();
    return std::exchange(kernel_times_, {});
  }
  std::string build_options() const override { return options_string_; }
  const ProgramCacheStats& program_cache_stats() const override { return cache_.stats(); }
  const FastPaths& fast_paths() const override { return fast_; }
  int gemm_min_tokens() const override { return gemm_min_tokens_; }

  std::unique_ptr<Weight> prepare_weight(const gguf::TensorInfo& tensor) override {
    if (!is_weight_type(tensor.type)) {
      throw Error(fmt::format("tensor '{}': type {} is not supported by the OpenCL backend", tensor.name,
                              type_traits(tensor.type).name));
    }
    auto w = std::make_unique<ClWeight>(tensor);
    try {
      if (tensor.shape.size() == 1) {
        std::vector<float> values(static_cast<size_t>(tensor.shape[0]));
        dequantize_row(tensor.type, tensor.data, values.data(), tensor.shape[0]);
        w->dense = cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(float),
                              values.data());
        counters_.bytes_to_device += values.size() * sizeof(float);
        return w;
      }
      w->row_bytes = row_bytes(tensor.type, w->in_features());
      const int64_t rows = tensor.n_elements() / w->in_features();
      // In place on unified memory: the buffer maps the page-aligned region around the rows
      // (CL_MEM_USE_HOST_PTR needs a 4096-aligned pointer and a size that is a multiple of 64; whole
      // pages satisfy both and stay inside the file mapping), and kernels start at `offset`.
      const bool in_place = info_.unified_memory && max_alloc_ > 2 * kZeroCopyAlignment;
      const uint64_t piece_limit = in_place ? max_alloc_ - 2 * kZeroCopyAlignment : max_alloc_;
      const int64_t rows_per_piece = static_cast<int64_t>(piece_limit / w->row_bytes);
      if (rows_per_piece < 1) {
        throw Error(fmt::format("tensor '{}': one row ({} bytes) exceeds the device's max allocation ({} bytes)",
                                tensor.name, w->row_bytes, max_alloc_));
      }
      for (int64_t row0 = 0; row0 < rows; row0 += rows_per_piece) {
        const int64_t n = std::min(rows_per_piece, rows - row0);
        const size_t bytes = static_cast<size_t>(n) * w->row_bytes;
        const uint8_t* host = tensor.data + static_cast<size_t>(row0) * w->row_bytes;
        if (in_place) {
          const uintptr_t address = reinterpret_cast<uintptr_t>(host);
          const uintptr_t page = address & ~(kZeroCopyAlignment - 1);
          const size_t offset = address - page;
          const size_t span = (offset + bytes + kZeroCopyAlignment - 1) & ~(kZeroCopyAlignment - 1);
          try {
            w->pieces.push_back({cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, span,
                                            reinterpret_cast<void*>(page)),
                                 offset, row0, n});
            counters_.weight_bytes_zero_copy += bytes;
            continue;
          } catch (const cl::Error& e) {
            spdlog::debug("tensor '{}': in-place buffer refused ({}), copying", tensor.name, e.err());
          }
        }
        w->pieces.push_back({cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                        const_cast<uint8_t*>(host)),
                             0, row0, n});
        counters_.bytes_to_device += bytes;
        counters_.weight_bytes_copied += bytes;
      }
    } catch (const cl::Error& e) {
      throw Error(fmt::format("tensor '{}': OpenCL buffer creation failed on {}: {} ({})", tensor.name, info_.name,
                              e.what(), e.err()));
    }
    return w;
  }

  std::unique_ptr<Activation> new_activation(int64_t rows, int64_t cols) override {
    return std::make_unique<ClActivation>(rows, cols, new_buffer(static_cast<uint64_t>(rows * cols) * sizeof(float),
                                                                 "activation"));
  }

  std::unique_ptr<KvCacheLayer> new_kv_cache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                                             GgmlType type) override {
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::Q8_0) {
      throw Error(fmt::format("KV cache type {} is not supported (use f16, f32 or q8_0)", type_traits(type).name));
    }
    if (head_dim > kMaxHeadDim || head_dim % 2 != 0) {
      throw Error(fmt::format("head_dim {} is not supported by the OpenCL attention kernels (even, at most {})",
                              head_dim, kMaxHeadDim));
    }
    const uint64_t bytes = static_cast<uint64_t>(n_ctx) * row_bytes(type, n_head_kv * head_dim);
    return std::make_unique<ClKvCache>(n_ctx, n_head_kv, head_dim, type, new_buffer(bytes, "KV cache"),
                                       new_buffer(bytes, "KV cache"));
  }

  void synchronize() override {
    flush_pending_add();
    guarded("finish", [&] { queue_.finish(); });
    ++counters_.blocking_syncs;
    staging_.clear();
  }

 protected:
  void do_write(Activation& dst, std::span<const float> src) override {
    flush_pending_add();
    upload(buf(dst), src.data(), src.size_bytes());
  }

  void do_read(const Activation& src, std::span<float> dst) override {
    flush_pending_add();
    guarded("read", [&] { queue_.enqueueReadBuffer(buf(src), CL_TRUE, 0, dst.size_bytes(), dst.data()); });
    ++counters_.blocking_syncs;
    counters_.bytes_from_device += dst.size_bytes();
    staging_.clear();
  }

  void do_copy_rows(const Activation& src, int64_t src_row, Activation& dst, int64_t dst_row, int64_t n) override {
    flush_pending_add();
    const size_t row = static_cast<size_t>(src.cols()) * sizeof(float);
    guarded("copy_rows", [&] {
      queue_.enqueueCopyBuffer(buf(src), buf(dst), static_cast<size_t>(src_row) * row,
                               static_cast<size_t>(dst_row) * row, static_cast<size_t>(n) * row);
    });
    ++counters_.buffer_copies;
  }

  void do_get_rows(const Weight& table, std::span<const int32_t> tokens, Activation& out) override {
    flush_pending_add();
    const ClWeight& w = wt(table);
    const cl::Buffer& token_buffer = reserve(token_buffer_, tokens.size_bytes(), "token ids");
    upload(token_buffer, tokens.data(), tokens.size_bytes());
    const std::string kernel = "kernel_get_rows_" + kernel_type_name(table.type()) + "_f32";
    const size_t chunks = static_cast<size_t>(w.in_features() / chunk_elements(table.type()));
    for (const ClWeight::Piece& p : w.pieces) {
      launch(kernel, cl::NDRange(chunks, tokens.size()), cl::NullRange, p.buffer, cl_ulong{p.offset}, cl_ulong{w.row_bytes},
             cl_int(w.in_features()), cl_int(p.row0), cl_int(p.rows), token_buffer, buf(out));
    }
  }

  // A pending `x += y` on this x is fused into the norm (one launch instead of two).
  void do_rms_norm(const Activation& x, const Weight& weight, float eps, Activation& out) override {
    const int64_t group = weight.in_features();
    const size_t wg = static_cast<size_t>(norm_wg());
    const cl::NDRange global(wg * static_cast<size_t>(x.cols() / group), static_cast<size_t>(x.rows()));
    if (pending_add_ && (*pending_add_)() == buf(x)() && buf(out)() != buf(x)() &&
        pending_add_elements_ == static_cast<size_t>(x.rows() * x.cols())) {
      const cl::Buffer y = std::move(*pending_add_y_);
      pending_add_.reset();
      pending_add_y_.reset();
      launch("kernel_add_rms_norm_f32", global, cl::NDRange(wg, 1), buf(x), y, wt(weight).dense, buf(out),
             cl_int(x.cols()), cl_int(group), cl_float(eps));
      return;
    }
    flush_pending_add();
    launch("kernel_rms_norm_f32", global, cl::NDRange(wg, 1), buf(x), wt(weight).dense, buf(out), cl_int(x.cols()),
           cl_int(group), cl_float(eps));
  }

  void do_matmul(const Weight& w, const Activation& x, Activation& y, const Weight* bias) override {
    flush_pending_add();
    const ClWeight& cw = wt(w);
    if (gemm_min_tokens_ > 0 && x.rows() >= gemm_min_tokens_ && gemm_matmul(cw, x, y, bias)) return;
    const bool int8 = fast_.int8 && (w.type() == GgmlType::Q8_0 || w.type() == GgmlType::Q4_0);
    if (int8) quantize_activations(x);
    const std::string kernel = "kernel_matmul_" + kernel_type_name(w.type()) + (int8 ? "_q8" : "_f32");
    const size_t wg = static_cast<size_t>(matmul_wg());
    const size_t token_groups = static_cast<size_t>((x.rows() + matmul_tokens() - 1) / matmul_tokens());
    const cl::Buffer& bias_buffer = bias != nullptr ? wt(*bias).dense : dummy_;
    for (const ClWeight::Piece& p : cw.pieces) {
      const size_t row_groups = static_cast<size_t>((p.rows + tuning_.matmul_rows - 1) / tuning_.matmul_rows);
      const cl::NDRange global(wg * row_groups, token_groups), local(wg, 1);
      if (int8) {
        launch(kernel, global, local, p.buffer, cl_ulong{p.offset}, cl_ulong{cw.row_bytes}, cl_int(w.in_features()),
               cl_int(p.row0), cl_int(p.rows), act_q_.buffer, act_d_.buffer, buf(y), cl_int(y.cols()), cl_int(x.rows()),
               bias_buffer, cl_int(bias != nullptr));
      } else {
        launch(kernel, global, local, p.buffer, cl_ulong{p.offset}, cl_ulong{cw.row_bytes}, cl_int(w.in_features()),
               cl_int(p.row0), cl_int(p.rows), buf(x), buf(y), cl_int(y.cols()), cl_int(x.rows()), bias_buffer,
               cl_int(bias != nullptr));
      }
    }
  }

  void do_rope(Activation& x, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) override {
    flush_pending_add();
    launch("kernel_rope_neox_f32",
           cl::NDRange(static_cast<size_t>(head_dim / 2), static_cast<size_t>(n_heads), static_cast<size_t>(x.rows())),
           cl::NullRange, buf(x), cl_int(x.cols()), cl_int(head_dim), cl_int(pos0), inv_freq(head_dim, freq_base));
  }

  void do_store_kv(KvCacheLayer& cache, const Activation& k, const Activation& v, int64_t pos0) override {
    flush_pending_add();
    auto& c = static_cast<ClKvCache&>(cache);
    const int64_t width = c.n_head_kv() * c.head_dim();
    const int64_t items = c.type() == GgmlType::Q8_0 ? width / 32 : width;
    launch("kernel_store_kv_" + kernel_type_name(c.type()),
           cl::NDRange(static_cast<size_t>(items), static_cast<size_t>(k.rows())), cl::NullRange, buf(k), buf(v), c.k,
           c.v, cl_int(width), cl_int(pos0));
  }

  void do_attention(const Activation& q, const KvCacheLayer& cache, int64_t pos0, const AttentionShape& shape,
                    Activation& out) override {
    flush_pending_add();
    const auto& c = static_cast<const ClKvCache&>(cache);
    const int64_t n_q = q.rows(), d = shape.head_dim;
    // Splits over the keys: enough work-groups to fill the device (flash decoding), none when the
    // query rows and heads already do.
    const int64_t n_keys = pos0 + n_q;
    const int64_t max_splits = (n_keys + tuning_.attn_split_len - 1) / tuning_.attn_split_len;
    const int64_t wanted_groups = 4 * static_cast<int64_t>(info_.compute_units);
    const int64_t n_splits = std::clamp<int64_t>((wanted_groups + n_q * shape.n_head - 1) / (n_q * shape.n_head), 1,
                                                 max_splits);
    const int64_t split_len = (n_keys + n_splits - 1) / n_splits;
    const size_t part_floats = static_cast<size_t>(n_q * shape.n_head * n_splits * d);
    if (n_splits > 1) {
      reserve(part_acc_, part_floats * sizeof(float), "attention partials");
      reserve(part_ml_, part_floats / static_cast<size_t>(d) * 2 * sizeof(float), "attention partials");
    }
    const size_t wg = static_cast<size_t>(attn_wg());
    launch("kernel_attention_" + kernel_type_name(c.type()) + "_f32",
           cl::NDRange(wg * static_cast<size_t>(n_splits), static_cast<size_t>(shape.n_head), static_cast<size_t>(n_q)),
           cl::NDRange(wg, 1, 1), buf(q), c.k, c.v, buf(out), n_splits > 1 ? part_acc_.buffer : dummy_,
           n_splits > 1 ? part_ml_.buffer : dummy_, cl_int(shape.n_head), cl_int(shape.n_head_kv), cl_int(d), cl_int(pos0),
           cl_int(split_len), cl_float(1.0f / std::sqrt(static_cast<float>(d))));
    if (n_splits > 1) {
      launch("kernel_attention_reduce_f32",
             cl::NDRange(static_cast<size_t>(d), static_cast<size_t>(shape.n_head), static_cast<size_t>(n_q)),
             cl::NullRange, part_acc_.buffer, part_ml_.buffer, buf(out), cl_int(n_splits));
    }
  }

  void do_swiglu(const Activation& gate, const Activation& up, Activation& out) override {
    flush_pending_add();
    launch("kernel_swiglu_f32", cl::NDRange(static_cast<size_t>(gate.rows() * gate.cols())), cl::NullRange, buf(gate),
           buf(up), buf(out));
  }

  // Deferred until the next op, which fuses it when that op is rms_norm of x (see rms_norm).
  void do_add(Activation& x, const Activation& y) override {
    flush_pending_add();
    pending_add_ = buf(x);
    pending_add_y_ = buf(y);
    pending_add_elements_ = static_cast<size_t>(x.rows() * x.cols());
  }

  // Decode: one kernel_matvec_f32 launch for up to three products of one row; else the unfused ops.
  void do_norm_matmul(const Activation& x, const Weight& norm, float eps, Activation& h,
                      std::span<const Product> products) override {
    if (!fused_ || x.rows() != 1 || !fusable(x, products)) {
      Backend::do_norm_matmul(x, norm, eps, h, products);
      return;
    }
    flush_pending_add();
    launch_matvec(x, &norm, eps, false, products);
  }

  // Any batch: one kernel_rope_store_<kv> launch (Q8_0 caches need heads of whole 32-element blocks).
  void do_rope_store_kv(Activation& q, Activation& k, const Activation& v, const Weight* q_norm,
                        const Weight* k_norm, float eps, KvCacheLayer& cache, int64_t pos0,
                        const AttentionShape& shape, float freq_base) override {
    auto& c = static_cast<ClKvCache&>(cache);
    const int64_t d = shape.head_dim;
    if (!fused_ || (c.type() == GgmlType::Q8_0 && d % 32 != 0)) {
      Backend::do_rope_store_kv(q, k, v, q_norm, k_norm, eps, cache, pos0, shape, freq_base);
      return;
    }
    flush_pending_add();
    const size_t wg = static_cast<size_t>(norm_wg());
    launch("kernel_rope_store_" + kernel_type_name(c.type()),
           cl::NDRange(wg, static_cast<size_t>(shape.n_head + 2 * shape.n_head_kv), static_cast<size_t>(q.rows())),
           cl::NDRange(wg, 1, 1), buf(q), buf(k), buf(v), q_norm != nullptr ? wt(*q_norm).dense : dummy_,
           k_norm != nullptr ? wt(*k_norm).dense : dummy_, cl_int(q_norm != nullptr), cl_int(k_norm != nullptr),
           cl_float(eps), c.k, c.v, cl_int(shape.n_head), cl_int(shape.n_head_kv), cl_int(d), cl_int(pos0),
           inv_freq(d, freq_base));
  }

  // Decode: the product adds itself into x (one kernel_matvec_f32 launch); else matmul, then add.
  void do_matmul_add(const Weight& w, const Activation& a, Activation& x, Activation& scratch) override {
    const Product product{&w, nullptr, &x};
    if (!fused_ || a.rows() != 1 || !fusable(a, std::span<const Product>(&product, 1))) {
      Backend::do_matmul_add(w, a, x, scratch);
      return;
    }
    flush_pending_add();
    launch_matvec(a, nullptr, 0.0f, true, std::span<const Product>(&product, 1));
  }

  // Decode with gate and up of one type: one kernel_norm_swiglu_f32 launch; else the unfused ops.
  void do_norm_swiglu(const Activation& x, const Weight& norm, float eps, const Weight& w_gate,
                      const Weight& w_up, Activation& h, Activation& up, Activation& out) override {
    const Product gate{&w_gate, nullptr, &out};
    if (!fused_ || x.rows() != 1 || w_gate.type() != w_up.type() || !fusable(x, std::span<const Product>(&gate, 1)) ||
        wt(w_up).pieces.size() != 1) {
      Backend::do_norm_swiglu(x, norm, eps, w_gate, w_up, h, up, out);
      return;
    }
    flush_pending_add();
    const ClWeight& g = wt(w_gate);
    const ClWeight& u = wt(w_up);
    const size_t groups = static_cast<size_t>((w_gate.out_features() + tuning_.matmul_rows - 1) / tuning_.matmul_rows);
    const size_t wg = static_cast<size_t>(matmul_wg());
    launch("kernel_norm_swiglu_f32", cl::NDRange(wg * groups), cl::NDRange(wg), buf(x), wt(norm).dense, cl_float(eps),
           cl_int(x.cols()), g.pieces[0].buffer, cl_ulong{g.pieces[0].offset}, u.pieces[0].buffer,
           cl_ulong{u.pieces[0].offset}, cl_ulong{g.row_bytes}, cl_int(static_cast<int>(w_gate.type())),
           cl_int(w_gate.out_features()), buf(out));
  }

 private:
  int matmul_wg() const { return tuning_.matmul_wg; }
  int matmul_tokens() const { return tuning_.matmul_tokens; }
  int norm_wg() const { return tuning_.norm_wg; }
  int attn_wg() const { return tuning_.attn_wg; }

  // Int8 fast path: x quantized per 32-element block into act_q_ (int8) and act_d_ (scales).
  void quantize_activations(const Activation& x) {
    const size_t elements = static_cast<size_t>(x.rows() * x.cols());
    reserve(act_q_, elements, "int8 activations");
    reserve(act_d_, elements / 32 * sizeof(float), "int8 activation scales");
    launch("kernel_quantize_act_q8", cl::NDRange(static_cast<size_t>(x.cols() / 32), static_cast<size_t>(x.rows())),
           cl::NullRange, buf(x), act_q_.buffer, act_d_.buffer, cl_int(x.cols()));
  }

  // Prefill GEMM path: y = x W^T (+ bias), W dequantized into gemm_scratch_ a block of rows at a time
  // and multiplied by CLBlast's SGEMM (row major: C[tokens, rows] = A[tokens, in] B[rows, in]^T,
  // written straight into y's columns of the block). Returns false when CLBlast fails; the path is
  // then off for this backend, and the caller's kernel recomputes every output.
  bool gemm_matmul(const ClWeight& w, const Activation& x, Activation& y, const Weight* bias) {
    const int64_t n_in = w.in_features(), n_out = y.cols(), n_tok = x.rows();
    const uint64_t row_floats_bytes = static_cast<uint64_t>(n_in) * sizeof(float);
    const uint64_t budget = std::min<uint64_t>(static_cast<uint64_t>(tuning_.gemm_scratch_mb) * kMiB, max_alloc_);
    int64_t max_piece_rows = 0;
    for (const ClWeight::Piece& p : w.pieces) max_piece_rows = std::max(max_piece_rows, p.rows);
    const int64_t block_rows = std::clamp<int64_t>(static_cast<int64_t>(budget / row_floats_bytes), 1, max_piece_rows);
    const uint64_t scratch_bytes = static_cast<uint64_t>(block_rows) * row_floats_bytes;
    const cl::Buffer& scratch = reserve(gemm_scratch_, scratch_bytes, "GEMM weight scratch");
    const std::string dequant = "kernel_dequant_" + kernel_type_name(w.type()) + "_f32";
    const size_t chunks = static_cast<size_t>(n_in / chunk_elements(w.type()));
    cl_command_queue queue = queue_();
    for (const ClWeight::Piece& p : w.pieces) {
      for (int64_t r0 = 0; r0 < p.rows; r0 += block_rows) {
        const int64_t nr = std::min(block_rows, p.rows - r0);
        launch(dequant, cl::NDRange(chunks, static_cast<size_t>(nr)), cl::NullRange, p.buffer, cl_ulong{p.offset},
               cl_ulong{w.row_bytes}, cl_int(n_in), cl_int(r0), scratch);
        clblast::StatusCode status = clblast::StatusCode::kSuccess;
        try {
          const auto m = static_cast<size_t>(n_tok), n = static_cast<size_t>(nr), k = static_cast<size_t>(n_in);
          const auto c_offset = static_cast<size_t>(p.row0 + r0), c_ld = static_cast<size_t>(n_out);
          // CLBlast's padded copies of A/B go to one buffer of ours: left to itself it allocates
          // them per call, and with a whole prompt's GEMMs queued they all stay alive at once.
          size_t temp_bytes = 0;
          status = clblast::GemmTempBufferSize<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                                      clblast::Transpose::kYes, m, n, k, 0, k, 0, k, c_offset, c_ld,
                                                      &queue, temp_bytes);
          if (status == clblast::StatusCode::kSuccess) {
            const cl_mem temp = temp_bytes > 0 ? reserve(gemm_temp_, temp_bytes, "CLBlast GEMM temporary")() : nullptr;
            status = clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kYes,
                                          m, n, k, 1.0f, buf(x)(), 0, k, scratch(), 0, k, 0.0f, buf(y)(), c_offset,
                                          c_ld, &queue, gemm_event(), temp);
          }
        } catch (const std::exception& e) {
          spdlog::debug("CLBlast GEMM threw: {}", e.what());
          status = clblast::StatusCode::kUnknownError;
        }
        if (gemm_fault_) status = clblast::StatusCode::kOpenCLBuildProgramFailure;
        if (status != clblast::StatusCode::kSuccess) {
          spdlog::warn("OpenCL: CLBlast GEMM failed on {} (status {}); prefill uses xelm's matmul kernels", info_.name,
                       static_cast<int>(status));
          gemm_min_tokens_ = 0;
          return false;
        }
        ++counters_.gemm_calls;
      }
    }
    if (bias != nullptr) {
      launch("kernel_add_bias_f32", cl::NDRange(static_cast<size_t>(n_out), static_cast<size_t>(n_tok)), cl::NullRange,
             buf(y), wt(*bias).dense, cl_int(n_out), cl_int(0));
    }
    return true;
  }

  void flush_pending_add() {
    if (!pending_add_) return;
    const cl::Buffer x = std::move(*pending_add_), y = std::move(*pending_add_y_);
    pending_add_.reset();
    pending_add_y_.reset();
    launch("kernel_add_f32", cl::NDRange(pending_add_elements_), cl::NullRange, x, y);
  }

  // Whether kernel_matvec_f32 can compute these products of x (shapes are checked by Backend): each
  // weight one buffer (not split by rows), each output another buffer than x.
  bool fusable(const Activation& x, std::span<const Product> products) const {
    for (const Product& p : products) {
      if (wt(*p.weight).pieces.size() != 1 || buf(*p.out)() == buf(x)()) return false;
    }
    return true;
  }

  // y_s (+)= W_s · h for the products s of the one row of x, h = rms_norm(x) * norm when norm is given,
  // else x; `accumulate` adds into y_s (the residual add). Segments beyond products.size() are empty.
  void launch_matvec(const Activation& x, const Weight* norm, float eps, bool accumulate,
                     std::span<const Product> products) {
    const size_t rows_per_group = static_cast<size_t>(tuning_.matmul_rows);
    size_t groups = 0;
    for (const Product& p : products) groups += (static_cast<size_t>(p.weight->out_features()) + rows_per_group - 1) / rows_per_group;
    const size_t wg = static_cast<size_t>(matmul_wg());
    const auto arg = [&](cl::Kernel& k, cl_uint& index, const Product* p) {
      const ClWeight* w = p != nullptr ? &wt(*p->weight) : nullptr;
      k.setArg(index++, w != nullptr ? w->pieces[0].buffer : dummy_);
      k.setArg(index++, cl_ulong{w != nullptr ? w->pieces[0].offset : 0});
      k.setArg(index++, cl_ulong{w != nullptr ? w->row_bytes : 0});
      k.setArg(index++, cl_int(w != nullptr ? static_cast<int>(p->weight->type()) : 0));
      k.setArg(index++, cl_int(w != nullptr ? p->weight->out_features() : 0));
      k.setArg(index++, p != nullptr ? buf(*p->out) : dummy_);
      k.setArg(index++, p != nullptr && p->bias != nullptr ? wt(*p->bias).dense : dummy_);
      k.setArg(index++, cl_int(p != nullptr && p->bias != nullptr));
    };
    cl::Kernel& k = kernel("kernel_matvec_f32");
    guarded("kernel_matvec_f32", [&] {
      cl_uint index = 0;
      k.setArg(index++, buf(x));
      k.setArg(index++, norm != nullptr ? wt(*norm).dense : dummy_);
      k.setArg(index++, cl_float(eps));
      k.setArg(index++, cl_int(norm != nullptr));
      k.setArg(index++, cl_int(accumulate));
      k.setArg(index++, cl_int(x.cols()));
      for (size_t s = 0; s < 3; ++s) arg(k, index, s < products.size() ? &products[s] : nullptr);
      queue_.enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(wg * groups), cl::NDRange(wg), nullptr,
                                  profiled_event("kernel_matvec_f32"));
    });
    ++counters_.kernel_launches;
  }

  cl::Kernel& kernel(const std::string& name) {
    const auto it = kernels_.find(name);
    if (it == kernels_.end()) throw Error(fmt::format("internal: no OpenCL kernel {}", name));
    return it->second;
  }

  template <typename F>
  void guarded(const char* what, F&& f) {
    try {
      f();
    } catch (const cl::Error& e) {
      throw Error(fmt::format("OpenCL {} failed on {}: {} ({})", what, info_.name, e.what(), e.err()));
    }
  }

  // A device buffer reallocated only when a request outgrows it.
  struct GrowingBuffer {
    cl::Buffer buffer;
    uint64_t bytes = 0;
  };
  const cl::Buffer& reserve(GrowingBuffer& b, uint64_t bytes, const char* what) {
    if (b.bytes < bytes) {
      b.buffer = new_buffer(bytes, what);
      b.bytes = bytes;
    }
    return b.buffer;
  }

  cl::Buffer new_buffer(uint64_t bytes, const char* what) {
    if (bytes > max_alloc_) {
      throw Error(fmt::format("{} of {} bytes exceeds the max allocation of {} ({} bytes)", what, bytes, info_.name,
                              max_alloc_));
    }
    cl::Buffer b;
    guarded("buffer allocation", [&] { b = cl::Buffer(context_, CL_MEM_READ_WRITE, std::max<uint64_t>(bytes, 4)); });
    return b;
  }

  // Non-blocking host → device copy; the bytes are staged until the next wait.
  void upload(const cl::Buffer& dst, const void* src, size_t bytes) {
    std::vector<uint8_t>& staged = staging_.emplace_back(bytes);
    std::memcpy(staged.data(), src, bytes);
    guarded("write", [&] { queue_.enqueueWriteBuffer(dst, CL_FALSE, 0, bytes, staged.data()); });
    counters_.bytes_to_device += bytes;
  }

  template <typename... Args>
  void launch(const std::string& name, const cl::NDRange& global, const cl::NDRange& local, const Args&... args) {
    cl::Kernel& k = kernel(name);
    guarded(name.c_str(), [&] {
      cl_uint index = 0;
      (k.setArg(index++, args), ...);
      queue_.enqueueNDRangeKernel(k, cl::NullRange, global, local, nullptr, profiled_event(name));
    });
    ++counters_.kernel_launches;
  }

  // With profile_kernels: a new event slot recorded under `name`, to pass to an enqueue; else null.
  cl::Event* profiled_event(const std::string& name) {
    if (!profile_kernels_) return nullptr;
    if (kernel_events_.size() >= kMaxPendingEvents) harvest_kernel_events();
    return &kernel_events_.emplace_back(name, cl::Event()).second;
  }

  cl_event* gemm_event() {
    cl::Event* event = profiled_event("clblast_sgemm");
    return event != nullptr ? &(*event)() : nullptr;
  }

  // Adds the device times of the recorded events to kernel_times_ (waits for them).
  void harvest_kernel_events() {
    guarded("profiling", [&] {
      for (auto& [name, event] : kernel_events_) {
        if (event() == nullptr) continue;  // the enqueue threw
        event.wait();
        KernelTime& t = kernel_times_[name];
        t.total_ns += event.getProfilingInfo<CL_PROFILING_COMMAND_END>() - event.getProfilingInfo<CL_PROFILING_COMMAND_START>();
        ++t.calls;
      }
    });
    kernel_events_.clear();
  }

  // The RoPE frequencies every backend uses (runtime/rope.h), uploaded once per (head_dim, base).
  const cl::Buffer& inv_freq(int64_t head_dim, float freq_base) {
    auto& slot = inv_freq_[{head_dim, freq_base}];
    if (slot() == nullptr) {
      std::vector<float> values = rope_inv_freq(head_dim, freq_base);
      guarded("rope table", [&] {
        slot = cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(float),
                          values.data());
      });
      counters_.bytes_to_device += values.size() * sizeof(float);
    }
    return slot;
  }

  cl::Device device_;
  DeviceInfo info_;
  cl::Context context_;
  cl::CommandQueue queue_;  // in order
  bool profile_kernels_;    // queue created with profiling; launches keep their events
  // Events not yet summed, by kernel name; harvested when kMaxPendingEvents accumulate and by
  // take_kernel_times().
  static constexpr size_t kMaxPendingEvents = 4096;
  std::vector<std::pair<std::string, cl::Event>> kernel_events_;
  std::map<std::string, KernelTime> kernel_times_;
  KernelTuning tuning_;
  FastPaths fast_;
  std::string options_string_;
  int gemm_min_tokens_;  // 0 = the GEMM path is off
  bool gemm_fault_;
  uint64_t max_alloc_;
  bool fused_;  // Backend's fused ops through kernels/fused.cl
  ProgramCache cache_;
  std::map<std::string, cl::Kernel> kernels_;
  cl::Buffer dummy_;  // bound to unused buffer arguments
  GrowingBuffer token_buffer_;  // token ids of get_rows
  GrowingBuffer part_acc_, part_ml_;  // split-attention partials
  GrowingBuffer act_q_, act_d_;       // int8 activations and their block scales
  GrowingBuffer gemm_scratch_;  // dequantized weight rows, f32
  GrowingBuffer gemm_temp_;     // CLBlast's temporary matrices (GemmTempBufferSize), reused by every GEMM
  std::map<std::pair<int64_t, float>, cl::Buffer> inv_freq_;
  std::deque<std::vector<uint8_t>> staging_;
  // The deferred `x += y` (buffers held so they outlive their activations), over this many floats.
  std::optional<cl::Buffer> pending_add_, pending_add_y_;
  size_t pending_add_elements_ = 0;
  OpenClCounters counters_;
};

}  // namespace

std::unique_ptr<OpenClBackend> make_opencl_backend(const OpenClOptions& options) {
  const DeviceList list = discover_devices();
  const char* env_device = std::getenv("XELM_OPENCL_DEVICE");
  const std::string selector = !options.device.empty() || env_device == nullptr ? options.device : env_device;
  const DiscoveredDevice& device = select_device(list, selector);
  try {
    return std::make_unique<OpenClBackendImpl>(device, options);
  } catch (const cl::Error& e) {
    throw Error(fmt::format("OpenCL setup on {} failed: {} ({})", device.info.name, e.what(), e.err()));
  }
}

}  // namespace xelm::opencl
