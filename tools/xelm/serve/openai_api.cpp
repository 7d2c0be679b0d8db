// openai_api.cpp — request validation, prompt building and response JSON for `xelm serve`.
#include "tools/xelm/serve/openai_api.h"

#include <algorithm>
#include <cmath>
#include <climits>

#include <spdlog/fmt/fmt.h>

#include "runtime/chat_prompt.h"
#include "runtime/error.h"

namespace xelm::serve {
namespace {

using nlohmann::json;

ApiError bad_request(const std::string& param, const std::string& problem) {
  return ApiError(400, param + ": " + problem, param);
}

json parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e400
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

// The field's value, or null when absent (null and absent mean the same: use the default).
const json& field(const json& body, const char* name) {
  static const json null_value;
  const auto it = body.find(name);
  return it == body.end() ? null_value : *it;
}

std::optional<double> number_field(const json& body, const char* name, double lo, double hi) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number()) throw bad_request(name, "must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) throw bad_request(name, fmt::format("must be between {} and {}, got {}", lo, hi, x));
  return x;
}

std::optional<float> float_field(const json& body, const char* name, double lo, double hi) {
  const std::optional<double> x = number_field(body, name, lo, hi);
  return x ? std::optional<float>(static_cast<float>(*x)) : std::nullopt;
}

std::optional<int64_t> integer_field(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer()) throw bad_request(name, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    throw bad_request(name, fmt::format("must be between {} and {}", lo, hi));
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) throw bad_request(name, fmt::format("must be between {} and {}, got {}", lo, hi, x));
  return x;
}

std::optional<bool> bool_field(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_boolean()) throw bad_request(name, "must be true or false");
  return v.get<bool>();
}

// OpenAI's logit_bias: an object mapping token ids (decimal strings) to a bias in [-100, 100].
std::vector<std::pair<int32_t, float>> parse_logit_bias(const json& body) {
  const json& v = field(body, "logit_bias");
  std::vector<std::pair<int32_t, float>> bias;
  if (v.is_null()) return bias;
  if (!v.is_object()) throw bad_request("logit_bias", "must be an object mapping token ids to biases");
  for (const auto& entry : v.items()) {
    const std::string& key = entry.key();
    const bool canonical = !key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos &&
                           (key == "0" || key[0] != '0');
    if (!canonical || std::stoll(key) > INT32_MAX) {
      throw bad_request("logit_bias", "keys must be token ids written as decimal integers, got '" + key + "'");
    }
    const json& value = entry.value();
    if (!value.is_number()) throw bad_request("logit_bias", "the bias of token " + key + " must be a number");
    const double x = value.get<double>();
    if (!(x >= -100.0 && x <= 100.0)) {
      throw bad_request("logit_bias", fmt::format("the bias of token {} must be between -100 and 100, got {}", key, x));
    }
    bias.emplace_back(static_cast<int32_t>(std::stoll(key)), static_cast<float>(x));
  }
  return bias;
}

SamplingRequest parse_sampling(const json& body) {
  SamplingRequest s;
  s.temperature = float_field(body, "temperature", 0.0, 2.0);
  s.top_p = float_field(body, "top_p", 0.0, 1.0);
  s.min_p = float_field(body, "min_p", 0.0, 1.0);
  s.presence_penalty = float_field(body, "presence_penalty", -2.0, 2.0);
  s.frequency_penalty = float_field(body, "frequency_penalty", -2.0, 2.0);
  s.repeat_penalty = float_field(body, "repeat_penalty", 0.01, 100.0);
  if (const auto k = integer_field(body, "top_k", -1, 1 << 24)) s.top_k = static_cast<int>(std::max<int64_t>(*k, 0));
  s.logit_bias = parse_logit_bias(body);
  s.ignore_eos = bool_field(body, "ignore_eos").value_or(false);
  const json& seed = field(body, "seed");
  if (seed.is_number_integer() && !seed.is_number_unsigned() && seed.get<int64_t>() == -1) {
    s.seed = SamplerParams::kRandomSeed;
  } else if (!seed.is_null()) {
    if (!seed.is_number_integer() || (!seed.is_number_unsigned() && seed.get<int64_t>() < 0)) {
      throw bad_request("seed", "must be an integer >= 0 (or -1 for a random seed)");
    }
    s.seed = seed.get<uint64_t>();
  }
  return s;
}

