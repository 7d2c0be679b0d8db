// cmd_surgery.cpp — `xelm surgery`: layer surgery on a GGUF model.
//   xelm surgery IN.gguf OUT.gguf --delete 10 --swap 11,12 ...   writes the modified model
//   xelm surgery --search delete|swap|duplicate -m MODEL          scores every single-layer candidate
// The search loads the model once; each candidate is a LayerPlan over the same mapping, evaluated
// with `xelm eval`'s suite. Results are saved after every candidate (JSON), so Ctrl-C keeps what
// was measured and --resume continues; the ranking goes to stdout and a table and SVG plot to files.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/layer_plan.h"
#include "runtime/surgery.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"
#include "tools/xelm/eval/eval_suite.h"
#include "tools/xelm/progress.h"

namespace xelm::cli {
namespace {

struct SurgeryOptions {
  std::string in_path, out_path;
  std::vector<std::string> deletes, swaps, duplicates, interpolates, layer_lists, plans;
  // --search
  std::string search;
  EngineOptions engine;
  std::string suite_path;
  std::string prefix;  // output files PREFIX.json, PREFIX.md, PREFIX.svg
  std::string resume;
  std::string write_best;
  int limit = -1;  // candidates to evaluate at most (tests, quick looks)
};

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }

// The operations in the order they were given on the command line, as LayerPlan::parse text.
std::string plan_text(const CLI::App& cmd, const std::map<const CLI::Option*, std::string>& verbs) {
  std::map<const CLI::Option*, size_t> used;
  std::vector<std::string> ops;
  for (const CLI::Option* opt : cmd.parse_order()) {
    const auto verb = verbs.find(opt);
    if (verb == verbs.end()) continue;
    const size_t i = used[opt]++;
    if (i >= opt->results().size()) continue;
    ops.push_back(verb->second.empty() ? opt->results()[i] : verb->second + " " + opt->results()[i]);
  }
  std::string text;
  for (const std::string& op : ops) text += (text.empty() ? "" : "; ") + op;
  return text;
}

int write_model(const SurgeryOptions& o, const std::string& text) {
  if (o.in_path.empty() || o.out_path.empty()) throw Error("surgery: give IN.gguf OUT.gguf (or --search KIND -m MODEL)");
  if (o.in_path == o.out_path) throw Error("surgery: the output path must differ from the input path");
  if (text.empty()) throw Error("surgery: no operation given (--delete, --swap, --duplicate, --interpolate, --layers)");
  const auto model = Model::load(o.in_path);  // validates the source and applies the plan as a check
  const LayerPlan plan = LayerPlan::parse(text, model->n_source_layers());
  const SurgeryStats stats = write_surgery(model->file(), plan, o.out_path);
  Model::load(o.out_path);  // the result must load
  spdlog::info("wrote {}: {} -> {} layers [{}] ('{}'); {} tensors copied as they are, {} interpolated "
               "(dequantized, mixed, requantized to their source type); {:.1f} MiB of tensor data",
               o.out_path, plan.n_source, plan.size(), plan.describe(), plan.operations, stats.tensors_copied,
               stats.tensors_mixed, static_cast<double>(stats.bytes_written) / (1 << 20));
  return 0;
}

// ---- search

struct Candidate {
  std::string operation;  // "" for the unmodified model
  int64_t layer = -1;
  nlohmann::json result;  // the eval summary, empty until measured
};

nlohmann::json summary(const eval::EvalResult& r) {
  nlohmann::json j = r.to_json();
  j.erase("items");
  return j;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out || !(out << text)) throw Error(path + ": cannot write");
}

