// cmd_run.cpp — `xelm run`: raw completion. Continues a prompt (text, or token ids with --tokens)
// and streams each token's text to stdout as it is generated; figures go to stderr.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/generation.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"
#include "tools/xelm/sampling_options.h"

namespace xelm::cli {
namespace {

struct RunOptions {
  EngineOptions engine;
  std::string prompt;
  std::string tokens;
  int n_predict = 32;
  bool no_parse_special = false;
  bool print_ids = false;
  SamplerParams sampling{.temperature = 0.0f};  // greedy unless --temp is given
};

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long long id = std::stoll(item, &used);
      if (used != item.size() || id < 0 || id > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(id));
    } catch (const std::exception&) {
      throw Error("--tokens: '" + item + "' is not a token id (expected e.g. --tokens 9707,11,1879)");
    }
  }
  if (ids.empty()) throw Error("--tokens: no token ids given");
  return ids;
}

int run(const RunOptions& o, const Environment& env) {
  if (o.prompt.empty() == o.tokens.empty()) throw Error("give a prompt with -p TEXT or as token ids with --tokens");
  const std::vector<int32_t> given_ids = o.tokens.empty() ? std::vector<int32_t>() : parse_token_list(o.tokens);
  Engine engine = load_engine(o.engine, env);
  const auto tokenizer = Tokenizer::from_gguf(engine.model->file());
  const std::vector<int32_t> prompt = o.tokens.empty() ? tokenizer->encode(o.prompt, !o.no_parse_special) : given_ids;
  if (!o.tokens.empty() && !o.print_ids) std::fputs(tokenizer->decode(prompt).c_str(), stdout);
  if (!o.prompt.empty() && !o.print_ids) std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);

  Generator generator(*engine.transformer, *tokenizer);
  Sampler sampler(o.sampling);
  int64_t decode_steps = -1;  // evals after the prompt; counters restart at the first generated token
  const GenerationResult r = generator.generate(prompt, o.n_predict, sampler, [&](int32_t token, std::string_view text) {
    if (engine.gpu && decode_steps < 0) engine.gpu->reset_counters();
    ++decode_steps;
    if (o.print_ids) {
      if (token >= 0) std::printf("%d ", token);
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
    }
    std::fflush(stdout);
    return true;
  });
  std::fputs("\n", stdout);
  spdlog::info("prompt: {} tokens in {:.3f} s ({:.1f} tok/s); generated: {} tokens in {:.3f} s ({:.1f} tok/s) on {}",
               r.n_prompt, r.prompt_seconds, r.n_prompt / std::max(r.prompt_seconds, 1e-9), r.n_generated,
               r.generate_seconds, r.n_generated / std::max(r.generate_seconds, 1e-9), engine.description);
  if (engine.gpu && decode_steps > 0) {
    const opencl::OpenClCounters& c = engine.gpu->counters();
    const double steps = static_cast<double>(decode_steps);
    const double launches = static_cast<double>(c.kernel_launches + c.buffer_copies) / steps;
    spdlog::info("OpenCL per decoded token: {:.1f} launches ({:.1f} per GPU layer), {:.1f} blocking syncs, {:.1f} KiB to "
                 "and {:.1f} KiB from the device",
                 launches, launches / static_cast<double>(std::max<int64_t>(1, engine.plan.n_gpu_layers())),
                 static_cast<double>(c.blocking_syncs) / steps, static_cast<double>(c.bytes_to_device) / steps / 1024.0,
                 static_cast<double>(c.bytes_from_device) / steps / 1024.0);
  }
  return 0;
}

}  // namespace

Subcommand add_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Raw completion: continue a prompt and stream the tokens");
  opts->engine.add_to(*cmd);
  cmd->add_option("-p,--prompt", opts->prompt, "Prompt text (special tokens like <|im_start|> are recognised)");
  cmd->add_option("--tokens", opts->tokens, "Prompt as comma-separated token ids (e.g. 9707,11,1879)");
  cmd->add_option("-n,--n-predict", opts->n_predict, "Tokens to generate (-1: until done)")->check(CLI::Range(-1, 1 << 24));
  cmd->add_flag("--no-parse-special", opts->no_parse_special, "Treat special-token text in the prompt as plain text");
  cmd->add_flag("--ids", opts->print_ids, "Print generated token ids instead of text");
  add_sampling_options(*cmd, opts->sampling);
  return {cmd, [opts](const Environment& env) { return run(*opts, env); }};
}

}  // namespace xelm::cli