std::vector<std::string> parse_stop(const json& body, const RequestLimits& limits) {
  const json& v = field(body, "stop");
  std::vector<std::string> stops;
  if (v.is_null()) return stops;
  if (v.is_string()) {
    stops.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json& s : v) {
      if (!s.is_string()) throw bad_request("stop", "must be a string or an array of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    throw bad_request("stop", "must be a string or an array of strings");
  }
  if (stops.size() > limits.max_stop_strings) {
    throw bad_request("stop", fmt::format("at most {} stop strings are allowed", limits.max_stop_strings));
  }
  for (const std::string& s : stops) {
    if (s.empty()) throw bad_request("stop", "stop strings must not be empty");
    if (s.size() > limits.max_stop_length) {
      throw bad_request("stop", fmt::format("a stop string may have at most {} bytes", limits.max_stop_length));
    }
  }
  return stops;
}

// The fields each endpoint knows (OpenAI's, plus llama.cpp's top_k, min_p, repeat_penalty,
// ignore_eos and chat_template_kwargs). Any other field is refused, as OpenAI refuses it, so that
// nothing a client sends is silently ignored. The README's table says what each one does.
constexpr std::string_view kCommonFields[] = {
    "model", "temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "seed", "presence_penalty",
    "frequency_penalty", "repeat_penalty", "stream", "stream_options", "logit_bias", "ignore_eos", "n", "logprobs",
    "user"};
constexpr std::string_view kChatFields[] = {
    "messages", "max_completion_tokens", "chat_template_kwargs", "top_logprobs", "tools", "tool_choice",
    "parallel_tool_calls", "functions", "function_call", "response_format", "metadata", "store", "service_tier",
    "modalities", "audio", "prediction", "reasoning_effort", "web_search_options"};
constexpr std::string_view kCompletionFields[] = {"prompt", "best_of", "echo", "suffix"};

bool knows(std::span<const std::string_view> names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Features xelm does not have: refused rather than silently ignored (their neutral values pass).
void refuse_unsupported(const json& body, Endpoint endpoint) {
  for (const auto& entry : body.items()) {
    const bool known = knows(kCommonFields, entry.key()) ||
                       (endpoint == Endpoint::ChatCompletions ? knows(kChatFields, entry.key())
                                                              : knows(kCompletionFields, entry.key()));
    if (!known) throw bad_request(entry.key(), "unrecognized request argument (this endpoint does not support it)");
  }
  if (const auto n = integer_field(body, "n", 1, 128); n && *n != 1) throw bad_request("n", "only n = 1 is supported");
  if (const auto best_of = integer_field(body, "best_of", 1, 128); best_of && *best_of != 1) {
    throw bad_request("best_of", "only best_of = 1 is supported");
  }
  for (const char* name : {"echo", "logprobs", "top_logprobs", "store"}) {
    const json& v = field(body, name);
    if (!v.is_null() && v != false && v != 0) throw bad_request(name, "is not supported");
  }
  for (const char* name : {"tools", "functions"}) {
    if (const json& v = field(body, name); !v.is_null() && !(v.is_array() && v.empty())) {
      throw bad_request(name, "tool definitions are not supported");
    }
  }
  for (const char* name : {"tool_choice", "function_call"}) {
    if (const json& v = field(body, name); !v.is_null() && v != "none" && v != "auto") {
      throw bad_request(name, "only \"none\" or \"auto\" is supported (there are no tools)");
    }
  }
  for (const char* name : {"audio", "prediction", "reasoning_effort", "web_search_options"}) {
    if (!field(body, name).is_null()) throw bad_request(name, "is not supported");
  }
  if (const json& modalities = field(body, "modalities"); !modalities.is_null() && modalities != json::array({"text"})) {
    throw bad_request("modalities", "only [\"text\"] is supported");
  }
  if (const json& format = field(body, "response_format"); !format.is_null()) {
    if (!format.is_object() || field(format, "type") != "text") {
      throw bad_request("response_format", "only {\"type\": \"text\"} is supported");
    }
  }
  if (const json& suffix = field(body, "suffix"); !suffix.is_null() && suffix != "") {
    throw bad_request("suffix", "is not supported");
  }
  // Informational fields: checked for their type, with nothing to do.
  for (const char* name : {"user", "service_tier"}) {
    if (const json& v = field(body, name); !v.is_null() && !v.is_string()) throw bad_request(name, "must be a string");
  }
  if (const json& metadata = field(body, "metadata"); !metadata.is_null() && !metadata.is_object()) {
    throw bad_request("metadata", "must be an object");
  }
  bool_field(body, "parallel_tool_calls");
}

// The fields both endpoints share, from a request body of `endpoint`.
CompletionRequest parse_common(const json& body, const RequestLimits& limits, Endpoint endpoint) {
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const json& model = field(body, "model"); !model.is_null()) {
    if (!model.is_string()) throw bad_request("model", "must be a string");
    r.model = model.get<std::string>();
  }
  r.sampling = parse_sampling(body);
  r.stop = parse_stop(body, limits);
  refuse_unsupported(body, endpoint);
  r.max_tokens = integer_field(body, "max_completion_tokens", 1, limits.max_tokens);
  if (!r.max_tokens) r.max_tokens = integer_field(body, "max_tokens", 1, limits.max_tokens);
  r.stream = bool_field(body, "stream").value_or(false);
  if (const json& options = field(body, "stream_options"); !options.is_null()) {
    if (!options.is_object()) throw bad_request("stream_options", "must be an object");
    const json& include = field(options, "include_usage");
    if (!include.is_null() && !include.is_boolean()) throw bad_request("stream_options.include_usage", "must be true or false");
    r.include_usage = include.is_boolean() && include.get<bool>();
  }
  return r;
}

std::string message_content(const json& message, const std::string& where, const std::string& role) {
  const json& content = field(message, "content");
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) {
    if (role == "assistant") return "";
    throw bad_request(where + ".content", "is required");
  }
  if (!content.is_array()) throw bad_request(where + ".content", "must be a string or an array of text parts");
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string part_where = fmt::format("{}.content[{}]", where, j);
    if (!part.is_object() || field(part, "type") != "text") throw bad_request(part_where, "only text parts are supported");
    if (!field(part, "text").is_string()) throw bad_request(part_where + ".text", "must be a string");
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

nlohmann::json error_json(int status, std::string_view message, std::string_view param, std::string_view code) {
  const char* type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error";
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

SamplerParams SamplingRequest::apply_to(SamplerParams p, std::span<const int32_t> end_of_generation) const {
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (min_p) p.min_p = *min_p;
  if (top_k) p.top_k = *top_k;
  if (presence_penalty) p.presence_penalty = *presence_penalty;
  if (frequency_penalty) p.frequency_penalty = *frequency_penalty;
  if (repeat_penalty) p.repeat_penalty = *repeat_penalty;
  if (seed) p.seed = *seed;
  p.logit_bias.insert(p.logit_bias.end(), logit_bias.begin(), logit_bias.end());
  if (ignore_eos) {
    for (int32_t id : end_of_generation) p.logit_bias.emplace_back(id, -INFINITY);
  }
  return p;
}

CompletionRequest parse_chat_request(std::string_view body_text, const RequestLimits& limits) {
  const json body = parse_object(body_text);
  CompletionRequest r = parse_common(body, limits, Endpoint::ChatCompletions);
  const json& messages = field(body, "messages");
  if (messages.is_null()) throw bad_request("messages", "is required");
  if (!messages.is_array()) throw bad_request("messages", "must be an array");
  if (messages.empty()) throw bad_request("messages", "must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw bad_request(where, "must be an object");
    const json& role_value = field(m, "role");
    if (!role_value.is_string()) throw bad_request(where + ".role", "must be a string");
    std::string role = role_value.get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for system instructions
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      throw bad_request(where + ".role", "unknown role '" + role_value.get<std::string>() +
                                             "' (expected system, developer, user, assistant or tool)");
    }
    ChatMessage message{role, message_content(m, where, role), ""};
    if (const json& reasoning = field(m, "reasoning_content"); !reasoning.is_null()) {
      if (!reasoning.is_string()) throw bad_request(where + ".reasoning_content", "must be a string");
      if (role == "assistant") message.reasoning_content = reasoning.get<std::string>();
    }
    r.messages.push_back(std::move(message));
  }
  if (const json& kwargs = field(body, "chat_template_kwargs"); !kwargs.is_null()) {
    if (!kwargs.is_object()) throw bad_request("chat_template_kwargs", "must be an object");
    for (const auto& entry : kwargs.items()) {
      if (entry.key() != "enable_thinking") {
        throw bad_request("chat_template_kwargs." + entry.key(), "unrecognized template argument (only enable_thinking is supported)");
      }
    }
    const json& thinking = field(kwargs, "enable_thinking");
    if (!thinking.is_null() && !thinking.is_boolean()) {
      throw bad_request("chat_template_kwargs.enable_thinking", "must be true or false");
    }
    if (thinking.is_boolean()) r.enable_thinking = thinking.get<bool>();
  }
  return r;
}

CompletionRequest parse_completion_request(std::string_view body_text, const RequestLimits& limits) {
  const json body = parse_object(body_text);
  CompletionRequest r = parse_common(body, limits, Endpoint::Completions);
  const json& prompt = field(body, "prompt");
  if (prompt.is_null()) throw bad_request("prompt", "is required");
  if (prompt.is_string()) {
    r.prompt = prompt.get<std::string>();
  } else if (prompt.is_array() && !prompt.empty() && prompt[0].is_string()) {
    if (prompt.size() != 1 || !prompt[0].is_string()) throw bad_request("prompt", "only one prompt per request is supported");
    r.prompt = prompt[0].get<std::string>();
  } else if (prompt.is_array()) {
    for (const json& id : prompt) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        throw bad_request("prompt", "must be a string or an array of token ids");
      }
      r.prompt_tokens.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  } else {
    throw bad_request("prompt", "must be a string or an array of token ids");
  }
  if (r.prompt.empty() && r.prompt_tokens.empty()) throw bad_request("prompt", "must not be empty");
  return r;
}

