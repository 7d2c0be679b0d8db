// main.cpp — the `xelm` command line: one binary, one subcommand per job. Logs go to stderr through
// spdlog; generated text alone goes to stdout.
#include <cstdio>
#include <vector>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/version.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/environment.h"

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("xelm");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"xelm — run Qwen GGUF models on Intel Iris Xe (OpenCL) or the CPU"};
  app.set_version_flag("--version", std::string(xelm::version_string()) + " (" + std::string(xelm::build_commit()) + ")");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.require_subcommand(1);

  const std::vector<xelm::cli::Subcommand> commands = {
      xelm::cli::add_chat_command(app),
      xelm::cli::add_run_command(app),
      xelm::cli::add_serve_command(app),
      xelm::cli::add_perplexity_command(app),
      xelm::cli::add_info_command(app),
      xelm::cli::add_make_test_model_command(app),
      xelm::cli::add_quantize_command(app),
      xelm::cli::add_tokenize_command(app),
      xelm::cli::add_bench_command(app),
      xelm::cli::add_devices_command(app),
      xelm::cli::add_tune_command(app),
      xelm::cli::add_eval_command(app),
      xelm::cli::add_surgery_command(app),
  };

  // llama.cpp spells the offload flag -ngl; CLI11 takes single-dash names of one letter only, so the
  // alias is mapped here.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string arg = argv[i];
    if (arg == "-ngl") arg = "--n-gpu-layers";
    if (arg.rfind("-ngl=", 0) == 0) arg = "--n-gpu-layers=" + arg.substr(5);
    if (arg == "-pg") arg = "--pg";  // llama-bench's combined test flag (xelm bench)
    if (arg == "-np") arg = "--parallel";  // llama.cpp's sequences in parallel (xelm bench, xelm serve)
    args.push_back(std::move(arg));
  }
  try {
    app.parse(args);  // CLI11 takes the arguments in reverse order
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // bad flags: one line, exit code 1 like every other input error
    spdlog::error("{} (see --help)", e.what());
    return 1;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  try {
    const xelm::cli::Environment environment = xelm::cli::read_environment();
    for (const xelm::cli::Subcommand& command : commands) {
      if (command.app->parsed()) return command.run(environment);
    }
  } catch (const xelm::Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return 2;
  }
  return 0;
}
