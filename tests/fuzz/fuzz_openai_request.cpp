// fuzz_openai_request.cpp — libFuzzer target for the OpenAI request path of `xelm serve` without the
// network: a body (after one selector byte: endpoint, chat template, default thinking mode) goes
// through parsing and validation, the rendered and tokenized prompt, the context check and the
// sampler settings, as cmd_serve.cpp's accept() does. Promises: a refused request is an ApiError
// (or the sampler's xelm::Error, which the server answers as 400) whose error body is valid UTF-8
// JSON; an accepted one gives prompt ids in the vocabulary, a positive answer budget, a sampler that
// constructs, and response JSON (whole and streamed) that is valid UTF-8 JSON. Any other exception
// or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/sampler.h"
#include "tests/fuzz/fuzz_util.h"
#include "tools/xelm/serve/openai_api.h"

using xelm::fuzz::require;
namespace serve = xelm::serve;

namespace {

// The text a client would receive must parse back as JSON (nlohmann's parser rejects bad UTF-8).
void require_valid_json(const std::string& text) {
  require(nlohmann::json::accept(text));
}

void check_error(const serve::ApiError& e) {
  require(e.status() >= 400 && e.status() < 600);
  require_valid_json(serve::json_text(serve::error_json(e)));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xelm::fuzz::quiet_logs();
  xelm::fuzz::qwen3_tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const serve::Endpoint endpoint = selector & 1 ? serve::Endpoint::Completions : serve::Endpoint::ChatCompletions;
  const xelm::ChatTemplate chat_template(selector & 2 ? xelm::ChatTemplateKind::Qwen25 : xelm::ChatTemplateKind::Qwen3);
  const bool default_thinking = (selector & 4) != 0;
  const xelm::Tokenizer& tokenizer = xelm::fuzz::qwen3_tokenizer();
  serve::RequestLimits limits;
  limits.max_tokens = 4000;

  try {
    const serve::CompletionRequest request = endpoint == serve::Endpoint::ChatCompletions
                                                 ? serve::parse_chat_request(body, limits)
                                                 : serve::parse_completion_request(body, limits);
    const std::vector<int32_t> prompt = serve::build_prompt(request, chat_template, tokenizer, default_thinking);
    for (const int32_t id : prompt) require(id >= 0 && static_cast<size_t>(id) < tokenizer.vocab().size());
    const int64_t n_predict = serve::tokens_to_generate(request, static_cast<int64_t>(prompt.size()), 4096, limits);
    require(n_predict >= 1 && n_predict <= limits.max_tokens);
    const xelm::SamplerParams sampling =
        request.sampling.apply_to(xelm::SamplerParams::qwen3_thinking(), tokenizer.vocab().end_of_generation());
    try {
      xelm::Sampler sampler(sampling);
    } catch (const xelm::Error&) {
      return 0;  // answered 400 by the server
    }
    const serve::ResponseBuilder response(endpoint, "chatcmpl-fuzz", 0, request.model);
    const std::string text = tokenizer.decode(prompt);  // any bytes, as a model's answer may be
    const serve::Usage usage{.prompt_tokens = static_cast<int64_t>(prompt.size())};
    require_valid_json(serve::json_text(response.complete(text, text, "stop", usage)));
    require_valid_json(serve::json_text(response.delta_chunk({.reasoning = text, .content = text})));
    require_valid_json(serve::json_text(response.usage_chunk(usage)));
  } catch (const serve::ApiError& e) {
    check_error(e);
  }
  return 0;
}
