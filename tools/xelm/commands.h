// commands.h — each `xelm` subcommand registers its flags on the CLI11 app and returns the function
// that runs it once parsing succeeded, given the settings main() read from the environment.
// Commands report bad input by throwing xelm::Error; main() prints it as one line and exits 1.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "tools/xelm/environment.h"

namespace xelm::cli {

struct Subcommand {
  CLI::App* app;                               // the parsed subcommand (its flags)
  std::function<int(const Environment&)> run;  // runs it; returns the exit code
};

Subcommand add_chat_command(CLI::App& app);
Subcommand add_run_command(CLI::App& app);
Subcommand add_serve_command(CLI::App& app);
Subcommand add_perplexity_command(CLI::App& app);
Subcommand add_info_command(CLI::App& app);
Subcommand add_make_test_model_command(CLI::App& app);
Subcommand add_quantize_command(CLI::App& app);
Subcommand add_tokenize_command(CLI::App& app);
Subcommand add_bench_command(CLI::App& app);
Subcommand add_devices_command(CLI::App& app);
Subcommand add_tune_command(CLI::App& app);
Subcommand add_eval_command(CLI::App& app);
Subcommand add_surgery_command(CLI::App& app);

}  // namespace xelm::cli
