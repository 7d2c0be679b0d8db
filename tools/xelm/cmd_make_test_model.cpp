// cmd_make_test_model.cpp — `xelm make-test-model`: a GGUF of any Qwen2/Qwen3 shape with seeded random
// weights and the real Qwen3 tokenizer, for tests and benchmarks without downloaded weights.
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/synthetic_model.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

struct MakeTestModelOptions {
  std::string out_path;
  std::string preset;
  std::string arch = "qwen3";
  std::string type = "F16";
  std::string tokenizer = "default";
  SyntheticModelSpec spec;
  bool untied = false;
  bool tied = false;
};

int make_test_model(MakeTestModelOptions o, CLI::App& cmd) {
  SyntheticModelSpec s = o.spec;
  if (o.preset == "qwen3-0.6b") {
    s = SyntheticModelSpec::qwen3_0_6b();
    // Explicit flags override the preset.
    auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
    if (given("--layers")) s.n_layer = o.spec.n_layer;
    if (given("--seed")) s.seed = o.spec.seed;
    if (given("--ctx")) s.n_ctx = o.spec.n_ctx;
  }
  s.arch = o.arch == "qwen2" ? Architecture::Qwen2 : Architecture::Qwen3;
  if (o.untied) s.tied_output = false;
  if (o.tied) s.tied_output = true;
  const auto type = type_from_name(o.type);
  if (!type) throw Error("--type: unknown weight type '" + o.type + "'");
  s.weight_type = *type;
  s.tokenizer_path = o.tokenizer == "none" ? "" : o.tokenizer == "default" ? default_tokenizer_path() : o.tokenizer;
  if (!s.tokenizer_path.empty() && s.n_vocab < 151669 && o.tokenizer == "default" && s.tokenizer_tokens == 0) {
    s.n_vocab = 151936;  // the real tokenizer needs the real vocabulary size
    spdlog::info("vocabulary raised to 151936 to hold the Qwen3 tokenizer (use --tokenizer none for a tiny vocabulary)");
  }
  write_synthetic_model(s, o.out_path);
  spdlog::info("wrote {}: {} {} layers, n_embd {}, heads {}/{}×{}, n_ff {}, vocab {}, {} weights, seed {}", o.out_path,
               o.arch, s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.head_dim, s.n_ff, s.n_vocab, o.type, s.seed);
  return 0;
}

}  // namespace

Subcommand add_make_test_model_command(CLI::App& app) {
  auto o = std::make_shared<MakeTestModelOptions>();
  CLI::App* cmd = app.add_subcommand("make-test-model", "Write a synthetic Qwen model (random weights, real tokenizer)");
  cmd->add_option("-o,--output", o->out_path, "Output GGUF path")->required();
  cmd->add_option("--preset", o->preset, "Start from a known shape")->check(CLI::IsMember({"qwen3-0.6b"}));
  cmd->add_option("--arch", o->arch, "Architecture")->check(CLI::IsMember({"qwen3", "qwen2"}));
  cmd->add_option("--layers", o->spec.n_layer, "Transformer blocks")->check(CLI::Range(1, 1024));
  cmd->add_option("--embd", o->spec.n_embd, "Hidden size")->check(CLI::Range(2, 65536));
  cmd->add_option("--heads", o->spec.n_head, "Query heads")->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-heads", o->spec.n_head_kv, "Key/value heads")->check(CLI::Range(1, 1024));
  cmd->add_option("--head-dim", o->spec.head_dim, "Head dimension (even)")->check(CLI::Range(2, 1024));
  cmd->add_option("--ff", o->spec.n_ff, "Feed-forward width")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--vocab", o->spec.n_vocab, "Vocabulary size")->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--ctx", o->spec.n_ctx, "Training context length")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--rope-base", o->spec.rope_freq_base, "RoPE frequency base")->check(CLI::PositiveNumber);
  cmd->add_option("--type", o->type, "Weight type of the matrices (F32, F16, BF16, Q8_0, Q4_K, ...)");
  cmd->add_option("--seed", o->spec.seed, "Random seed");
  cmd->add_option("--tokenizer", o->tokenizer, "GGUF (or .gguf.gz) to take the tokenizer from, 'default' or 'none'");
  cmd->add_option("--tokenizer-tokens", o->spec.tokenizer_tokens,
                  "Keep only the tokenizer's first N tokens and its added tokens (with the merges among them): a "
                  "tiny vocabulary that still tokenizes any text; --vocab must hold them")
      ->check(CLI::Range(256, 1 << 22));
  cmd->add_flag("--untied", o->untied, "Separate output.weight instead of reusing token_embd");
  cmd->add_flag("--tied", o->tied, "Reuse token_embd as the output head");
  return {cmd, [o, cmd](const Environment&) { return make_test_model(*o, *cmd); }};
}

}  // namespace xelm::cli
