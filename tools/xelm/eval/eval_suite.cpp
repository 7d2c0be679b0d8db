// eval_suite.cpp — loading, running and scoring the evaluation suite (see eval_suite.h).
#include "tools/xelm/eval/eval_suite.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"
#include "runtime/generation.h"
#include "runtime/perplexity.h"
#include "runtime/sampler.h"
#include "tools/xelm/eval/embedded_suite.h"

namespace xelm::eval {
namespace {

using nlohmann::json;

template <class T>
T field(const json& j, const char* key, const std::string& where, T fallback) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: field '{}' has the wrong type", where, key));
  }
}

template <class T>
T required(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw Error(fmt::format("{}: missing field '{}'", where, key));
  return field<T>(j, key, where, T{});
}

const json& array(const json& j, const char* key, const std::string& where) {
  static const json empty = json::array();
  if (!j.contains(key)) return empty;
  if (!j.at(key).is_array()) throw Error(fmt::format("{}: field '{}' is not an array", where, key));
  return j.at(key);
}

// One greedy reply to `prompt` (token ids), as text.
std::string generate(Generator& generator, const Tokenizer& tokenizer, const std::string& prompt, int n_predict,
                     int64_t& tokens_generated) {
  Sampler sampler(SamplerParams{.temperature = 0.0f});
  const std::vector<int32_t> ids = tokenizer.encode(prompt, /*parse_special=*/true);
  const GenerationResult r = generator.generate(ids, n_predict, sampler, [](int32_t, std::string_view) { return true; });
  tokens_generated += r.n_generated;
  return r.text;
}

std::string chat_prompt(const ChatTemplate& tmpl, const std::string& system, const std::string& user, bool thinking) {
  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system, ""});
  messages.push_back({"user", user, ""});
  return tmpl.render(messages, /*add_generation_prompt=*/true, thinking);
}

std::string markdown_cell(std::string_view text, size_t max_chars) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max_chars) {
      out += "…";
      break;
    }
    out += c == '|' ? std::string("\\|") : (c == '\n' || c == '\r') ? std::string(" ") : std::string(1, c);
  }
  return out;
}

}  // namespace

Suite Suite::from_json(std::string_view text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", origin, e.what()));
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  Suite s;
  s.name = field<std::string>(j, "name", origin, origin);
  s.system_prompt = field<std::string>(j, "system_prompt", origin, "");
  s.answer_tokens = field<int>(j, "answer_tokens", origin, s.answer_tokens);
  s.completion_tokens = field<int>(j, "completion_tokens", origin, s.completion_tokens);
  s.long_tokens = field<int>(j, "long_tokens", origin, s.long_tokens);
  s.thinking_tokens = field<int>(j, "thinking_tokens", origin, s.thinking_tokens);
  s.perplexity_ctx = field<int>(j, "perplexity_ctx", origin, s.perplexity_ctx);
  for (int v : {s.answer_tokens, s.completion_tokens, s.long_tokens, s.thinking_tokens}) {
    if (v < 1 || v > 65536) throw Error(origin + ": token limits must be from 1 to 65536");
  }
  if (s.perplexity_ctx < 4) throw Error(origin + ": perplexity_ctx must be at least 4");
  if (j.contains("weights")) {
    const json& w = j.at("weights");
    const std::string where = origin + ": weights";
    s.weights = {field<double>(w, "factual", where, s.weights.factual),
                 field<double>(w, "coherence", where, s.weights.coherence),
                 field<double>(w, "perplexity", where, s.weights.perplexity),
                 field<double>(w, "repetition", where, s.weights.repetition),
                 field<double>(w, "thinking", where, s.weights.thinking)};
  }
  for (const json& q : array(j, "questions", origin)) {
    const std::string where = origin + ": question " + std::to_string(s.questions.size());
    s.questions.push_back({required<std::string>(q, "id", where), field<std::string>(q, "category", where, ""),
                           required<std::string>(q, "question", where),
                           required<std::vector<std::string>>(q, "answers", where)});
    if (s.questions.back().answers.empty()) throw Error(where + ": no accepted answers");
  }
  for (const json& c : array(j, "completions", origin)) {
    const std::string where = origin + ": completion " + std::to_string(s.completions.size());
    s.completions.push_back({required<std::string>(c, "id", where), required<std::string>(c, "prompt", where),
                             required<std::vector<std::string>>(c, "keywords", where)});
  }
  for (const json& l : array(j, "long_prompts", origin)) {
    const std::string where = origin + ": long prompt " + std::to_string(s.long_prompts.size());
    s.long_prompts.push_back({required<std::string>(l, "id", where), required<std::string>(l, "prompt", where)});
  }
  for (const json& t : array(j, "thinking", origin)) {
    const std::string where = origin + ": thinking check " + std::to_string(s.thinking.size());
    s.thinking.push_back({required<std::string>(t, "id", where), required<std::string>(t, "question", where),
                          field<bool>(t, "thinking", where, true),
                          required<std::vector<std::string>>(t, "answers", where)});
  }
  s.perplexity_text = field<std::string>(j, "perplexity_text", origin, "");
  if (s.questions.empty() && s.completions.empty() && s.long_prompts.empty() && s.perplexity_text.empty()) {
    throw Error(origin + ": the suite has nothing to evaluate");
  }
  return s;
}

