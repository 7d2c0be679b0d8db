// dropped_span.h — where a re-rendered chat history left out part of what the KV cache holds.
//
// Qwen3's template keeps the <think>...</think> block of an assistant turn only until the next user
// message; after that the turn renders as its answer alone. So the cache (prompt + generated tokens)
// and the next turn's prompt agree up to the thinking, disagree over it, and agree again on the
// answer. Evicting that span from the sequence (Transformer::evict) lets the next turn reuse the
// answer's cache instead of processing it again. Found by comparing tokens, so it serves any template
// that drops one span of an earlier turn.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace xelm {

struct DroppedSpan {
  int64_t begin;  // cached[begin, end) is not in history
  int64_t end;
  int64_t kept;   // cached[end, end + kept) == history[begin, begin + kept]: what evicting the span keeps
};

// How many leading tokens a and b share (the prefix a cached sequence and a new prompt agree on).
int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

// The span of `cached` that `history` (the next prompt's tokens) leaves out: the shortest span after
// their common prefix whose removal lets the most of the cache's remaining tokens continue as the
// history does. nullopt when cached is already a prefix of history, or no span keeps a token.
std::optional<DroppedSpan> find_dropped_span(std::span<const int32_t> cached, std::span<const int32_t> history);

}  // namespace xelm
