// sampling_options.cpp — registration of the sampling flags and the Qwen3 mode presets.
#include "tools/xelm/sampling_options.h"

namespace xelm::cli {

void add_sampling_options(CLI::App& cmd, SamplerParams& s, const std::string& seed_flags) {
  cmd.add_option("--temp", s.temperature, "Temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--top-k", s.top_k, "Top-k (0 = off)")->check(CLI::Range(0, 1 << 24))->capture_default_str();
  cmd.add_option("--top-p", s.top_p, "Top-p, nucleus (1 = off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--min-p", s.min_p, "Min-p (0 = off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--repeat-penalty", s.repeat_penalty, "Penalty for repeated tokens (1 = off)")
      ->check(CLI::Range(0.01, 100.0))->capture_default_str();
  cmd.add_option("--repeat-last-n", s.repeat_last_n, "Tokens the penalties look back over (0 = off, -1 = all)")
      ->check(CLI::Range(-1, 1 << 24))->capture_default_str();
  cmd.add_option("--presence-penalty", s.presence_penalty, "Presence penalty (0 = off)")
      ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
  cmd.add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty (0 = off)")
      ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
  cmd.add_option("--think-repeat-penalty", s.think_repeat_penalty, "Repeat penalty inside <think> (0 = as outside)")
      ->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--mirostat", s.mirostat, "Mirostat: 0 = off, 2 = mirostat v2 (replaces top-k/top-p/min-p)")
      ->check(CLI::IsMember({0, 2}))->capture_default_str();
  cmd.add_option("--mirostat-ent", s.mirostat_tau, "Mirostat target entropy tau")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--mirostat-lr", s.mirostat_eta, "Mirostat learning rate eta")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option(seed_flags, s.seed, "Sampling seed (4294967295 = random)")->capture_default_str();
}

bool mode_preset_flags_given(const CLI::App& cmd) {
  for (const char* flag : {"--temp", "--top-k", "--top-p", "--min-p"}) {
    if (cmd.count(flag) > 0) return true;
  }
  return false;
}

SamplerParams with_qwen3_mode_preset(SamplerParams p, bool enable_thinking) {
  const SamplerParams mode = enable_thinking ? SamplerParams::qwen3_thinking() : SamplerParams::qwen3_non_thinking();
  p.temperature = mode.temperature;
  p.top_k = mode.top_k;
  p.top_p = mode.top_p;
  p.min_p = mode.min_p;
  return p;
}

}  // namespace xelm::cli
