// thread_pool.h — a persistent pool of worker threads for the CPU backends. parallel_for splits a
// range of items (matrix rows, heads, ...) into a few contiguous chunks per thread that the caller
// and the workers claim from a shared counter, so a worker the OS has not scheduled yet (the machine
// may be shared) delays nobody: the others take its chunks. Workers spin briefly after each op and
// then sleep on a futex (std::atomic::wait); an op costs one start signal and one completion
// barrier, never a thread creation.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace xelm::cpu {

class ThreadPool {
 public:
  // n_threads <= 0 picks the number of physical cores.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n_items), chunk boundaries multiples of
  // `grain` (except the last end), and returns when all are done. Not reentrant.
  template <typename Fn>
  void parallel_for(int64_t n_items, Fn&& fn, int64_t grain = 1) {
    run(n_items, grain, &invoke<std::remove_reference_t<Fn>>, &fn);
  }

 private:
  using Trampoline = void (*)(void* fn, int64_t begin, int64_t end);
  template <typename Fn>
  static void invoke(void* fn, int64_t begin, int64_t end) {
    (*static_cast<Fn*>(fn))(begin, end);
  }
  void run(int64_t n_items, int64_t grain, Trampoline trampoline, void* fn);
  // Claims and runs chunks of job `generation` until none is left.
  void work(uint32_t generation);
  void worker_loop();

  int n_threads_;
  std::vector<std::thread> workers_;
  // The current job, published by the increment of generation_.
  Trampoline trampoline_ = nullptr;
  void* fn_ = nullptr;
  int64_t n_items_ = 0;
  int64_t grain_ = 1;
  std::atomic<uint32_t> generation_{0};  // job counter; workers sleep on it
  // (generation << 32) | (chunks of the job << 16) | next unclaimed chunk
  std::atomic<uint64_t> claim_{0};
  std::atomic<uint32_t> done_{0};        // chunks of the current job completed
  std::atomic<bool> stop_{false};
};

}  // namespace xelm::cpu
