// cmd_perplexity.cpp — `xelm perplexity -m MODEL -f TEXT -c N`, as llama.cpp's llama-perplexity:
// the text is cut into non-overlapping chunks of N tokens, each evaluated from an empty cache, and
// the second half of every chunk is scored (each token predicted from at least N/2 of context).
// Prints the running value per chunk and the final PPL with its standard error.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/error.h"
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

// Negative log-likelihood of `target` under softmax(logits), computed stably.
double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  float max_logit = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  return std::log(sum) - static_cast<double>(logits[target] - max_logit);
}

int perplexity(PerplexityOptions o, const Environment& env) {
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) throw Error(o.text_path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every chunk is evaluated from position 0, so the cache needs exactly one chunk.
  Engine engine = load_engine(o.engine, env);
  const auto tokenizer = Tokenizer::from_gguf(engine.model->file());
  const std::vector<int32_t> tokens = tokenizer->encode(text, /*parse_special=*/false);
  const int64_t n_ctx = engine.transformer->n_ctx();
  const int64_t n_vocab = engine.model->config().n_vocab;
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  if (o.max_chunks > 0) n_chunks = std::min<int64_t>(n_chunks, o.max_chunks);
  if (n_chunks < 1) {
    throw Error(o.text_path + ": " + std::to_string(tokens.size()) + " tokens is less than one chunk of " +
                std::to_string(n_ctx) + " (lower -c)");
  }
  spdlog::info("{} tokens, {} chunks of {}, scoring the second half of each", tokens.size(), n_chunks, n_ctx);

  const int64_t first = n_ctx / 2;
  double nll_sum = 0.0, nll_sq_sum = 0.0;
  int64_t count = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    engine.transformer->truncate(0);
    const std::span<const int32_t> window(tokens.data() + chunk * n_ctx, static_cast<size_t>(n_ctx));
    const std::vector<float> logits = engine.transformer->eval(window, /*all_logits=*/true);  // [n_ctx, n_vocab]
    for (int64_t j = first; j + 1 < n_ctx; ++j) {
      const double nll = token_nll(logits.data() + j * n_vocab, n_vocab, window[static_cast<size_t>(j + 1)]);
      nll_sum += nll;
      nll_sq_sum += nll * nll;
      ++count;
    }
    std::printf("[%lld]%.4f,", static_cast<long long>(chunk + 1), std::exp(nll_sum / static_cast<double>(count)));
    std::fflush(stdout);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mean = nll_sum / static_cast<double>(count);
  const double variance = nll_sq_sum / static_cast<double>(count) - mean * mean;
  const double std_error = count > 1 && variance > 0 ? std::sqrt(variance / static_cast<double>(count - 1)) : 0.0;
  const double ppl = std::exp(mean);
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, ppl * std_error);
  spdlog::info("scored {} tokens in {:.1f} s ({:.1f} tokens/s evaluated) on {}", count, seconds,
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
