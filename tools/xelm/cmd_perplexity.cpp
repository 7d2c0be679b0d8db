// cmd_perplexity.cpp — `xelm perplexity -m MODEL -f TEXT -c N`, as llama.cpp's llama-perplexity:
// the text is cut into non-overlapping chunks of N tokens, each scored by runtime/perplexity.h.
// Prints the running value per chunk and the final PPL with its standard error.
#include <chrono>
#include <span>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/perplexity.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"
#include "tools/xelm/engine_options.h"

namespace xelm::cli {
namespace {

struct PerplexityOptions {
  EngineOptions engine;
  std::string text_path;
  int max_chunks = -1;
};

int perplexity(PerplexityOptions o, const Environment& env) {
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) throw Error(o.text_path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every chunk is evaluated from position 0, so the cache needs exactly one chunk.
  Engine engine = load_engine(o.engine, env);
  const auto tokenizer = Tokenizer::from_gguf(engine.model->file());
  const std::vector<int32_t> tokens = tokenizer->encode(text, /*parse_special=*/false);
  const int64_t n_ctx = engine.transformer->n_ctx();
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  if (o.max_chunks > 0) n_chunks = std::min<int64_t>(n_chunks, o.max_chunks);
  if (n_chunks < 1) {
    throw Error(o.text_path + ": " + std::to_string(tokens.size()) + " tokens is less than one chunk of " +
                std::to_string(n_ctx) + " (lower -c)");
  }
  spdlog::info("{} tokens, {} chunks of {}, scoring the second half of each", tokens.size(), n_chunks, n_ctx);

  PerplexityStats stats;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    score_chunk(*engine.transformer, std::span<const int32_t>(tokens.data() + chunk * n_ctx, static_cast<size_t>(n_ctx)),
                stats);
    std::printf("[%lld]%.4f,", static_cast<long long>(chunk + 1), stats.ppl());
    std::fflush(stdout);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", stats.ppl(), stats.std_error());
  spdlog::info("scored {} tokens in {:.1f} s ({:.1f} tokens/s evaluated) on {}", stats.count, seconds,
               static_cast<double>(n_chunks * n_ctx) / seconds, engine.description);
  return 0;
}

}  // namespace

Subcommand add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text file (llama.cpp's method)");
  o->engine.n_ctx = 512;
  o->engine.add_to(*cmd);
  cmd->add_option("-f,--file", o->text_path, "Text file to score")->required()->check(CLI::ExistingFile);
  cmd->add_option("--chunks", o->max_chunks, "Score at most this many chunks (-1: all)")->check(CLI::Range(-1, 1 << 30));
  return {cmd, [o](const Environment& env) { return perplexity(*o, env); }};
}

}  // namespace xelm::cli
