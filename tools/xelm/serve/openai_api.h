// openai_api.h — the OpenAI-compatible HTTP API of `xelm serve`, without the network: parsing and
// validating /v1/chat/completions and /v1/completions request bodies (every bad field becomes a
// 4xx ApiError naming the parameter), turning a request into prompt tokens and sampler settings,
// and building the JSON answers (whole responses, SSE chunks, usage, errors) in OpenAI's shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/generation.h"
#include "runtime/reply_stream.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace xelm::serve {

// An error answered in OpenAI's shape {"error":{"message","type","param","code"}} with an HTTP status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

// The error body; type follows OpenAI: invalid_request_error (4xx), authentication_error (401),
// server_error (5xx). Empty param or code are null.
nlohmann::json error_json(int status, std::string_view message, std::string_view param = {}, std::string_view code = {});
inline nlohmann::json error_json(const ApiError& e) { return error_json(e.status(), e.what(), e.param(), e.code()); }

// What the server allows one request.
struct RequestLimits {
  int64_t max_tokens = 4096;       // the largest max_tokens accepted (and the chat default)
  int64_t completion_default_max_tokens = 16;  // /v1/completions without max_tokens (OpenAI's default)
  size_t max_stop_strings = 16;
  size_t max_stop_length = 256;    // bytes per stop string
};

enum class Endpoint { ChatCompletions, Completions };

// Sampling fields a request may set; absent ones keep the server's defaults.
struct SamplingRequest {
  std::optional<float> temperature, top_p, min_p, presence_penalty, frequency_penalty, repeat_penalty;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;  // a request's -1 means random (SamplerParams::kRandomSeed)
  std::vector<std::pair<int32_t, float>> logit_bias = {};  // OpenAI's logit_bias: token id -> bias in [-100, 100]
  bool ignore_eos = false;       // llama.cpp's extension: the end-of-generation tokens are banned

  // The defaults with the request's fields on top; ignore_eos bans `end_of_generation`.
  SamplerParams apply_to(SamplerParams defaults, std::span<const int32_t> end_of_generation = {}) const;
  bool sets_mode_preset_fields() const { return temperature || top_p || min_p || top_k; }
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::ChatCompletions;
  std::string model;                       // as sent (informational: the server has one model)
  std::vector<ChatMessage> messages;       // chat
  std::string prompt;                      // completions: prompt text...
  std::vector<int32_t> prompt_tokens;      // ...or token ids
  std::optional<int64_t> max_tokens;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;              // stream_options.include_usage
  std::optional<bool> enable_thinking;     // chat_template_kwargs.enable_thinking
  SamplingRequest sampling;
};

// Parse and validate a request body. Throws ApiError (400) for malformed JSON, a body that is not
// an object, a missing or mistyped field, a value out of range, unknown roles, empty messages,
// features xelm does not have (n > 1, tools, logprobs, echo, ...) and, as OpenAI does, fields the
// endpoint does not know: every field accepted is honoured (the README lists them).
CompletionRequest parse_chat_request(std::string_view body, const RequestLimits& limits);
CompletionRequest parse_completion_request(std::string_view body, const RequestLimits& limits);

// The prompt a request stands for: chat messages rendered by the model's template (enable_thinking
// as asked, else `default_thinking`) and tokenized with typed text kept plain; completion text
// tokenized with special tokens recognised (as `xelm run -p`), or the token ids as given.
// Throws ApiError (400) for a conversation the template refuses or token ids (prompt, logit_bias)
// outside the vocabulary.
std::vector<int32_t> build_prompt(const CompletionRequest& request, const ChatTemplate& chat_template,
                                  const Tokenizer& tokenizer, bool default_thinking);

// A chat conversation's next prompt once `answer` (reasoning and content as the reply stream split
// them) joins it and another user message follows (its content empty): what the template makes of
// the answer as an earlier turn (Qwen3 drops its thinking). Compared with the cached sequence to
// find the span to evict. Throws ApiError as build_prompt does.
std::vector<int32_t> next_turn_prompt(const CompletionRequest& request, const ChatMessage& answer,
                                      const ChatTemplate& chat_template, const Tokenizer& tokenizer, bool default_thinking);

// The tokens to generate at most: max_tokens, else the endpoint's default. Throws ApiError (400,
// code context_length_exceeded) when the prompt leaves no room in the context, or the prompt plus
// an explicit max_tokens does not fit.
int64_t tokens_to_generate(const CompletionRequest& request, int64_t n_prompt, int64_t n_ctx, const RequestLimits& limits);

struct Usage {
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
};
nlohmann::json usage_json(const Usage& usage);

// OpenAI's finish_reason: "stop" (end of generation or a stop string), "length" (max_tokens or the
// context filled up).
std::string_view finish_reason(StopReason stop, bool stop_string_matched);

// Builds the JSON of one response: the whole answer, or its stream of chunks (SSE events).
class ResponseBuilder {
 public:
  ResponseBuilder(Endpoint endpoint, std::string id, int64_t created, std::string model);

  const std::string& id() const { return id_; }
  nlohmann::json complete(const std::string& reasoning, const std::string& content, std::string_view finish,
                          const Usage& usage) const;
  nlohmann::json first_chunk() const;                          // chat: the assistant role; completions: null
  nlohmann::json delta_chunk(const ReplyDelta& delta) const;
  nlohmann::json final_chunk(std::string_view finish) const;   // empty delta with the finish_reason
  nlohmann::json usage_chunk(const Usage& usage) const;        // choices [] and usage

 private:
  nlohmann::json chunk(nlohmann::json choice) const;

  Endpoint endpoint_;
  std::string id_;
  int64_t created_;
  std::string model_;
};

// Compact JSON text; bytes that are not UTF-8 (say, echoed from a malformed body into an error
// message) become U+FFFD instead of an exception.
std::string json_text(const nlohmann::json& value);

// One server-sent event: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& value);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace xelm::serve