Suite Suite::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return from_json(text, path);
}

Suite Suite::builtin() { return from_json(embedded_default_suite(), "built-in suite"); }

std::vector<std::string> normalize_words(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c >= 0x80) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

bool answer_matches(std::string_view reply, const std::vector<std::string>& accepted) {
  const std::vector<std::string> words = normalize_words(reply);
  for (const std::string& answer : accepted) {
    const std::vector<std::string> want = normalize_words(answer);
    if (want.empty()) continue;
    if (std::search(words.begin(), words.end(), want.begin(), want.end()) != words.end()) return true;
  }
  return false;
}

double distinct_ngram_ratio(std::string_view text, int n) {
  const std::vector<std::string> words = normalize_words(text);
  if (n < 1 || words.size() < static_cast<size_t>(n)) return 1.0;
  std::set<std::vector<std::string>> distinct;
  const size_t total = words.size() - static_cast<size_t>(n) + 1;
  for (size_t i = 0; i < total; ++i) {
    distinct.insert(std::vector<std::string>(words.begin() + static_cast<std::ptrdiff_t>(i),
                                             words.begin() + static_cast<std::ptrdiff_t>(i) + n));
  }
  return static_cast<double>(distinct.size()) / static_cast<double>(total);
}

double perplexity_score(double ppl) {
  if (!(ppl > 0)) return 0.0;
  return std::clamp((std::log(1000.0) - std::log(ppl)) / (std::log(1000.0) - std::log(3.0)), 0.0, 1.0);
}

std::string_view text_after_think(std::string_view reply) {
  const size_t close = reply.rfind("</think>");
  return close == std::string_view::npos ? reply : reply.substr(close + 8);
}

