// sampling_options.h — the sampling flags of the generating commands (run, chat, serve) with
// llama.cpp's names, and Qwen3's per-mode sampling presets that chat and serve apply when those
// flags are not given.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "runtime/sampler.h"

namespace xelm::cli {

// --temp, --top-k, --top-p, --min-p, penalties, mirostat and the seed, with llama.cpp's names.
// seed_flags: "-s,--seed" by default; chat uses "--seed" since -s is its --system.
void add_sampling_options(CLI::App& cmd, SamplerParams& params, const std::string& seed_flags = "-s,--seed");

// Whether any of the flags that Qwen3's per-mode presets cover (--temp, --top-k, --top-p, --min-p) was given.
bool mode_preset_flags_given(const CLI::App& cmd);
// `params` with temperature, top-k, top-p and min-p replaced by Qwen3's recommendation for the mode
// (thinking or not); chat and serve use it for Qwen3 models unless those flags were given.
SamplerParams with_qwen3_mode_preset(SamplerParams params, bool enable_thinking);

}  // namespace xelm::cli