std::string svg_plot(const std::string& title, const std::vector<Candidate>& candidates, double baseline) {
  constexpr double kW = 900, kH = 420, kLeft = 60, kRight = 20, kTop = 40, kBottom = 50;
  std::vector<const Candidate*> measured;
  for (const Candidate& c : candidates) {
    if (!c.operation.empty() && !c.result.is_null()) measured.push_back(&c);
  }
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  auto y_of = [&](double score) { return kTop + plot_h * (1.0 - std::clamp(score, 0.0, 100.0) / 100.0); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\">{3}</text>\n",
      kW, kH, kLeft, title);
  for (int tick = 0; tick <= 100; tick += 20) {
    const double y = y_of(tick);
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1f}\" "
                       "text-anchor=\"end\">{}</text>\n",
                       kLeft, y, kW - kRight, y, kLeft - 6, y + 4, tick);
  }
  const double slot = measured.empty() ? plot_w : plot_w / static_cast<double>(measured.size());
  for (size_t i = 0; i < measured.size(); ++i) {
    const double score = measured[i]->result.value("score", 0.0);
    const double x = kLeft + slot * static_cast<double>(i);
    const double y = y_of(score);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#4a7ab8\"><title>{}: "
                       "{:.1f}</title></rect>\n",
                       x + slot * 0.1, y, slot * 0.8, kTop + plot_h - y, measured[i]->operation, score);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x + slot / 2,
                       kTop + plot_h + 16, measured[i]->layer);
  }
  if (baseline >= 0) {
    const double y = y_of(baseline);
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#c33\" stroke-dasharray=\"6 4\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#c33\">unmodified {:.1f}</text>\n",
                       kLeft, y, kW - kRight, y, kW - kRight, y - 5, baseline);
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">layer</text>\n<text x=\"16\" y=\"{:.1f}\" "
                     "transform=\"rotate(-90 16 {:.1f})\" text-anchor=\"middle\">score / 100</text>\n</svg>\n",
                     kLeft + plot_w / 2, kH - 12, kTop + plot_h / 2, kTop + plot_h / 2);
  return svg;
}

std::string ranking_table(const std::vector<Candidate>& candidates, double baseline) {
  std::vector<const Candidate*> ranked;
  for (const Candidate& c : candidates) {
    if (!c.result.is_null()) ranked.push_back(&c);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const Candidate* a, const Candidate* b) {
    return a->result.value("score", 0.0) > b->result.value("score", 0.0);
  });
  std::string md = "| rank | candidate | score | vs unmodified | factual | PPL | coherence | repetition ratio | seconds |\n"
                   "|---|---|---|---|---|---|---|---|---|\n";
  int rank = 0;
  for (const Candidate* c : ranked) {
    const nlohmann::json& r = c->result;
    const nlohmann::json& p = r.at("parts");
    const double score = r.value("score", 0.0);
    md += fmt::format("| {} | {} | {:.1f} | {} | {:.0f}% | {:.3f} | {:.0f}% | {:.3f} | {:.1f} |\n", ++rank,
                      c->operation.empty() ? "(unmodified)" : c->operation, score,
                      baseline >= 0 ? fmt::format("{:+.1f}", score - baseline) : "", 100 * p.value("factual", 0.0),
                      p.value("perplexity", 0.0), 100 * p.value("coherence", 0.0), p.value("repetition_ratio", 0.0),
                      r.value("seconds", 0.0));
  }
  return md;
}