EvalResult run_eval(Transformer& transformer, const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                    const Suite& suite, const Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const bool qwen3 = chat_template.kind() == ChatTemplateKind::Qwen3;
  const int total = static_cast<int>(suite.questions.size() + suite.completions.size() + suite.long_prompts.size() +
                                     (qwen3 ? suite.thinking.size() : 0) + (suite.perplexity_text.empty() ? 0 : 1));
  int done = 0;
  auto step = [&](std::string_view what) {
    if (progress) progress(what, done, total);
    ++done;
  };
  EvalResult r;
  r.suite = suite.name;

  // Perplexity first: it clears the default sequence, which the generator then starts from.
  if (!suite.perplexity_text.empty()) {
    step("perplexity");
    const std::vector<int32_t> tokens = tokenizer.encode(suite.perplexity_text, /*parse_special=*/false);
    const int64_t n_ctx = std::min<int64_t>(suite.perplexity_ctx, transformer.n_ctx());
    const int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
    if (n_chunks < 1) {
      throw Error(fmt::format("{}: perplexity_text has {} tokens, less than one chunk of {}", suite.name,
                              tokens.size(), n_ctx));
    }
    PerplexityStats stats;
    for (int64_t c = 0; c < n_chunks; ++c) {
      score_chunk(transformer, std::span<const int32_t>(tokens.data() + c * n_ctx, static_cast<size_t>(n_ctx)), stats);
    }
    r.ppl = stats.ppl();
    r.perplexity = perplexity_score(r.ppl);
  }
  transformer.truncate(0);
  Generator generator(transformer, tokenizer);

  int passed = 0;
  for (const Question& q : suite.questions) {
    step(q.id);
    const std::string reply = generate(generator, tokenizer, chat_prompt(chat_template, suite.system_prompt, q.question, false),
                                       suite.answer_tokens, r.tokens_generated);
    const bool pass = answer_matches(text_after_think(reply), q.answers);
    passed += pass;
    r.items.push_back({"factual", q.id, q.category, q.question, reply, pass, pass ? 1.0 : 0.0});
  }
  r.factual = suite.questions.empty() ? 0 : static_cast<double>(passed) / static_cast<double>(suite.questions.size());

  passed = 0;
  for (const CompletionPrompt& c : suite.completions) {
    step(c.id);
    const std::string text = generate(generator, tokenizer, c.prompt, suite.completion_tokens, r.tokens_generated);
    const bool pass = answer_matches(text, c.keywords) && distinct_ngram_ratio(text) >= 0.5;
    passed += pass;
    r.items.push_back({"coherence", c.id, "completion", c.prompt, text, pass, pass ? 1.0 : 0.0});
  }
  r.coherence = suite.completions.empty() ? 0 : static_cast<double>(passed) / static_cast<double>(suite.completions.size());

  double distinct_sum = 0;
  for (const LongPrompt& l : suite.long_prompts) {
    step(l.id);
    const std::string reply = generate(generator, tokenizer, chat_prompt(chat_template, "", l.prompt, false),
                                       suite.long_tokens, r.tokens_generated);
    const double distinct = distinct_ngram_ratio(text_after_think(reply));
    distinct_sum += distinct;
    r.items.push_back({"repetition", l.id, "long answer", l.prompt, reply, distinct >= 0.5, distinct});
  }
  r.repetition = suite.long_prompts.empty() ? 0 : distinct_sum / static_cast<double>(suite.long_prompts.size());
  r.repetition_ratio = 1.0 - r.repetition;

  if (qwen3 && !suite.thinking.empty()) {
    passed = 0;
    for (const ThinkingCheck& t : suite.thinking) {
      step(t.id);
      const std::string reply = generate(generator, tokenizer, chat_prompt(chat_template, "", t.question, t.thinking),
                                         suite.thinking_tokens, r.tokens_generated);
      const bool closed = reply.find("</think>") != std::string::npos;
      const bool opened = reply.find("<think>") != std::string::npos;
      const bool pass = (t.thinking ? closed : !opened && !closed) && answer_matches(text_after_think(reply), t.answers);
      passed += pass;
      r.items.push_back({"thinking", t.id, t.thinking ? "thinking on" : "thinking off", t.question, reply, pass,
                         pass ? 1.0 : 0.0});
    }
    r.thinking = static_cast<double>(passed) / static_cast<double>(suite.thinking.size());
  }

  const Weights& w = suite.weights;
  double sum = 0, weight = 0;
  auto add = [&](bool applies, double wi, double value) {
    if (!applies) return;
    sum += wi * value;
    weight += wi;
  };
  add(!suite.questions.empty(), w.factual, r.factual);
  add(!suite.completions.empty(), w.coherence, r.coherence);
  add(!suite.perplexity_text.empty(), w.perplexity, r.perplexity);
  add(!suite.long_prompts.empty(), w.repetition, r.repetition);
  add(r.thinking >= 0, w.thinking, r.thinking);
  r.score = weight > 0 ? 100.0 * sum / weight : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) progress("done", total, total);
  return r;
}

nlohmann::json EvalResult::to_json() const {
  json items_json = json::array();
  for (const ItemResult& i : items) {
    items_json.push_back({{"part", i.part}, {"id", i.id}, {"category", i.category}, {"prompt", i.prompt},
                          {"output", i.output}, {"pass", i.pass}, {"value", i.value}});
  }
  json parts = {{"factual", factual},       {"coherence", coherence},
                {"perplexity", ppl},        {"perplexity_score", perplexity},
                {"repetition_ratio", repetition_ratio}, {"repetition_score", repetition}};
  parts["thinking"] = thinking >= 0 ? json(thinking) : json(nullptr);
  return {{"suite", suite}, {"score", score}, {"parts", parts}, {"items", items_json},
          {"seconds", seconds}, {"tokens_generated", tokens_generated}};
}

std::string EvalResult::to_markdown() const {
  std::string md = fmt::format("## xelm eval: {}\n\n**Score: {:.1f} / 100**\n\n", suite, score);
  md += "| part | value |\n|---|---|\n";
  md += fmt::format("| factual accuracy | {:.1f}% |\n", 100 * factual);
  md += fmt::format("| coherence | {:.1f}% |\n", 100 * coherence);
  md += fmt::format("| perplexity | {:.3f} (score {:.2f}) |\n", ppl, perplexity);
  md += fmt::format("| repetition ratio | {:.3f} |\n", repetition_ratio);
  md += thinking >= 0 ? fmt::format("| thinking checks | {:.1f}% |\n", 100 * thinking) : "| thinking checks | n/a |\n";
  md += fmt::format("\n{} tokens generated in {:.1f} s\n\n| part | id | category | pass | output |\n|---|---|---|---|---|\n",
                    tokens_generated, seconds);
  for (const ItemResult& i : items) {
    md += fmt::format("| {} | {} | {} | {} | {} |\n", i.part, i.id, i.category,
                      i.part == "repetition" ? fmt::format("{:.2f}", i.value) : (i.pass ? "yes" : "no"),
                      markdown_cell(i.output, 80));
  }
  return md;
}

}  // namespace xelm::eval
