// cmd_tune.cpp — `xelm tune`: runs the offload sweep for a model, recommends a configuration per
// goal, saves the recommendation for the device/driver/model and draws tok/s against -ngl as SVG.
// The work is in bench/tune.h and bench/tune_store.h.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "bench/tune.h"
#include "bench/tune_store.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/offload_plan.h"
#include "runtime/version.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

std::atomic<bool> g_interrupted{false};

// First Ctrl-C: finish the current repetition and keep the results; a second one ends the process.
extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}

struct TuneCliOptions {
  bench::TuneParams params;
  std::string goal = "tg";
  std::string plot;
  bool dry_run = false;
};

nlohmann::json measurement_json(const bench::TuneMeasurement& m) {
  return {{"backend", m.config.backend}, {"n_gpu_layers", m.config.n_gpu_layers}, {"n_threads", m.config.n_threads},
          {"n_batch", m.config.n_batch}, {"kv_type", m.config.kv_type}, {"pp_ts", m.pp_ts}, {"pp_stddev", m.pp_sd},
          {"tg_ts", m.tg_ts}, {"tg_stddev", m.tg_sd}, {"memory_estimate_bytes", m.memory_estimate_bytes},
          {"vm_hwm_bytes", m.vm_hwm_bytes}};
}

std::string measured_text(double ts, double sd) { return ts > 0 ? fmt::format("{:.2f} ± {:.2f}", ts, sd) : "-"; }

int run_tune_command(TuneCliOptions& o, const Environment& env) {
  const std::unique_ptr<Model> model = Model::load(o.params.model_path);
  const int64_t n_layer = model->config().n_layer;
  const std::vector<bench::BenchConfig> plan = bench::tune_plan(o.params, n_layer);
  const std::string test_names = fmt::format("pp{} and tg{}, {} repetitions", o.params.n_prompt, o.params.n_gen, o.params.repetitions);
  if (o.dry_run) {
    std::printf("tune plan for %s (%lld layers): %zu configs, each %s\n", o.params.model_path.c_str(),
                static_cast<long long>(n_layer), plan.size(), test_names.c_str());
    for (size_t i = 0; i < plan.size(); ++i) {
      std::printf("%zu. %s %s\n", i + 1, plan[i].backend.c_str(), bench::config_flags(plan[i]).c_str());
    }
    return 0;
  }

  g_interrupted.store(false);
  std::signal(SIGINT, on_sigint);
  const std::vector<bench::TuneMeasurement> measurements =
      bench::run_tune(o.params, env, plan, g_interrupted, [&](size_t index, const bench::BenchConfig& config) {
        std::fprintf(stderr, "tune [%zu/%zu] %s %s: %s (Ctrl-C stops and keeps what was measured)\n", index + 1,
                     plan.size(), config.backend.c_str(), bench::config_flags(config).c_str(), test_names.c_str());
      });
  std::signal(SIGINT, SIG_DFL);
  const bool interrupted = g_interrupted.load();
  if (interrupted) spdlog::warn("tune: interrupted; recommending from the {} configs measured", measurements.size());
  if (measurements.empty()) throw Error("tune: nothing was measured");

  std::string table = "| backend | -ngl | threads | n_batch | pp t/s | tg t/s | memory (estimate) | VmHWM |\n"
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const bench::TuneMeasurement& m : measurements) {
    table += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", m.config.backend, m.config.n_gpu_layers,
                         m.config.n_threads, m.config.n_batch, measured_text(m.pp_ts, m.pp_sd),
                         measured_text(m.tg_ts, m.tg_sd), format_bytes(m.memory_estimate_bytes), format_bytes(m.vm_hwm_bytes));
  }
  std::fputs(table.c_str(), stdout);
  std::puts("memory: estimate_memory for each run's shape (CPU + GPU); VmHWM is the process's peak so far (cumulative)");

  const std::vector<bench::Recommendation> recommendations = bench::recommend(measurements);
  const bench::Recommendation* chosen = nullptr;
  nlohmann::json per_goal = nlohmann::json::object();
  for (const bench::Recommendation& r : recommendations) {
    std::printf("%s %-8s %s\n", r.goal == o.goal ? "=>" : "  ", r.goal.c_str(), r.reason.c_str());
    per_goal[r.goal] = {{"n_gpu_layers", r.choice.config.n_gpu_layers}, {"n_threads", r.choice.config.n_threads},
                        {"n_batch", r.choice.config.n_batch}, {"reason", r.reason}};
    if (r.goal == o.goal) chosen = &r;
  }
  if (chosen == nullptr) throw Error(fmt::format("tune: no measurement allows a recommendation for --goal {}", o.goal));

  std::string device = "cpu-only", driver = "none";
  for (const bench::TuneMeasurement& m : measurements) {
    if (!m.gpu_name.empty()) {
      device = m.gpu_name;
      driver = m.gpu_driver;
    }
  }
  nlohmann::json record = {{"model_file", std::filesystem::absolute(o.params.model_path).string()},
                           {"build_commit", std::string(build_commit())},
                           {"goal", o.goal},
                           {"recommended", per_goal[o.goal]},
                           {"recommendations", per_goal},
                           {"tests", {{"n_prompt", o.params.n_prompt}, {"n_gen", o.params.n_gen}, {"repetitions", o.params.repetitions}}},
                           {"memory_source", "estimate_memory (CPU + GPU) per run; vm_hwm_bytes is the cumulative process peak"},
                           {"interrupted", interrupted},
                           {"tuned_at", static_cast<int64_t>(std::time(nullptr))},
                           {"measurements", nlohmann::json::array()}};
  for (const bench::TuneMeasurement& m : measurements) record["measurements"].push_back(measurement_json(m));
  const std::filesystem::path saved = bench::save_tuning(env.tune_store_dir, record, o.params.model_path, device, driver);
  std::printf("saved the recommendation (%s: %s) for %s / %s to %s\n", o.goal.c_str(),
              bench::config_flags(chosen->choice.config).c_str(), device.c_str(), driver.c_str(), saved.c_str());

  const std::string plot = o.plot.empty() ? "xelm-tune-" + std::filesystem::path(o.params.model_path).stem().string() + ".svg" : o.plot;
  std::ofstream svg(plot);
  svg << bench::render_tune_svg(measurements, fmt::format("{}: tok/s against GPU offload ({})", std::filesystem::path(o.params.model_path).filename().string(), device),
                                n_layer, o.params.n_prompt, o.params.n_gen);
  if (!svg) throw Error(fmt::format("{}: cannot write the plot", plot));
  std::printf("plot: %s\n", plot.c_str());
  return 0;
}

}  // namespace