int search(const SurgeryOptions& o, const Environment& env) {
  const std::string model_name = std::filesystem::path(o.engine.model_path).filename().string();
  const std::string prefix = o.prefix.empty() ? fmt::format("surgery-{}-{}", o.search, model_name) : o.prefix;
  const eval::Suite suite = o.suite_path.empty() ? eval::Suite::builtin() : eval::Suite::load(o.suite_path);
  const std::shared_ptr<const Model> base = Model::load(o.engine.model_path);
  const int64_t n = base->n_source_layers();
  const auto tokenizer = Tokenizer::from_gguf(base->file());
  const ChatTemplate chat_template = ChatTemplate::from_gguf(base->file());

  std::vector<Candidate> candidates{{"", -1, {}}};
  for (int64_t k = 0; k < n; ++k) {
    if (o.search == "delete" && n > 1) candidates.push_back({fmt::format("delete {}", k), k, {}});
    if (o.search == "swap" && k + 1 < n) candidates.push_back({fmt::format("swap {},{}", k, k + 1), k, {}});
    if (o.search == "duplicate") candidates.push_back({fmt::format("duplicate {}", k), k, {}});
  }
  if (o.limit >= 0 && static_cast<size_t>(o.limit) + 1 < candidates.size()) candidates.resize(static_cast<size_t>(o.limit) + 1);

  nlohmann::json saved = {{"model", model_name}, {"kind", o.search}, {"suite", suite.name}, {"n_layer", n}};
  if (!o.resume.empty()) {
    std::ifstream in(o.resume);
    if (!in) throw Error(o.resume + ": cannot open");
    nlohmann::json previous;
    try {
      previous = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON ({})", o.resume, e.what()));
    }
    if (previous.value("model", "") != model_name || previous.value("kind", "") != o.search ||
        previous.value("suite", "") != suite.name) {
      throw Error(fmt::format("{}: is a search of '{}' by {} with suite '{}', not this one", o.resume,
                              previous.value("model", ""), previous.value("kind", ""), previous.value("suite", "")));
    }
    int reused = 0;
    for (Candidate& c : candidates) {
      for (const nlohmann::json& r : previous.value("candidates", nlohmann::json::array())) {
        if (r.value("operation", "?") == c.operation) {
          c.result = r.at("result");
          ++reused;
        }
      }
    }
    spdlog::info("{}: {} of {} candidates already measured", o.resume, reused, candidates.size());
  }

  auto save = [&] {
    nlohmann::json list = nlohmann::json::array();
    for (const Candidate& c : candidates) {
      if (!c.result.is_null()) list.push_back({{"operation", c.operation}, {"layer", c.layer}, {"result", c.result}});
    }
    saved["candidates"] = list;
    write_text(prefix + ".json", saved.dump(2) + "\n");
  };

  g_interrupted.store(false);
  const auto previous_handler = std::signal(SIGINT, on_sigint);
  const auto level = spdlog::get_level();
  int done = 0;
  for (Candidate& c : candidates) {
    if (g_interrupted.load()) break;
    const std::string label = c.operation.empty() ? "unmodified" : c.operation;
    if (c.result.is_null()) {
      const LayerPlan plan = LayerPlan::parse(c.operation, n);
      spdlog::set_level(spdlog::level::warn);  // the per-candidate loader's info lines would break the bar
      Engine engine = make_engine(o.engine, env, base->with_plan(plan));
      spdlog::set_level(level);
      const eval::EvalResult r = eval::run_eval(
          *engine.transformer, *tokenizer, chat_template, suite, [&](std::string_view what, int i, int total) {
            print_progress(fmt::format("search {}/{} {}", done + 1, candidates.size(), label), i, total, what);
          });
      c.result = summary(r);
      save();
    }
    ++done;
  }
  finish_progress();
  std::signal(SIGINT, previous_handler);
  save();
  if (g_interrupted.load()) spdlog::warn("interrupted: {} of {} candidates measured; continue with --resume {}.json",
                                         done, candidates.size(), prefix);

  const double baseline = candidates[0].result.is_null() ? -1.0 : candidates[0].result.value("score", 0.0);
  const std::string table = ranking_table(candidates, baseline);
  write_text(prefix + ".md", fmt::format("## xelm surgery --search {} on {} ({} layers, suite {})\n\n{}", o.search,
                                         model_name, n, suite.name, table));
  write_text(prefix + ".svg", svg_plot(fmt::format("{}: score after {} of one layer", model_name, o.search), candidates,
                                       baseline));
  std::fputs(table.c_str(), stdout);
  const Candidate* best = nullptr;
  for (const Candidate& c : candidates) {
    if (!c.operation.empty() && !c.result.is_null() &&
        (best == nullptr || c.result.value("score", 0.0) > best->result.value("score", 0.0))) {
      best = &c;
    }
  }
  if (best != nullptr) {
    spdlog::info("best candidate: {} with {:.1f} ({}); wrote {}.json, {}.md, {}.svg", best->operation,
                 best->result.value("score", 0.0),
                 baseline >= 0 ? fmt::format("{:+.1f} against the unmodified model", best->result.value("score", 0.0) - baseline)
                               : std::string("unmodified model not measured"),
                 prefix, prefix, prefix);
    if (!o.write_best.empty()) {
      const SurgeryStats stats = write_surgery(base->file(), LayerPlan::parse(best->operation, n), o.write_best);
      spdlog::info("wrote {} ({}): {} tensors", o.write_best, best->operation, stats.tensors_copied + stats.tensors_mixed);
    }
  }
  return g_interrupted.load() ? 130 : 0;
}

}  // namespace

