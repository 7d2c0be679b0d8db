// bandwidth.h — the machine's memory read bandwidth, measured by a multi-threaded streaming read of
// a buffer far larger than the last-level cache: the ceiling that decode speed is compared against.
#pragma once

#include <cstddef>

namespace xelm::bench {

// GB/s (1e9 bytes/s), best of `repetitions` passes of n_threads threads over `bytes`.
double measure_read_bandwidth(int n_threads, size_t bytes = size_t{1} << 30, int repetitions = 3);

}  // namespace xelm::bench
