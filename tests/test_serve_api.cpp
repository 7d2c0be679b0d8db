// test_serve_api.cpp — the network-free parts of `xelm serve`: request validation (every bad field a
// 400 naming the parameter), prompt building and context limits, the OpenAI JSON shapes, the
// reasoning/answer split and stop strings on canned token streams, and the FIFO gate's order.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/batch_scheduler.h"
#include "runtime/chat_template.h"
#include "runtime/dropped_span.h"
#include "runtime/file_io.h"
#include "runtime/gguf.h"
#include "runtime/reply_stream.h"
#include "runtime/synthetic_model.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/serve/openai_api.h"
#include "tools/xelm/serve/server_status.h"

namespace xelm {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using serve::ApiError;

// The ApiError a body gets from the parser (status 0 when it parses).
ApiError chat_error(const std::string& body, const serve::RequestLimits& limits = {}) {
  try {
    serve::parse_chat_request(body, limits);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "parsed");
}

ApiError completion_error(const std::string& body) {
  try {
    serve::parse_completion_request(body, {});
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "parsed");
}

TEST(ServeApi, ParsesEveryChatParameter) {
  const serve::CompletionRequest r = serve::parse_chat_request(R"({
      "model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                                 {"role": "assistant", "content": null, "reasoning_content": "hmm"},
                                 {"role": "developer", "content": "x"}],
      "temperature": 0.5, "top_p": 0.9, "top_k": 7, "min_p": 0.1, "max_tokens": 12, "stop": ["a", "bc"], "seed": 42,
      "presence_penalty": 0.25, "frequency_penalty": -0.5, "repeat_penalty": 1.1, "stream": true,
      "stream_options": {"include_usage": true}, "chat_template_kwargs": {"enable_thinking": false},
      "logit_bias": {"15": -100, "0": 2.5}, "ignore_eos": true, "n": 1, "user": "someone", "metadata": {"k": "v"},
      "tool_choice": "none", "parallel_tool_calls": false, "top_logprobs": 0, "response_format": {"type": "text"}})",
                                                               {});
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[2].reasoning_content, "hmm");
  EXPECT_EQ(r.messages[3].role, "system");
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.enable_thinking, false);
  const SamplerParams p = r.sampling.apply_to(SamplerParams{});
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_EQ(p.top_k, 7);
  EXPECT_FLOAT_EQ(p.min_p, 0.1f);
  EXPECT_EQ(p.seed, 42u);
  EXPECT_FLOAT_EQ(p.presence_penalty, 0.25f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.1f);
  // (in key order, as nlohmann keeps objects; ignore_eos bans nothing without end-of-generation ids)
  EXPECT_EQ(p.logit_bias, (std::vector<std::pair<int32_t, float>>{{0, 2.5f}, {15, -100.0f}}));
  const SamplerParams no_eos = r.sampling.apply_to(SamplerParams{}, std::vector<int32_t>{7, 9});
  EXPECT_EQ(no_eos.logit_bias, (std::vector<std::pair<int32_t, float>>{{0, 2.5f}, {15, -100.0f}, {7, -INFINITY}, {9, -INFINITY}}));
}

TEST(ServeApi, AbsentAndNullFieldsKeepTheDefaults) {
  const serve::CompletionRequest r =
      serve::parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "temperature": null, "seed": -1})", {});
  SamplerParams defaults;
  defaults.temperature = 0.3f;
  defaults.seed = 5;
  const SamplerParams p = r.sampling.apply_to(defaults);
  EXPECT_FLOAT_EQ(p.temperature, 0.3f);
  EXPECT_EQ(p.seed, SamplerParams::kRandomSeed);  // -1: a random seed
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.max_tokens);
  EXPECT_FALSE(r.enable_thinking);
}

