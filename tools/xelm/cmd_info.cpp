// cmd_info.cpp — `xelm info MODEL.gguf`: what a model file holds — architecture and hyper-parameters,
// tokenizer summary, the quant mix, and the tensor table.
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"
#include "runtime/file_type.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/vocab.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

struct InfoOptions {
  std::string model_path;
  bool all_metadata = false;
  bool no_tensors = false;
};

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

int info(const InfoOptions& o) {
  auto file = gguf::GgufFile::open(o.model_path);
  std::string out;
  out += fmt::format("file:        {} ({}, GGUF v{}, alignment {}, {} tensors, {} metadata keys)\n", file->path(),
                     human_bytes(file->file_size()), file->version(), file->alignment(), file->tensors().size(),
                     file->metadata().size());
  if (auto ft = file->find_int("general.file_type")) {
    const auto ft_info = file_type_info(static_cast<uint32_t>(*ft));
    out += fmt::format("file type:   {} ({})\n", ft_info ? std::string(ft_info->name) : "unknown", *ft);
  }

  // Hyper-parameters: through ModelConfig when the architecture is one xelm runs.
  try {
    const ModelConfig c = ModelConfig::from_gguf(*file);
    out += fmt::format("model:       {}\n", c.name);
    out += fmt::format("arch:        {}\n", architecture_name(c.arch));
    out += fmt::format("layers:      {}\nn_embd:      {}\nheads:       {} query, {} key/value (GQA {}), head_dim {}\n",
                       c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.n_head / c.n_head_kv, c.head_dim);
    out += fmt::format("n_ff:        {}\nvocab:       {}\ncontext:     {}\nrope base:   {}\nrms eps:     {}\n", c.n_ff,
                       c.n_vocab, c.n_ctx_train, c.rope_freq_base, c.rms_norm_eps);
    out += fmt::format("output:      {}\n", c.tied_output ? "tied to token_embd" : "separate output.weight");
  } catch (const Error& e) {
    out += fmt::format("arch:        {} (not runnable: {})\n", file->find_string("general.architecture").value_or("?"),
                       e.what());
  }

  if (const std::optional<Vocabulary> vocab = Vocabulary::from_gguf(*file)) {
    size_t control = 0;
    for (size_t i = 0; i < vocab->size(); ++i) control += vocab->type(static_cast<int32_t>(i)) == TokenType::Control;
    auto name_of = [&](std::optional<int32_t> id) {
      return id ? fmt::format("{} '{}'", *id, vocab->token(*id)) : std::string("none");
    };
    out += fmt::format("tokenizer:   {} / pre '{}', {} tokens ({} control), {} merges, bos {}, eos {}, chat template: {}\n",
                       vocab->model(), vocab->pre(), vocab->size(), control, vocab->n_merges(), name_of(vocab->bos()),
                       name_of(vocab->eos()), file->find("tokenizer.chat_template") ? "yes" : "no");
  } else {
    out += "tokenizer:   none\n";
  }

  // Quant mix: tensors and bytes per type.
  std::map<std::string, std::pair<size_t, uint64_t>> mix;
  uint64_t total_bytes = 0;
  int64_t total_params = 0;
  for (const gguf::TensorInfo& t : file->tensors()) {
    auto& [count, bytes] = mix[std::string(type_traits(t.type).name)];
    ++count;
    bytes += t.n_bytes;
    total_bytes += t.n_bytes;
    total_params += t.n_elements();
  }
  out += fmt::format("parameters:  {:.3f} M in {} ({:.2f} bits per weight)\n", static_cast<double>(total_params) / 1e6,
                     human_bytes(total_bytes), total_params ? 8.0 * static_cast<double>(total_bytes) / static_cast<double>(total_params) : 0.0);
  out += "quant mix:  ";
  for (const auto& [type, stats] : mix) {
    out += fmt::format(" {} × {} ({})", stats.first, type, human_bytes(stats.second));
  }
  out += "\n";

  if (o.all_metadata) {
    out += "\nmetadata:\n";
    for (const auto& [key, value] : file->metadata()) {
      out += fmt::format("  {:<48} {:<8} {}\n", key, gguf::value_type_name(value.type()), value.to_display_string());
    }
  }
  if (!o.no_tensors) {
    out += fmt::format("\n{:<5} {:<36} {:<6} {:<22} {:>12}\n", "#", "tensor", "type", "shape", "size");
    size_t i = 0;
    for (const gguf::TensorInfo& t : file->tensors()) {
      out += fmt::format("{:<5} {:<36} {:<6} {:<22} {:>12}\n", i++, t.name, type_traits(t.type).name, t.shape_string(),
                         human_bytes(t.n_bytes));
    }
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

Subcommand add_info_command(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Show a GGUF model's architecture, tokenizer, quant mix and tensors");
  cmd->add_option("model", opts->model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--metadata", opts->all_metadata, "Also list every metadata key and value");
  cmd->add_flag("--no-tensors", opts->no_tensors, "Leave out the tensor table");
  return {cmd, [opts](const Environment&) { return info(*opts); }};
}

}  // namespace xelm::cli
