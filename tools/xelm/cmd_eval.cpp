// cmd_eval.cpp — `xelm eval -m MODEL`: runs the evaluation suite (tools/xelm/eval/eval_suite.h) and
// prints the score out of 100 with per-question results, as markdown or JSON; progress on stderr.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"
#include "tools/xelm/eval/eval_suite.h"
#include "tools/xelm/progress.h"

namespace xelm::cli {
namespace {

struct EvalOptions {
  EngineOptions engine;
  std::string suite_path;
  bool json = false;
  std::string save_json, save_markdown;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out || !(out << text)) throw Error(path + ": cannot write");
}

int run_eval_command(const EvalOptions& o, const Environment& env) {
  const eval::Suite suite = o.suite_path.empty() ? eval::Suite::builtin() : eval::Suite::load(o.suite_path);
  Engine engine = load_engine(o.engine, env);
  const auto tokenizer = Tokenizer::from_gguf(engine.model->file());
  const ChatTemplate chat_template = ChatTemplate::from_gguf(engine.model->file());
  const eval::EvalResult r = eval::run_eval(*engine.transformer, *tokenizer, chat_template, suite,
                                            [](std::string_view what, int done, int total) {
                                              print_progress("eval", done, total, what);
                                            });
  finish_progress();
  nlohmann::json j = r.to_json();
  j["model"] = o.engine.model_path;
  j["layer_plan"] = engine.model->layer_plan().operations;
  j["executor"] = engine.description;
  if (!o.save_json.empty()) write_file(o.save_json, j.dump(2) + "\n");
  if (!o.save_markdown.empty()) write_file(o.save_markdown, r.to_markdown());
  const std::string out = o.json ? j.dump(2) + "\n" : r.to_markdown();
  std::fputs(out.c_str(), stdout);
  spdlog::info("score {:.1f} / 100 (factual {:.0f}%, PPL {:.2f}) in {:.1f} s on {}", r.score, 100 * r.factual, r.ppl,
               r.seconds, engine.description);
  return 0;
}

}  // namespace

Subcommand add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Score a model out of 100 on a test suite (greedy, deterministic). Weights: factual questions 50, completion "
      "coherence 15, perplexity 15, repetition of long answers 10, thinking-mode checks 10 (Qwen3-family models "
      "only; otherwise the other weights are rescaled to 100). See docs/ARCHITECTURE.md, 'Layer surgery and eval'");
  o->engine.n_ctx = 1024;
  o->engine.add_to(*cmd);
  cmd->add_option("--suite", o->suite_path, "Suite JSON (default: the built-in data/eval/default_suite.json)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", o->json, "Print the result as JSON instead of markdown");
  cmd->add_option("--save-json", o->save_json, "Also write the JSON result to this file");
  cmd->add_option("--save-md", o->save_markdown, "Also write the markdown report to this file");
  return {cmd, [o](const Environment& env) { return run_eval_command(*o, env); }};
}

}  // namespace xelm::cli
