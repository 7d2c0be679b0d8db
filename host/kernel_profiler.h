// kernel_profiler.h — device time per kernel name by OpenCL event profiling (OpenClOptions::
// profile_kernels): each enqueue on a profiled queue records an event under its kernel's name, and
// the events are summed into KernelTime per name when there are many or when asked (take()).
// Adds no synchronization to the queue except in take().
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "host/cl_api.h"
#include "host/opencl_backend.h"

namespace xelm::opencl {

class KernelProfiler {
 public:
  // enabled: the queue was created with CL_QUEUE_PROFILING_ENABLE; device_name names errors.
  KernelProfiler(bool enabled, std::string device_name);

  // A new event slot recorded under `name`, to pass to an enqueue; null when profiling is off.
  cl::Event* event(const std::string& name);
  // The same as a raw cl_event* (CLBlast's calls take one).
  cl_event* raw_event(const std::string& name);
  // Waits for the recorded events and returns the kernel times since the last call, by name.
  std::map<std::string, KernelTime> take();

 private:
  // Adds the device times of the recorded events to times_ (waits for them).
  void harvest();

  // Events not yet summed are harvested when this many accumulate and by take().
  static constexpr size_t kMaxPendingEvents = 4096;
  bool enabled_;
  std::string device_name_;
  std::vector<std::pair<std::string, cl::Event>> events_;
  std::map<std::string, KernelTime> times_;
};

}  // namespace xelm::opencl