TEST(ServeApi, BadChatRequestsNameTheParameter) {
  struct Case {
    std::string body, param, message;
  };
  const std::string ok_messages = R"("messages": [{"role": "user", "content": "hi"}])";
  const std::vector<Case> cases = {
      {"{not json", "", "not valid JSON"},
      {"[1, 2]", "", "must be a JSON object"},
      // Found by fuzz_openai_request: a number beyond double's range made nlohmann throw out_of_range,
      // which escaped as a 500 instead of a 400.
      {"{" + ok_messages + R"(, "temperature": 1e309})", "", "number overflow"},
      {"{}", "messages", "messages: is required"},
      {R"({"messages": "hi"})", "messages", "must be an array"},
      {R"({"messages": []})", "messages", "must not be empty"},
      {R"({"messages": [42]})", "messages[0]", "must be an object"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role", "must be a string"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role", "unknown role 'wizard'"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content", "is required"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "must be a string"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})", "messages[0].content[0]",
       "only text parts"},
      {"{" + ok_messages + R"(, "temperature": "hot"})", "temperature", "must be a number"},
      {"{" + ok_messages + R"(, "temperature": 3})", "temperature", "between 0 and 2"},
      {"{" + ok_messages + R"(, "top_p": 1.5})", "top_p", "between 0 and 1"},
      {"{" + ok_messages + R"(, "top_k": 2.5})", "top_k", "must be an integer"},
      {"{" + ok_messages + R"(, "max_tokens": 0})", "max_tokens", "between 1 and 4096"},
      {"{" + ok_messages + R"(, "max_tokens": 5000})", "max_tokens", "between 1 and 4096"},
      {"{" + ok_messages + R"(, "max_tokens": "10"})", "max_tokens", "must be an integer"},
      {"{" + ok_messages + R"(, "stop": 7})", "stop", "string or an array of strings"},
      {"{" + ok_messages + R"(, "stop": [""]})", "stop", "must not be empty"},
      {"{" + ok_messages + R"(, "seed": -2})", "seed", "integer >= 0"},
      {"{" + ok_messages + R"(, "seed": 1.5})", "seed", "integer >= 0"},
      {"{" + ok_messages + R"(, "stream": "yes"})", "stream", "true or false"},
      {"{" + ok_messages + R"(, "presence_penalty": 9})", "presence_penalty", "between -2 and 2"},
      {"{" + ok_messages + R"(, "repeat_penalty": 0})", "repeat_penalty", "between 0.01 and 100"},
      {"{" + ok_messages + R"(, "chat_template_kwargs": {"enable_thinking": "no"}})", "chat_template_kwargs.enable_thinking",
       "true or false"},
      {"{" + ok_messages + R"(, "n": 2})", "n", "only n = 1"},
      {"{" + ok_messages + R"(, "tools": [{"type": "function"}]})", "tools", "not supported"},
      {"{" + ok_messages + R"(, "logprobs": true})", "logprobs", "not supported"},
      {"{" + ok_messages + R"(, "model": 3})", "model", "must be a string"},
      {"{" + ok_messages + R"(, "logit_bias": [1]})", "logit_bias", "must be an object"},
      {"{" + ok_messages + R"(, "logit_bias": {"abc": 1}})", "logit_bias", "decimal integers, got 'abc'"},
      {"{" + ok_messages + R"(, "logit_bias": {"-5": 1}})", "logit_bias", "decimal integers"},
      {"{" + ok_messages + R"(, "logit_bias": {"007": 1}})", "logit_bias", "decimal integers"},
      {"{" + ok_messages + R"(, "logit_bias": {"99999999999": 1}})", "logit_bias", "decimal integers"},
      {"{" + ok_messages + R"(, "logit_bias": {"5": 101}})", "logit_bias", "between -100 and 100, got 101"},
      {"{" + ok_messages + R"(, "logit_bias": {"5": "high"}})", "logit_bias", "must be a number"},
      {"{" + ok_messages + R"(, "ignore_eos": 1})", "ignore_eos", "true or false"},
      {"{" + ok_messages + R"(, "unknown_field": 1})", "unknown_field", "unrecognized request argument"},
      {"{" + ok_messages + R"(, "best_of": 1})", "best_of", "unrecognized request argument"},  // completions only
      {"{" + ok_messages + R"(, "top_logprobs": 3})", "top_logprobs", "not supported"},
      // A response_format whose type was not a string made nlohmann throw type_error: a 500, not a 400.
      {"{" + ok_messages + R"(, "response_format": {"type": 5}})", "response_format", "only {\"type\": \"text\"}"},
      {"{" + ok_messages + R"(, "tool_choice": "required"})", "tool_choice", "only \"none\" or \"auto\""},
      {"{" + ok_messages + R"(, "functions": [{"name": "f"}]})", "functions", "not supported"},
      {"{" + ok_messages + R"(, "store": true})", "store", "not supported"},
      {"{" + ok_messages + R"(, "reasoning_effort": "low"})", "reasoning_effort", "not supported"},
      {"{" + ok_messages + R"(, "modalities": ["text", "audio"]})", "modalities", "only [\"text\"]"},
      {"{" + ok_messages + R"(, "user": 5})", "user", "must be a string"},
      {"{" + ok_messages + R"(, "chat_template_kwargs": {"tools": []}})", "chat_template_kwargs.tools",
       "only enable_thinking"},
  };
  for (const Case& c : cases) {
    const ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body;
    EXPECT_THAT(e.what(), HasSubstr(c.message)) << c.body;
  }
  serve::RequestLimits few_stops;
  few_stops.max_stop_strings = 2;
  EXPECT_THAT(chat_error("{" + ok_messages + R"(, "stop": ["a", "b", "c"]})", few_stops).what(), HasSubstr("at most 2"));
}

