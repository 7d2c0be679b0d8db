// cl_queue.cpp — the one command queue of the OpenCL backend and its buffers (see cl_queue.h).
#include "host/cl_queue.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace xelm::opencl {

std::string kernel_type_name(GgmlType type) {
  std::string name(type_traits(type).name);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

int64_t chunk_elements(GgmlType type) {
  const int64_t block = type_traits(type).block_size;
  return block == 1 ? 1 : 32;
}

ClQueue::ClQueue(const DiscoveredDevice& device, uint64_t max_alloc, bool profile_kernels)
    : device_(device.device),
      info_(device.info),
      context_(device_),
      queue_(context_, device_, profile_kernels ? cl::QueueProperties::Profiling : cl::QueueProperties::None),
      max_alloc_(max_alloc),
      profiler_(profile_kernels, info_.name),
      dummy_(context_, CL_MEM_READ_WRITE, sizeof(float)) {}

void ClQueue::add_kernels(cl::Program program) {
  std::vector<cl::Kernel> kernels;
  program.createKernels(&kernels);
  for (cl::Kernel& k : kernels) kernels_.emplace(k.getInfo<CL_KERNEL_FUNCTION_NAME>(), k);
}

cl::Kernel& ClQueue::kernel(const std::string& name) {
  const auto it = kernels_.find(name);
  if (it == kernels_.end()) throw Error(fmt::format("internal: no OpenCL kernel {}", name));
  return it->second;
}

void ClQueue::upload(const cl::Buffer& dst, const void* src, size_t bytes, size_t offset) {
  std::vector<uint8_t>& staged = staging_.emplace_back(bytes);
  std::memcpy(staged.data(), src, bytes);
  enqueue("write",
          [&](cl::CommandQueue& queue) { queue.enqueueWriteBuffer(dst, CL_FALSE, offset, bytes, staged.data()); });
  counters_.bytes_to_device += bytes;
}

void ClQueue::read(const cl::Buffer& src, void* dst, size_t bytes, size_t offset) {
  enqueue("read", [&](cl::CommandQueue& queue) { queue.enqueueReadBuffer(src, CL_TRUE, offset, bytes, dst); });
  ++counters_.blocking_syncs;
  counters_.bytes_from_device += bytes;
  staging_.clear();
}

void ClQueue::copy(const cl::Buffer& src, size_t src_offset, const cl::Buffer& dst, size_t dst_offset, size_t bytes) {
  enqueue("copy_rows",
          [&](cl::CommandQueue& queue) { queue.enqueueCopyBuffer(src, dst, src_offset, dst_offset, bytes); });
  ++counters_.buffer_copies;
}

void ClQueue::finish() {
  enqueue("finish", [&](cl::CommandQueue& queue) { queue.finish(); });
  ++counters_.blocking_syncs;
  staging_.clear();
}

void ClQueue::defer_add(const cl::Buffer& x, const cl::Buffer& y, size_t elements) {
  flush_deferred_add();
  deferred_add_ = DeferredAdd{x, y, elements};
}

std::optional<cl::Buffer> ClQueue::take_deferred_add(const cl::Buffer& x, size_t elements) {
  if (!deferred_add_ || deferred_add_->x() != x() || deferred_add_->elements != elements) return std::nullopt;
  cl::Buffer y = std::move(deferred_add_->y);
  deferred_add_.reset();
  return y;
}

// Enqueues the deferred add: taken off first, so that its own launch's enqueue() finds none.
void ClQueue::flush_deferred_add() {
  if (!deferred_add_) return;
  const DeferredAdd add = std::move(*deferred_add_);
  deferred_add_.reset();
  launch("kernel_add_f32", cl::NDRange(add.elements), cl::NullRange, add.x, add.y);
}

cl::Buffer ClQueue::new_buffer(uint64_t bytes, const char* what) {
  if (bytes > max_alloc_) {
    throw Error(fmt::format("{} of {} bytes exceeds the max allocation of {} ({} bytes)", what, bytes, info_.name,
                            max_alloc_));
  }
  cl::Buffer b;
  guarded("buffer allocation", [&] { b = cl::Buffer(context_, CL_MEM_READ_WRITE, std::max<uint64_t>(bytes, 4)); });
  return b;
}

const cl::Buffer& ClQueue::reserve(GrowingBuffer& b, uint64_t bytes, const char* what) {
  if (b.bytes < bytes) {
    b.buffer = new_buffer(bytes, what);
    b.bytes = bytes;
  }
  return b.buffer;
}

}  // namespace xelm::opencl
