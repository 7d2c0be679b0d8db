// dropped_span.cpp — the token comparison of runtime/dropped_span.h.
#include "runtime/dropped_span.h"

#include <algorithm>

namespace xelm {

int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  return std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin();
}

std::optional<DroppedSpan> find_dropped_span(std::span<const int32_t> cached, std::span<const int32_t> history) {
  const auto n_cached = static_cast<int64_t>(cached.size()), n_history = static_cast<int64_t>(history.size());
  const int64_t common = common_prefix(cached, history);
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
