// thread_pool.cpp — start/stop of the workers and the spin-then-futex hand-off of each job.
#include "cpu_fallback/thread_pool.h"

#include <algorithm>

#include "cpu_fallback/cpu_features.h"

namespace xelm::cpu {
namespace {

// Spin iterations before sleeping: ops follow each other within microseconds during a forward pass,
// so a short spin avoids the futex round trip; a longer one would steal cores from other processes.
constexpr int kSpinIterations = 4000;
// Chunks per thread: enough to rebalance when a thread starts late, few enough to keep rows together.
constexpr int64_t kChunksPerThread = 4;
// A job's chunk count and next chunk share the claim word, 16 bits each.
constexpr int64_t kMaxChunks = 0xffff;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : std::max(1, cpu_features().physical_cores)) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::work(uint32_t generation) {
  for (;;) {
    // Everything about the chunk comes from the one claim word: a worker still leaving the previous
    // job must not pair that job's claim with the next job's chunk count (the caller writes the
    // next job's fields as soon as the previous one is done). A successful claim of generation g
    // means job g is still running, so its other fields are stable and visible (acquire).
    uint64_t claim = claim_.load(std::memory_order_acquire);
    uint32_t n_chunks = 0, index = 0;
    do {
      if (static_cast<uint32_t>(claim >> 32) != generation) return;
      n_chunks = static_cast<uint32_t>(claim >> 16) & kMaxChunks;
      index = static_cast<uint32_t>(claim) & kMaxChunks;
      if (index >= n_chunks) return;
    } while (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    // Chunk `index` of n_chunks: whole grains, the remainder spread over the first chunks.
    const int64_t n_grains = (n_items_ + grain_ - 1) / grain_;
    const int64_t base = n_grains / n_chunks, extra = n_grains % n_chunks;
    const int64_t first = index * base + std::min<int64_t>(index, extra);
    const int64_t count = base + (index < extra ? 1 : 0);
    trampoline_(fn_, first * grain_, std::min(n_items_, (first + count) * grain_));
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_chunks) done_.notify_all();
  }
}

void ThreadPool::run(int64_t n_items, int64_t grain, Trampoline trampoline, void* fn) {
  if (n_items <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n_items + grain - 1) / grain;
  if (n_threads_ == 1 || n_grains == 1) {
    trampoline(fn, 0, n_items);
    return;
  }
  trampoline_ = trampoline;
  fn_ = fn;
  n_items_ = n_items;
  grain_ = grain;
  const auto n_chunks = static_cast<uint32_t>(std::min({n_grains, kChunksPerThread * n_threads_, kMaxChunks}));
  done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  claim_.store((static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(n_chunks) << 16),
               std::memory_order_release);
  generation_.store(generation, std::memory_order_release);
  generation_.notify_all();
  work(generation);
  // The one barrier per op: chunks other threads claimed must finish.
  for (int spin = 0;; ++spin) {
    const uint32_t done = done_.load(std::memory_order_acquire);
    if (done == n_chunks) break;
    if (spin < kSpinIterations) {
      cpu_relax();
    } else {
      done_.wait(done, std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t now = generation_.load(std::memory_order_acquire);
    for (int spin = 0; now == seen; ++spin) {
      if (spin < kSpinIterations) {
        cpu_relax();
      } else {
        generation_.wait(seen, std::memory_order_acquire);
      }
      now = generation_.load(std::memory_order_acquire);
    }
    seen = now;
    if (stop_.load(std::memory_order_relaxed)) return;
    work(now);
  }
}

}  // namespace xelm::cpu