TEST(ServeApi, CompletionPromptForms) {
  EXPECT_EQ(serve::parse_completion_request(R"({"prompt": "Once"})", {}).prompt, "Once");
  EXPECT_EQ(serve::parse_completion_request(R"({"prompt": ["Once"]})", {}).prompt, "Once");
  EXPECT_EQ(serve::parse_completion_request(R"({"prompt": [9707, 11]})", {}).prompt_tokens, (std::vector<int32_t>{9707, 11}));
  EXPECT_EQ(completion_error(R"({"prompt": ["a", "b"]})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": ""})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": [-1]})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": {"a": 1}})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "echo": true})").param(), "echo");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "messages": []})").param(), "messages");  // chat only
  EXPECT_EQ(serve::parse_completion_request(R"({"prompt": "x", "logit_bias": {"3": 100}, "best_of": 1})", {})
                .sampling.logit_bias,
            (std::vector<std::pair<int32_t, float>>{{3, 100.0f}}));
}

TEST(ServeApi, ContextLimits) {
  serve::RequestLimits limits;
  serve::CompletionRequest chat;
  EXPECT_EQ(serve::tokens_to_generate(chat, 10, 100, limits), limits.max_tokens);  // until the context is full
  chat.max_tokens = 90;
  EXPECT_EQ(serve::tokens_to_generate(chat, 10, 100, limits), 90);
  chat.max_tokens = 91;
  try {
    serve::tokens_to_generate(chat, 10, 100, limits);
    FAIL() << "prompt + max_tokens above the context was accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.code(), "context_length_exceeded");
    EXPECT_THAT(e.what(), HasSubstr("10 in the prompt, 91 for the answer"));
  }
  chat.max_tokens.reset();
  EXPECT_THROW(serve::tokens_to_generate(chat, 100, 100, limits), ApiError);
  serve::CompletionRequest completion;
  completion.endpoint = serve::Endpoint::Completions;
  EXPECT_EQ(serve::tokens_to_generate(completion, 10, 100, limits), 16);  // OpenAI's default for completions
}

