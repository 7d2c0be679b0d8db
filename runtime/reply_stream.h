// reply_stream.h — turns a model's streamed reply (token by token) into what a front end shows:
// Qwen3's thinking (<think>…</think>) apart from the answer, and the answer cut at the first stop
// string without ever letting a partial stop string out (text that could be the start of one is
// held back until it cannot be). Used by `xelm chat` (thinking shown dimmed) and `xelm serve`
// (reasoning_content and content deltas), so both split a reply the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer.h"

namespace xelm {

// `text` with every byte that does not belong to a valid UTF-8 character replaced by U+FFFD (a
// random or confused model can produce such bytes), so it can go into JSON and stop strings are
// matched in the text exactly as a client receives it.
std::string replace_invalid_utf8(std::string_view text);

// Cuts text at the earliest occurrence of any of the stop strings. push() returns the text that is
// safe to show: everything except a tail that is a prefix of some stop string. Since stop strings and
// the pushed text are whole UTF-8 characters, the returned text never ends inside a character.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  std::string push(std::string_view text);  // after a match: "" (the stop and what follows are dropped)
  std::string flush();                      // at the end of the reply: the held-back tail
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool matched_ = false;
};

struct ReplyOptions {
  bool split_reasoning = true;       // <think>…</think> goes to the reasoning channel (chat); false: raw text
  std::vector<std::string> stop;     // stop strings, matched in the answer (not in the reasoning)
};

// What one pushed token adds to each channel.
struct ReplyDelta {
  std::string reasoning, content;
  bool empty() const { return reasoning.empty() && content.empty(); }
};

// With split_reasoning: the <think> and </think> tokens (by id) switch channels and are not shown;
// newlines right after <think>, right before </think> and at the start of the answer are dropped
// (as Qwen's chat template drops them when it reads a reply back). A prompt that ends inside an
// open think block (some templates open it themselves) starts the reply in the reasoning channel.
class ReplyStream {
 public:
  ReplyStream(const Tokenizer& tokenizer, std::span<const int32_t> prompt, ReplyOptions options);

  // One generated token and its text (token -1: text flushed at the end of generation); invalid
  // UTF-8 in it becomes U+FFFD first.
  ReplyDelta push(int32_t token, std::string_view text);
  // Releases text held back for stop matching; call once when generation ended.
  ReplyDelta finish();

  bool in_reasoning() const { return in_reasoning_; }
  bool stopped() const { return stop_.matched(); }  // a stop string was found: end generation
  const std::string& reasoning() const { return reasoning_; }  // everything emitted so far, per channel
  const std::string& content() const { return content_; }

 private:
  ReplyDelta emit(std::string reasoning, std::string content);

  ReplyOptions options_;
  std::optional<int32_t> think_open_, think_close_;
  StopStringMatcher stop_;
  bool in_reasoning_ = false;
  bool content_started_ = false;   // a non-newline answer character was emitted
  bool reasoning_started_ = false;
  std::string held_newlines_;      // trailing reasoning newlines, shown only if more reasoning follows
  std::string reasoning_, content_;
};

}  // namespace xelm
