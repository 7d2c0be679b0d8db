// bandwidth.cpp — streaming-read bandwidth probe: each thread sums its slice of a 1 GiB buffer with
// independent accumulators (the compiler vectorizes the loop), so memory, not latency, limits it.
#include "bench/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace xelm::bench {
namespace {

uint64_t sum_slice(const uint64_t* data, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += data[i + static_cast<size_t>(k)];
  }
  for (; i < n; ++i) acc[0] += data[i];
  uint64_t total = 0;
  for (uint64_t a : acc) total += a;
  return total;
}

}  // namespace

double measure_read_bandwidth(int n_threads, size_t bytes, int repetitions) {
  n_threads = std::max(1, n_threads);
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n);
  // Touch every page from the thread that will read it (first-touch placement).
  const size_t per_thread = n / static_cast<size_t>(n_threads);
  auto for_each_slice = [&](auto&& fn) {
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
      const size_t begin = static_cast<size_t>(t) * per_thread;
      const size_t end = t + 1 == n_threads ? n : begin + per_thread;
      threads.emplace_back([&fn, begin, end, t] { fn(t, begin, end); });
    }
    for (std::thread& th : threads) th.join();
  };
  for_each_slice([&](int, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) buffer[i] = i;
  });
  std::vector<uint64_t> sink(static_cast<size_t>(n_threads));
  double best = 0.0;
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for_each_slice([&](int t, size_t begin, size_t end) {
      sink[static_cast<size_t>(t)] = sum_slice(buffer.data() + begin, end - begin);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / seconds / 1e9);
  }
  // The sums feed nothing; comparing them keeps the reads from being optimized away.
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  return best;
}

}  // namespace xelm::bench