TEST(ServeApi, ErrorAndResponseShapes) {
  const json error = serve::error_json(ApiError(400, "temperature: must be a number", "temperature"));
  EXPECT_EQ(error, json::parse(R"({"error": {"message": "temperature: must be a number", "type": "invalid_request_error",
                                            "param": "temperature", "code": null}})"));
  EXPECT_EQ(serve::error_json(401, "no")["error"]["type"], "authentication_error");
  EXPECT_EQ(serve::error_json(503, "busy")["error"]["type"], "server_error");

  const serve::ResponseBuilder chat(serve::Endpoint::ChatCompletions, "chatcmpl-1", 1700000000, "tiny");
  const serve::Usage usage{.prompt_tokens = 10, .cached_tokens = 4, .completion_tokens = 3};
  const json whole = chat.complete("thought", "answer", "stop", usage);
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"], json::parse(R"({"role": "assistant", "content": "answer", "reasoning_content": "thought"})"));
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(whole["usage"], json::parse(R"({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                                            "prompt_tokens_details": {"cached_tokens": 4}})"));
  EXPECT_FALSE(chat.complete("", "a", "length", usage)["choices"][0]["message"].contains("reasoning_content"));
  EXPECT_EQ(chat.first_chunk()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chat.delta_chunk({.reasoning = "r", .content = ""})["choices"][0]["delta"], json::parse(R"({"reasoning_content": "r"})"));
  EXPECT_EQ(chat.final_chunk("length")["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(chat.usage_chunk(usage)["choices"].empty());
  EXPECT_EQ(serve::sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(serve::json_text(json("a\xff")), "\"a\xEF\xBF\xBD\"");  // never throws on bytes that are not UTF-8

  const serve::ResponseBuilder text(serve::Endpoint::Completions, "cmpl-1", 1700000000, "tiny");
  EXPECT_EQ(text.complete("", "more", "stop", usage)["choices"][0]["text"], "more");
  EXPECT_EQ(text.delta_chunk({.reasoning = "", .content = "x"})["object"], "text_completion");
  EXPECT_TRUE(text.first_chunk().is_null());

  EXPECT_EQ(serve::finish_reason(StopReason::EndOfGeneration, false), "stop");
  EXPECT_EQ(serve::finish_reason(StopReason::Callback, true), "stop");
  EXPECT_EQ(serve::finish_reason(StopReason::Length, false), "length");
  EXPECT_EQ(serve::finish_reason(StopReason::ContextFull, false), "length");
}

// Feeds text in the given pieces and returns everything the matcher let out.
std::string through_matcher(StopStringMatcher& m, const std::vector<std::string>& pieces, std::vector<std::string>* outs = nullptr) {
  std::string all;
  for (const std::string& p : pieces) {
    const std::string out = m.push(p);
    if (outs != nullptr) outs->push_back(out);
    all += out;
  }
  return all + m.flush();
}

TEST(ServeReplyStream, StopStringsNeverLeakPartially) {
  StopStringMatcher m({"END", "\n\n"});
  std::vector<std::string> outs;
  EXPECT_EQ(through_matcher(m, {"Hello E", "N", "D tail"}, &outs), "Hello ");
  EXPECT_EQ(outs, (std::vector<std::string>{"Hello ", "", ""}));  // "E" and "EN" were held back
  EXPECT_TRUE(m.matched());

  StopStringMatcher false_alarm({"END"});
  outs.clear();
  EXPECT_EQ(through_matcher(false_alarm, {"an E", "Nx", "y"}, &outs), "an ENxy");
  EXPECT_EQ(outs, (std::vector<std::string>{"an ", "ENx", "y"}));
  EXPECT_FALSE(false_alarm.matched());

  StopStringMatcher earliest({"cd", "b"});  // the earliest match wins, whichever stop string it is
  EXPECT_EQ(through_matcher(earliest, {"abcd"}), "a");

  StopStringMatcher utf8({"é!"});
  EXPECT_EQ(through_matcher(utf8, {"caf", "é", "!"}), "caf");

  StopStringMatcher at_end({"xyz"});  // a held-back prefix comes out when the reply ends without the stop
  EXPECT_EQ(through_matcher(at_end, {"wx", "y"}), "wxy");
}

TEST(ServeReplyStream, InvalidUtf8BecomesTheReplacementCharacter) {
  EXPECT_EQ(replace_invalid_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(replace_invalid_utf8("a\xE0" "b\x80"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_EQ(replace_invalid_utf8(""), "");
}

class ServeReplyStreamTokens : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = read_file_bytes(default_tokenizer_path());
    file_ = gguf::GgufFile::parse(bytes_, "qwen3-tokenizer");
    tokenizer_ = Tokenizer::from_gguf(*file_);
    think_open_ = *tokenizer_->token_id("<think>");
    think_close_ = *tokenizer_->token_id("</think>");
  }

  // Pushes the tokens of `text` one by one (as generation would) and collects the deltas.
  std::vector<ReplyDelta> play(ReplyStream& reply, const std::string& text) {
    std::vector<ReplyDelta> deltas;
    for (int32_t token : tokenizer_->encode(text, /*parse_special=*/true)) {
      const std::vector<int32_t> one = {token};
      ReplyDelta d = reply.push(token, tokenizer_->decode(one));
      if (!d.empty()) deltas.push_back(std::move(d));
      if (reply.stopped()) break;
    }
    if (ReplyDelta d = reply.finish(); !d.empty()) deltas.push_back(std::move(d));
    return deltas;
  }

  std::vector<uint8_t> bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int32_t think_open_ = 0, think_close_ = 0;
};

TEST_F(ServeReplyStreamTokens, ThinkingGoesToReasoning) {
  ReplyStream reply(*tokenizer_, tokenizer_->encode("<|im_start|>assistant\n", true), {});
  const std::vector<ReplyDelta> deltas = play(reply, "<think>\nLet me think.\n\nIt is 4.\n</think>\n\nThe answer is 4.");
  EXPECT_EQ(reply.reasoning(), "Let me think.\n\nIt is 4.");
  EXPECT_EQ(reply.content(), "The answer is 4.");
  // Deltas go to one channel each, reasoning first, and concatenate to the totals.
  std::string reasoning, content;
  bool content_seen = false;
  for (const ReplyDelta& d : deltas) {
    EXPECT_TRUE(d.reasoning.empty() || d.content.empty());
    if (!d.content.empty()) content_seen = true;
    EXPECT_FALSE(content_seen && !d.reasoning.empty()) << "reasoning after the answer began";
    reasoning += d.reasoning;
    content += d.content;
  }
  EXPECT_EQ(reasoning, reply.reasoning());
  EXPECT_EQ(content, reply.content());
  EXPECT_GT(deltas.size(), 4u);  // streamed, not in one piece
}

TEST_F(ServeReplyStreamTokens, PromptThatOpensTheThinkBlockStartsInReasoning) {
  ReplyStream opened(*tokenizer_, tokenizer_->encode("<|im_start|>assistant\n<think>\n", true), {});
  play(opened, "Thinking here.</think>\n\nDone.");
  EXPECT_EQ(opened.reasoning(), "Thinking here.");
  EXPECT_EQ(opened.content(), "Done.");

  // enable_thinking=false: the prompt closes an empty think block; everything is answer.
  ReplyStream closed(*tokenizer_, tokenizer_->encode("<|im_start|>assistant\n<think>\n\n</think>\n\n", true), {});
  play(closed, "\nJust the answer.");
  EXPECT_EQ(closed.reasoning(), "");
  EXPECT_EQ(closed.content(), "Just the answer.");
}

TEST_F(ServeReplyStreamTokens, StopStringsApplyToTheAnswerOnly) {
  ReplyStream reply(*tokenizer_, {}, {.split_reasoning = true, .stop = {"STOP"}});
  play(reply, "<think>I may say STOP here.</think>Visible part STOP hidden part");
  EXPECT_EQ(reply.reasoning(), "I may say STOP here.");
  EXPECT_EQ(reply.content(), "Visible part ");
  EXPECT_TRUE(reply.stopped());
}

TEST_F(ServeReplyStreamTokens, RawCompletionKeepsEverything) {
  ReplyStream reply(*tokenizer_, {}, {.split_reasoning = false, .stop = {}});
  play(reply, "\n<think>x</think>\n\ny");
  EXPECT_EQ(reply.content(), "\n<think>x</think>\n\ny");
  EXPECT_EQ(reply.reasoning(), "");
}

// The next turn's prompt renders the answer without its thinking (Qwen3): the cached sequence
// (prompt + generated) minus the dropped span is then exactly a prefix of it.
TEST_F(ServeReplyStreamTokens, NextTurnPromptDropsTheThinkingSpanOnly) {
  const ChatTemplate qwen3(ChatTemplateKind::Qwen3);
  const serve::CompletionRequest request =
      serve::parse_chat_request(R"({"messages": [{"role": "user", "content": "What is two plus two?"}]})", {});
  const std::vector<int32_t> prompt = serve::build_prompt(request, qwen3, *tokenizer_, true);
  std::vector<int32_t> cached = prompt;
  const std::vector<int32_t> answer = tokenizer_->encode("<think>\nTwo and two make four.\n</think>\n\nIt is four.");
  cached.insert(cached.end(), answer.begin(), answer.end());
  ReplyStream reply(*tokenizer_, prompt, {});
  for (int32_t token : answer) reply.push(token, tokenizer_->decode(std::vector<int32_t>{token}));
  reply.finish();
  const std::vector<int32_t> history = serve::next_turn_prompt(
      request, {"assistant", reply.content(), reply.reasoning()}, qwen3, *tokenizer_, true);
  const std::optional<DroppedSpan> span = find_dropped_span(cached, history);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->begin, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(span->end - span->begin,
            static_cast<int64_t>(tokenizer_->encode("<think>\nTwo and two make four.\n</think>\n\n").size()));
  EXPECT_EQ(span->end + span->kept, static_cast<int64_t>(cached.size()));  // the whole answer is kept
  cached.erase(cached.begin() + span->begin, cached.begin() + span->end);
  ASSERT_LE(cached.size(), history.size());
  EXPECT_TRUE(std::equal(cached.begin(), cached.end(), history.begin()));
}

TEST(ServeStatus, MetricsAndSlots) {
  SchedulerStats stats;
  stats.requests_finished = 7;
  stats.generated_tokens = 100;
  stats.busy_seconds = 4;
  stats.kv_pages_used = 3;
  stats.kv_pages_free = 5;
  stats.kv_pages_total = 8;
  stats.running = 1;
  stats.slots.push_back({.slot = 1, .id = 42, .generating = true, .n_prompt = 10, .n_cached = 4, .n_generated = 6,
                         .n_predict = 20, .sampling = SamplerParams{}});
  const std::string text = serve::metrics_text(stats);
  EXPECT_THAT(text, ::testing::HasSubstr("\nxelm_requests_total 7\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nxelm_tokens_per_second 25\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("# TYPE xelm_kv_pages_used gauge\nxelm_kv_pages_used 3\n"));
  const nlohmann::json slots = serve::slots_json(stats, 2);
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0]["state"], "idle");
  EXPECT_EQ(slots[1]["id_task"], 42);
  EXPECT_EQ(slots[1]["n_cached_tokens"], 4);
  EXPECT_EQ(slots[1]["n_decoded"], 6);
  EXPECT_FLOAT_EQ(slots[1]["params"]["temperature"].get<float>(), SamplerParams{}.temperature);
}

}  // namespace
}  // namespace xelm