std::vector<int32_t> build_prompt(const CompletionRequest& request, const ChatTemplate& chat_template,
                                  const Tokenizer& tokenizer, bool default_thinking) {
  const int64_t n_vocab = static_cast<int64_t>(tokenizer.vocab().size());
  for (const auto& entry : request.sampling.logit_bias) {
    if (entry.first >= n_vocab) {
      throw bad_request("logit_bias", fmt::format("token id {} is outside the vocabulary of {}", entry.first, n_vocab));
    }
  }
  if (request.endpoint == Endpoint::Completions) {
    if (request.prompt_tokens.empty()) return tokenizer.encode(request.prompt, /*parse_special=*/true);
    for (int32_t id : request.prompt_tokens) {
      if (id >= n_vocab) throw bad_request("prompt", fmt::format("token id {} is outside the vocabulary of {}", id, n_vocab));
    }
    return request.prompt_tokens;
  }
  try {
    const std::string text = chat_template.render(request.messages, /*add_generation_prompt=*/true,
                                                  request.enable_thinking.value_or(default_thinking));
    return tokenize_chat_prompt(tokenizer, text, request.messages);
  } catch (const Error& e) {
    throw bad_request("messages", e.what());
  }
}

std::vector<int32_t> next_turn_prompt(const CompletionRequest& request, const ChatMessage& answer,
                                      const ChatTemplate& chat_template, const Tokenizer& tokenizer, bool default_thinking) {
  CompletionRequest next = request;
  next.messages.push_back(answer);
  next.messages.push_back({"user", "", ""});
  return build_prompt(next, chat_template, tokenizer, default_thinking);
}

