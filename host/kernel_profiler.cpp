// kernel_profiler.cpp — device time per kernel from profiled events (see kernel_profiler.h).
#include "host/kernel_profiler.h"

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm::opencl {

KernelProfiler::KernelProfiler(bool enabled, std::string device_name)
    : enabled_(enabled), device_name_(std::move(device_name)) {}

cl::Event* KernelProfiler::event(const std::string& name) {
  if (!enabled_) return nullptr;
  if (events_.size() >= kMaxPendingEvents) harvest();
  return &events_.emplace_back(name, cl::Event()).second;
}

cl_event* KernelProfiler::raw_event(const std::string& name) {
  cl::Event* e = event(name);
  return e != nullptr ? &(*e)() : nullptr;
}

std::map<std::string, KernelTime> KernelProfiler::take() {
  harvest();
  return std::exchange(times_, {});
}

void KernelProfiler::harvest() {
  try {
    for (auto& [name, event] : events_) {
      if (event() == nullptr) continue;  // the enqueue threw
      event.wait();
      KernelTime& t = times_[name];
      t.total_ns += event.getProfilingInfo<CL_PROFILING_COMMAND_END>() - event.getProfilingInfo<CL_PROFILING_COMMAND_START>();
      ++t.calls;
    }
  } catch (const cl::Error& e) {
    throw Error(fmt::format("OpenCL profiling failed on {}: {} ({})", device_name_, e.what(), e.err()));
  }
  events_.clear();
}

}  // namespace xelm::opencl
