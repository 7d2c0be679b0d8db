// generation.h — the rules of generating one answer, and a single-sequence driver of a Transformer.
// SequenceDecoder holds what one answer needs from token to token (its sampler, Qwen3 think tracking
// for the sampler, UTF-8 streaming of the text, the stop rules: end-of-generation tokens, a token
// limit, a full context); whoever evaluates the model feeds it logits. Generator drives one
// sequence with it for `xelm run` and `xelm chat`: it keeps the token sequence that sits in the KV
// cache and reuses the longest common prefix when a new prompt arrives (so a chat turn only
// processes what is new). The server's BatchScheduler (runtime/batch_scheduler.h) drives many.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/dropped_span.h"
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

// One answer, token by token: sample() takes the logits of the last position in the sequence and
// returns the next token, the text it completes and, when the answer ends with it, why. The caller
// evaluates the token (appends it to the sequence) unless the answer ended.
class SequenceDecoder {
 public:
  struct Step {
    int32_t token = -1;
    std::string text;                // the text this token completes (may be empty inside a UTF-8 character)
    std::optional<StopReason> stop;  // EndOfGeneration: `token` is the end marker, not part of the answer;
                                     // Length, ContextFull: `token` is the answer's last
  };

  // `prompt` primes the sampler's penalty history and the thinking state; n_predict < 0: no limit
  // but the context; n_ctx: the most positions the sequence may hold.
  SequenceDecoder(const Tokenizer& tokenizer, Sampler& sampler, std::span<const int32_t> prompt, int64_t n_predict,
                  int64_t n_ctx);

  // Whether the token limit was reached (true at once for n_predict 0): sample no more.
  bool done() const { return n_predict_ >= 0 && n_generated_ >= n_predict_; }
  Step sample(std::span<const float> logits);
  // Text held back for an unfinished UTF-8 character; call once at the end.
  std::string flush() { return stream_.flush(); }
  int64_t n_generated() const { return n_generated_; }  // answer tokens (the end marker excluded)

 private:
  const Vocabulary& vocab_;
  Sampler& sampler_;
  std::optional<int32_t> think_open_, think_close_;
  Utf8Stream stream_;
  int64_t n_predict_, n_ctx_, n_prompt_;
  int64_t n_generated_ = 0;
};

// Evicts from sequence `seq`, whose positions hold `tokens`, the span that `history` (the next
// prompt's tokens) leaves out (runtime/dropped_span.h: Qwen3's earlier thinking), and forgets the
// tokens after what still matches, so that `tokens` becomes a prefix of the history; `tokens` is
// updated to match. Returns the span, or nullopt when nothing was dropped. When the eviction fails
// (no free page for a copy-on-write) the sequence and `tokens` keep what precedes the span and the
// xelm::Error is rethrown.
std::optional<DroppedSpan> evict_dropped_span(Transformer& transformer, SeqId seq, std::vector<int32_t>& tokens,
                                              std::span<const int32_t> history);

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
};

}  // namespace xelm
