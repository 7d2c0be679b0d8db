// generation.cpp — prefix reuse, the sample/eval loop and its stop conditions.
#include "runtime/generation.h"

#include <algorithm>
#include <chrono>

#include "runtime/error.h"

namespace xelm {

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::EndOfGeneration: return "stop";
    case StopReason::Length: return "length";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::Callback: return "stop_sequence";
  }
  return "?";
}

SequenceDecoder::SequenceDecoder(const Tokenizer& tokenizer, Sampler& sampler, std::span<const int32_t> prompt,
                                 int64_t n_predict, int64_t n_ctx)
    : vocab_(tokenizer.vocab()),
      sampler_(sampler),
      think_open_(tokenizer.token_id("<think>")),
      think_close_(tokenizer.token_id("</think>")),
      n_predict_(n_predict),
      n_ctx_(n_ctx),
      n_prompt_(static_cast<int64_t>(prompt.size())) {
  sampler_.reset();
  bool in_thinking = false;
  for (int32_t t : prompt) {
    sampler_.accept(t);
    if (think_open_ && t == *think_open_) in_thinking = true;
    if (think_close_ && t == *think_close_) in_thinking = false;
  }
  sampler_.set_in_thinking(in_thinking);
}

SequenceDecoder::Step SequenceDecoder::sample(std::span<const float> logits) {
  Step step;
  step.token = sampler_.sample(logits);
  sampler_.accept(step.token);
  if (think_open_ && step.token == *think_open_) sampler_.set_in_thinking(true);
  if (think_close_ && step.token == *think_close_) sampler_.set_in_thinking(false);
  if (vocab_.is_end_of_generation(step.token)) {
    step.stop = StopReason::EndOfGeneration;
    return step;
  }
  ++n_generated_;
  step.text = stream_.push(vocab_.piece(step.token));
  // The sequence holds the prompt and every answer token but this one: this one would go at
  // position n_prompt + n_generated - 1.
  if (n_prompt_ + n_generated_ - 1 >= n_ctx_) {
    step.stop = StopReason::ContextFull;
  } else if (done()) {
    step.stop = StopReason::Length;
  }
  return step;
}

Generator::Generator(Transformer& transformer, const Tokenizer& tokenizer)
    : transformer_(transformer), tokenizer_(tokenizer) {}

void Generator::reset() {
  cached_.clear();
  transformer_.truncate(0);
}

std::optional<DroppedSpan> evict_dropped_span(Transformer& transformer, SeqId seq, std::vector<int32_t>& tokens,
                                              std::span<const int32_t> history) {
  const std::optional<DroppedSpan> span = find_dropped_span(tokens, history);
  if (!span) return std::nullopt;
  transformer.truncate(seq, span->end + span->kept);  // tokens after the match would be re-processed anyway
  try {
    transformer.evict(seq, span->begin, span->end);
  } catch (const Error&) {  // no free page for a copy-on-write: keep what precedes the span
    transformer.truncate(seq, span->begin);
    tokens.resize(static_cast<size_t>(span->begin));
    throw;
  }
  tokens.erase(tokens.begin() + span->end + span->kept, tokens.end());
  tokens.erase(tokens.begin() + span->begin, tokens.begin() + span->end);
  return span;
}

int64_t Generator::evict_dropped_span(std::span<const int32_t> history) {
  const int64_t before = transformer_.n_past();
  xelm::evict_dropped_span(transformer_, Transformer::kDefaultSequence, cached_, history);
  return before - transformer_.n_past();
}

std::vector<float> Generator::prefill(std::span<const int32_t> prompt, GenerationResult& result) {
  if (prompt.empty()) throw Error("empty prompt");
  if (static_cast<int64_t>(prompt.size()) > transformer_.n_ctx()) {
    throw Error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                std::to_string(transformer_.n_ctx()) + " (raise -c)");
  }
  // Longest common prefix with the cache; keep at least the last prompt token to re-evaluate,
  // since its logits are what the first sample needs.
  const auto common = static_cast<size_t>(std::min<int64_t>(common_prefix(cached_, prompt),
                                                          static_cast<int64_t>(prompt.size()) - 1));
  transformer_.truncate(static_cast<int64_t>(common));
  cached_.resize(common);
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = transformer_.eval(prompt.subspan(common));
  result.prompt_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cached_.assign(prompt.begin(), prompt.end());
  result.n_prompt = static_cast<int64_t>(prompt.size());
  result.n_prompt_new = static_cast<int64_t>(prompt.size() - common);
  return logits;
}

GenerationResult Generator::generate(std::span<const int32_t> prompt, int64_t n_predict, Sampler& sampler,
                                     const TokenCallback& on_token, const std::atomic<bool>* cancel) {
  GenerationResult result;
  std::vector<float> logits = prefill(prompt, result);
  SequenceDecoder decoder(tokenizer_, sampler, prompt, n_predict, transformer_.n_ctx());
  const auto start = std::chrono::steady_clock::now();
  result.stop = StopReason::Length;
  while (!decoder.done()) {
    if (cancel != nullptr && cancel->load()) {
      result.stop = StopReason::Cancelled;
      break;
    }
    SequenceDecoder::Step step = decoder.sample(logits);
    if (step.stop == StopReason::EndOfGeneration) {
      result.stop = *step.stop;
      break;
    }
    result.text += step.text;
    if (on_token && !on_token(step.token, step.text)) {
      result.stop = StopReason::Callback;  // the token is not in the cache; the next prefill adds it
      break;
    }
    if (step.stop) {
      result.stop = *step.stop;
      break;
    }
    logits = transformer_.eval(std::span<const int32_t>(&step.token, 1));
    cached_.push_back(step.token);
  }
  result.n_generated = decoder.n_generated();
  const std::string rest = decoder.flush();
  result.text += rest;
  if (!rest.empty() && on_token) on_token(-1, rest);
  result.generate_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace xelm