Subcommand add_surgery_command(CLI::App& app) {
  auto o = std::make_shared<SurgeryOptions>();
  CLI::App* cmd = app.add_subcommand(
      "surgery",
      "Layer surgery: write a model with layers deleted, swapped, duplicated or interpolated, or search for the best "
      "single-layer change. Operations apply in the order given; each index refers to the layers as they are after "
      "the previous operations (e.g. --delete 3 --delete 3 removes source layers 3 and 4). The same operations apply "
      "at load time with --layer-plan on run, chat, eval, bench, perplexity and serve.");
  cmd->add_option("input", o->in_path, "Input GGUF")->check(CLI::ExistingFile);
  cmd->add_option("output", o->out_path, "Output GGUF");
  std::map<const CLI::Option*, std::string> verbs;
  verbs[cmd->add_option("--delete", o->deletes, "Remove layer K")->allow_extra_args(false)] = "delete";
  verbs[cmd->add_option("--swap", o->swaps, "Exchange layers A,B")->allow_extra_args(false)] = "swap";
  verbs[cmd->add_option("--duplicate", o->duplicates, "Insert a copy of layer K after it")->allow_extra_args(false)] =
      "duplicate";
  verbs[cmd->add_option("--interpolate", o->interpolates,
                        "A,B[,T]: insert after A a layer (1-T)*A + T*B (T default 0.5); quantized tensors are "
                        "dequantized, mixed and requantized to the type of the lower-numbered source layer")
            ->allow_extra_args(false)] = "interpolate";
  verbs[cmd->add_option("--layers", o->layer_lists, "Keep exactly these layers in order, e.g. 0-9,11,12,12")
            ->allow_extra_args(false)] = "layers";
  verbs[cmd->add_option("--plan", o->plans, "Operations as --layer-plan takes them: 'delete 10; swap 11,12'")
            ->allow_extra_args(false)] = "";
  cmd->add_option("--search", o->search,
                  "Score every single-layer candidate of this kind with `xelm eval` (one model load) and rank them")
      ->check(CLI::IsMember({"delete", "swap", "duplicate"}));
  cmd->add_option("-m,--model", o->engine.model_path, "Model to search (--search)")->check(CLI::ExistingFile);
  cmd->add_option("-t,--threads", o->engine.n_threads, "CPU threads (default: physical cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", o->engine.n_ctx, "Context size of each candidate's evaluation")->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--suite", o->suite_path, "Eval suite JSON (default: the built-in one)")->check(CLI::ExistingFile);
  cmd->add_option("-o,--output-prefix", o->prefix,
                  "Search results PREFIX.json (resumable), PREFIX.md (ranking) and PREFIX.svg (plot); default "
                  "surgery-KIND-MODEL.gguf");
  cmd->add_option("--resume", o->resume, "Skip the candidates already measured in this search JSON")
      ->check(CLI::ExistingFile);
  cmd->add_option("--write-best", o->write_best, "Write the best candidate as a GGUF");
  cmd->add_option("--limit", o->limit, "Evaluate at most this many candidates (after the unmodified model)")
      ->check(CLI::Range(0, 1 << 20));
  o->engine.n_ctx = 1024;
  return {cmd, [o, cmd, verbs](const Environment& env) {
            if (o->search.empty()) return write_model(*o, plan_text(*cmd, verbs));
            if (o->engine.model_path.empty()) throw Error("surgery --search: give the model with -m");
            if (!o->in_path.empty() || !plan_text(*cmd, verbs).empty()) {
              throw Error("surgery --search: takes -m MODEL, not input/output files or operations");
            }
            return search(*o, env);
          }};
}

}  // namespace xelm::cli
