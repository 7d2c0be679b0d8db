// generation.h — drives a Transformer for completion and chat: keeps the token sequence that sits
// in the KV cache, reuses the longest common prefix when a new prompt arrives (so a chat turn only
// processes what is new), streams each generated token's text without splitting UTF-8 characters,
// and stops on end-of-generation tokens, a token limit, a full context or a cancel flag.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/transformer.h"

namespace xelm {

enum class StopReason { EndOfGeneration, Length, ContextFull, Cancelled, Callback };
std::string_view stop_reason_name(StopReason reason);  // "stop", "length", ...

struct GenerationResult {
  int64_t n_prompt = 0;       // prompt tokens in total
  int64_t n_prompt_new = 0;   // of those, processed now (the rest came from the cache)
  int64_t n_generated = 0;
  double prompt_seconds = 0.0;
  double generate_seconds = 0.0;
  StopReason stop = StopReason::Length;
  std::string text;           // everything generated, as text (end-of-generation token excluded)
};

// Called for each generated token with the text it completes (may be empty while a UTF-8
// character is unfinished). Return false to stop.
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

class Generator {
 public:
  Generator(Transformer& transformer, const Tokenizer& tokenizer);

  // Brings the cache to exactly `prompt` (reusing the common prefix), then samples up to
  // n_predict tokens (< 0: until the context is full).
  GenerationResult generate(std::span<const int32_t> prompt, int64_t n_predict, Sampler& sampler,
                            const TokenCallback& on_token, const std::atomic<bool>* cancel = nullptr);

  // Tokens currently in the KV cache (prompt and generated so far).
  const std::vector<int32_t>& cached_tokens() const { return cached_; }
  // Makes the cache a prefix of `history` (the next prompt's tokens, e.g. the conversation rendered
  // with a next user message) by evicting the span the history leaves out (runtime/dropped_span.h:
  // Qwen3's earlier thinking) and forgetting cached tokens after what still matches. The kept tokens'
  // keys and values were computed with the span in context, so the next turn then differs slightly
  // from a fresh prefill of the history. Returns the positions freed (0 when nothing was dropped).
  int64_t evict_dropped_span(std::span<const int32_t> history);
  void reset();
  Transformer& transformer() { return transformer_; }

 private:
  // Evaluates prompt tokens not already cached; returns the logits of the last prompt token.
  std::vector<float> prefill(std::span<const int32_t> prompt, GenerationResult& result);

  Transformer& transformer_;
  const Tokenizer& tokenizer_;
  std::vector<int32_t> cached_;
  std::optional<int32_t> think_open_, think_close_;
};

}  // namespace xelm