int64_t tokens_to_generate(const CompletionRequest& request, int64_t n_prompt, int64_t n_ctx, const RequestLimits& limits) {
  if (n_prompt >= n_ctx) {
    throw ApiError(400,
                   fmt::format("the prompt has {} tokens; this server's context holds {} (prompt and answer together)",
                               n_prompt, n_ctx),
                   request.endpoint == Endpoint::Completions ? "prompt" : "messages", "context_length_exceeded");
  }
  if (request.max_tokens && n_prompt + *request.max_tokens > n_ctx) {
    throw ApiError(400,
                   fmt::format("this server's context holds {} tokens, but {} were requested ({} in the prompt, {} for "
                               "the answer); lower max_tokens",
                               n_ctx, n_prompt + *request.max_tokens, n_prompt, *request.max_tokens),
                   "max_tokens", "context_length_exceeded");
  }
  if (request.max_tokens) return *request.max_tokens;
  return request.endpoint == Endpoint::Completions ? limits.completion_default_max_tokens : limits.max_tokens;
}

nlohmann::json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

std::string_view finish_reason(StopReason stop, bool stop_string_matched) {
  if (stop_string_matched || stop == StopReason::EndOfGeneration) return "stop";
  return stop == StopReason::Length || stop == StopReason::ContextFull ? "length" : "stop";
}