Subcommand add_tune_command(CLI::App& app) {
  auto opts = std::make_shared<TuneCliOptions>();
  CLI::App* cmd = app.add_subcommand("tune", "Sweep -ngl (and optionally threads/batch), recommend and save the best config");
  cmd->add_option("-m,--model", opts->params.model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--goal", opts->goal, "What to optimise: tg, pp, balanced or memory")
      ->check(CLI::IsMember(bench::kTuneGoals))->capture_default_str();
  cmd->add_option("-t,--threads", opts->params.n_threads, "Thread counts to sweep (0 = one per physical core)")
      ->delimiter(',')->check(CLI::Range(0, 1024));
  cmd->add_option("-b,--batch-size", opts->params.n_batch, "Batch sizes to sweep")->delimiter(',')->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-p,--n-prompt", opts->params.n_prompt, "Prompt length of the pp test")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("-n,--n-gen", opts->params.n_gen, "Tokens of the tg test")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("-r,--repetitions", opts->params.repetitions, "Timed repetitions per test")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--kv-type", opts->params.kv_type, "KV cache type")->check(CLI::IsMember({"f16", "f32", "q8_0"}))->capture_default_str();
  cmd->add_option("--device", opts->params.device, "OpenCL device: index or name substring");
  cmd->add_option("--plot", opts->plot, "SVG chart file (default: xelm-tune-<model stem>.svg here)");
  cmd->add_flag("--dry-run", opts->dry_run, "Print the sweep plan only");
  return {cmd, [opts](const Environment& env) { return run_tune_command(*opts, env); }};
}

}  // namespace xelm::cli
