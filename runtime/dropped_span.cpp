// dropped_span.cpp — the token comparison of runtime/dropped_span.h.
#include "runtime/dropped_span.h"

#include <algorithm>

namespace xelm {

std::optional<DroppedSpan> find_dropped_span(std::span<const int32_t> cached, std::span<const int32_t> history) {
  const auto n_cached = static_cast<int64_t>(cached.size()), n_history = static_cast<int64_t>(history.size());
  int64_t common = 0;
  while (common < n_cached && common < n_history && cached[static_cast<size_t>(common)] == history[static_cast<size_t>(common)]) {
    ++common;
  }
  if (common == n_cached) return std::nullopt;  // nothing to drop: the history continues the cache
  std::optional<DroppedSpan> best;
  for (int64_t end = common + 1; end < n_cached; ++end) {
    int64_t kept = 0;
    while (end + kept < n_cached && common + kept < n_history &&
           cached[static_cast<size_t>(end + kept)] == history[static_cast<size_t>(common + kept)]) {
      ++kept;
    }
    if (kept > 0 && (!best || kept > best->kept)) best = DroppedSpan{common, end, kept};
    if (end + kept == n_cached) break;  // everything after the span continues the history: the shortest such span
  }
  return best;
}

}  // namespace xelm
