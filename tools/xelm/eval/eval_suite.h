// eval_suite.h — `xelm eval`: a model evaluation suite read from JSON (data/eval/default_suite.json
// is embedded in the binary at build time; --suite FILE.json replaces it), run greedily so that one
// model and one suite always give the same result, and scored out of 100.
//
// Parts and their default weights (the suite's "weights" may change them):
//   factual     50  questions with exact expected answers: passed / asked. An answer passes when the
//                   words of one accepted answer appear, in order and adjacent, among the words of the
//                   reply (lowercase, punctuation removed; for Qwen3, the text after </think>)
//   coherence   15  raw completions of sentence starts: share whose continuation contains one of the
//                   prompt's keywords and repeats little (distinct word 3-grams >= 50%)
//   perplexity  15  PPL on the bundled text (llama.cpp's method, runtime/perplexity.h); score
//                   (ln 1000 - ln PPL) / (ln 1000 - ln 3) clamped to 0..1: PPL 3 -> 1, 1000 -> 0
//   repetition  10  long answers: repetition ratio = 1 - distinct word 3-grams / all 3-grams; score
//                   1 - ratio
//   thinking    10  Qwen3-family models only (the chat template's kind): with thinking on the reply
//                   holds </think> and the right answer after it; with it off, no <think> and the
//                   right answer
// The score is 100 * sum(weight * part) / sum(weight) over the parts that apply.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"
#include "runtime/transformer.h"

namespace xelm::eval {

struct Question {
  std::string id, category, question;
  std::vector<std::string> answers;  // accepted answers; one match passes
};
struct CompletionPrompt {
  std::string id, prompt;
  std::vector<std::string> keywords;
};
struct LongPrompt {
  std::string id, prompt;
};
struct ThinkingCheck {
  std::string id, question;
  bool thinking = true;
  std::vector<std::string> answers;
};
struct Weights {
  double factual = 50, coherence = 15, perplexity = 15, repetition = 10, thinking = 10;
};

struct Suite {
  std::string name;
  std::string system_prompt;
  int answer_tokens = 16, completion_tokens = 32, long_tokens = 80, thinking_tokens = 320, perplexity_ctx = 256;
  Weights weights;
  std::vector<Question> questions;
  std::vector<CompletionPrompt> completions;
  std::vector<LongPrompt> long_prompts;
  std::vector<ThinkingCheck> thinking;
  std::string perplexity_text;

  // Throws xelm::Error naming `origin` and the field at fault.
  static Suite from_json(std::string_view text, const std::string& origin);
  static Suite load(const std::string& path);
  static Suite builtin();  // data/eval/default_suite.json as embedded at build time
};

// Scoring primitives (unit-tested).
std::vector<std::string> normalize_words(std::string_view text);  // lowercase words, punctuation dropped
bool answer_matches(std::string_view reply, const std::vector<std::string>& accepted);
double distinct_ngram_ratio(std::string_view text, int n = 3);  // distinct / all word n-grams; 1 if none
double perplexity_score(double ppl);
std::string_view text_after_think(std::string_view reply);  // after the last </think>, or all of it

struct ItemResult {
  std::string part;  // factual, coherence, repetition, thinking
  std::string id, category, prompt, output;
  bool pass = false;
  double value = 0;  // 1/0 for pass/fail parts; the distinct 3-gram ratio for repetition
};

struct EvalResult {
  std::string suite;
  std::vector<ItemResult> items;
  double factual = 0, coherence = 0, ppl = 0, perplexity = 0, repetition_ratio = 0, repetition = 0;
  double thinking = -1;  // -1: not applicable (not a Qwen3-family model)
  double score = 0;
  double seconds = 0;
  int64_t tokens_generated = 0;

  nlohmann::json to_json() const;
  std::string to_markdown() const;
};

// Called before each item: what is running, items done, items in total.
using Progress = std::function<void(std::string_view what, int done, int total)>;

// Runs the whole suite on `transformer` (its default sequence; greedy). Thinking checks run only
// for ChatTemplateKind::Qwen3.
EvalResult run_eval(Transformer& transformer, const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                    const Suite& suite, const Progress& progress = {});

}  // namespace xelm::eval