ResponseBuilder::ResponseBuilder(Endpoint endpoint, std::string id, int64_t created, std::string model)
    : endpoint_(endpoint), id_(std::move(id)), created_(created), model_(std::move(model)) {}

nlohmann::json ResponseBuilder::complete(const std::string& reasoning, const std::string& content, std::string_view finish,
                                         const Usage& usage) const {
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (endpoint_ == Endpoint::ChatCompletions) {
    json message = {{"role", "assistant"}, {"content", content}};
    if (!reasoning.empty()) message["reasoning_content"] = reasoning;
    choice["message"] = std::move(message);
  } else {
    choice["text"] = content;
  }
  return {{"id", id_},
          {"object", endpoint_ == Endpoint::ChatCompletions ? "chat.completion" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage_json(usage)}};
}

nlohmann::json ResponseBuilder::chunk(nlohmann::json choice) const {
  return {{"id", id_},
          {"object", endpoint_ == Endpoint::ChatCompletions ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"choices", choice.is_null() ? json::array() : json::array({std::move(choice)})}};
}

nlohmann::json ResponseBuilder::first_chunk() const {
  if (endpoint_ != Endpoint::ChatCompletions) return nullptr;
  return chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}, {"logprobs", nullptr}});
}

nlohmann::json ResponseBuilder::delta_chunk(const ReplyDelta& delta) const {
  if (endpoint_ == Endpoint::Completions) {
    return chunk({{"index", 0}, {"text", delta.content}, {"finish_reason", nullptr}, {"logprobs", nullptr}});
  }
  json d = json::object();
  if (!delta.reasoning.empty()) d["reasoning_content"] = delta.reasoning;
  if (!delta.content.empty()) d["content"] = delta.content;
  return chunk({{"index", 0}, {"delta", std::move(d)}, {"finish_reason", nullptr}, {"logprobs", nullptr}});
}

nlohmann::json ResponseBuilder::final_chunk(std::string_view finish) const {
  if (endpoint_ == Endpoint::Completions) {
    return chunk({{"index", 0}, {"text", ""}, {"finish_reason", finish}, {"logprobs", nullptr}});
  }
  return chunk({{"index", 0}, {"delta", json::object()}, {"finish_reason", finish}, {"logprobs", nullptr}});
}

nlohmann::json ResponseBuilder::usage_chunk(const Usage& usage) const {
  json c = chunk(nullptr);
  c["usage"] = usage_json(usage);
  return c;
}

std::string json_text(const nlohmann::json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const nlohmann::json& value) { return "data: " + json_text(value) + "\n\n"; }

}  // namespace xelm::serve
