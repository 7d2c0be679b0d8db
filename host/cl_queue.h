// cl_queue.h — the OpenCL backend's device objects (internal to host/): activations, weights and
// KV caches as device buffers, and ClQueue, the one in-order command queue every command of the
// backend is enqueued on (kernel launches, copies, reads, writes), with the buffers it allocates,
// the kernels it launches, the work counters and the profiling events.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "host/cl_api.h"
#include "host/device_info.h"
#include "host/kernel_profiler.h"
#include "host/opencl_backend.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ggml_types.h"

namespace xelm::opencl {

inline constexpr uint64_t kMiB = 1024 * 1024;

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

inline const cl::Buffer& buf(const Activation& a) { return static_cast<const ClActivation&>(a).buffer; }
inline const ClWeight& wt(const Weight& w) { return static_cast<const ClWeight&>(w); }

// "q4_k": a type's name as kernel names spell it (kernel_matmul_q4_k_f32).
std::string kernel_type_name(GgmlType type);
// Elements one work-item dequantizes at a time (CHUNK_* in common.cl).
int64_t chunk_elements(GgmlType type);

// A device buffer reallocated only when a request outgrows it (ClQueue::reserve).
struct GrowingBuffer {
  cl::Buffer buffer;
  uint64_t bytes = 0;
};

class ClQueue {
 public:
  // max_alloc: the largest buffer new_buffer() allocates; profile_kernels: the queue keeps every
  // launch's event for KernelProfiler.
  ClQueue(const DiscoveredDevice& device, uint64_t max_alloc, bool profile_kernels);

  const DeviceInfo& info() const { return info_; }
  const cl::Device& device() const { return device_; }
  const cl::Context& context() const { return context_; }
  uint64_t max_alloc() const { return max_alloc_; }
  OpenClCounters& counters() { return counters_; }
  const OpenClCounters& counters() const { return counters_; }
  KernelProfiler& profiler() { return profiler_; }
  const cl::Buffer& dummy() const { return dummy_; }  // bound to unused buffer arguments

  // Makes the program's kernels launchable by name.
  void add_kernels(cl::Program program);

  // The one enqueue path: every command the backend puts on the queue goes through here, and a
  // deferred add (defer_add) is enqueued first, so commands run in the order the ops were called.
  // `command(queue)` puts it on the queue; an OpenCL error becomes an xelm::Error naming `what`.
  template <typename F>
  void enqueue(const char* what, F&& command) {
    flush_deferred_add();
    guarded(what, [&] { command(queue_); });
  }

  // Sets the kernel's arguments in order and enqueues it (counted as one launch).
  template <typename... Args>
  void launch(const std::string& name, const cl::NDRange& global, const cl::NDRange& local, const Args&... args) {
    cl::Kernel& k = kernel(name);
    enqueue(name.c_str(), [&](cl::CommandQueue& queue) {
      cl_uint index = 0;
      (k.setArg(index++, args), ...);
      queue.enqueueNDRangeKernel(k, cl::NullRange, global, local, nullptr, profiler_.event(name));
    });
    ++counters_.kernel_launches;
  }

  // Non-blocking host → device copy into bytes [offset, offset + bytes) of dst; the bytes are staged
  // until the next wait.
  void upload(const cl::Buffer& dst, const void* src, size_t bytes, size_t offset = 0);
  // Blocking device → host copy of bytes [offset, offset + bytes) of src.
  void read(const cl::Buffer& src, void* dst, size_t bytes, size_t offset = 0);
  // Device-side copy of `bytes` between two buffers.
  void copy(const cl::Buffer& src, size_t src_offset, const cl::Buffer& dst, size_t dst_offset, size_t bytes);
  // Waits for every enqueued command.
  void finish();

  // x += y over `elements` floats, enqueued before the next command unless take_deferred_add
  // consumes it first (the add+rms_norm fusion). The buffers are held until then.
  void defer_add(const cl::Buffer& x, const cl::Buffer& y, size_t elements);
  // When the deferred add is `x += y` over `elements` floats: hands y over and drops the add (the
  // caller's kernel does it); else nothing changes.
  std::optional<cl::Buffer> take_deferred_add(const cl::Buffer& x, size_t elements);

  cl::Buffer new_buffer(uint64_t bytes, const char* what);
  const cl::Buffer& reserve(GrowingBuffer& b, uint64_t bytes, const char* what);

  // Runs f, turning an OpenCL error into an xelm::Error naming `what` and the device.
  template <typename F>
  void guarded(const char* what, F&& f) {
    try {
      f();
    } catch (const cl::Error& e) {
      throw Error(fmt::format("OpenCL {} failed on {}: {} ({})", what, info_.name, e.what(), e.err()));
    }
  }

 private:
  struct DeferredAdd {
    cl::Buffer x, y;
    size_t elements;
  };

  cl::Kernel& kernel(const std::string& name);
  void flush_deferred_add();

  cl::Device device_;
  DeviceInfo info_;
  cl::Context context_;
  cl::CommandQueue queue_;  // in order
  uint64_t max_alloc_;
  KernelProfiler profiler_;
  std::map<std::string, cl::Kernel> kernels_;
  cl::Buffer dummy_;
  std::deque<std::vector<uint8_t>> staging_;  // host data of non-blocking writes, until the next wait
  std::optional<DeferredAdd> deferred_add_;
  OpenClCounters counters_;
};

}  // namespace xelm::opencl
