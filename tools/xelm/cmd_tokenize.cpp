// cmd_tokenize.cpp — `xelm tokenize -m MODEL -p TEXT`: the token ids a model's tokenizer gives a text,
// like llama.cpp's llama-tokenize: one `id -> 'piece'` line per token, or a Python-style id list.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"
#include "runtime/file_io.h"
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"
#include "tools/xelm/commands.h"

namespace xelm::cli {
namespace {

struct TokenizeOptions {
  std::string model_path, prompt, prompt_file;
  bool ids_only = false;
  bool no_parse_special = false;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the prompt file", path));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int tokenize(const TokenizeOptions& o) {
  // A gzip-compressed GGUF (such as the vendored tokenizer) is read whole; a model is mmapped.
  std::vector<uint8_t> compressed_file_bytes;
  std::unique_ptr<gguf::GgufFile> file;
  if (o.model_path.ends_with(".gz")) {
    compressed_file_bytes = read_file_bytes(o.model_path);
    file = gguf::GgufFile::parse(compressed_file_bytes, o.model_path);
  } else {
    file = gguf::GgufFile::open(o.model_path);
  }
  const std::unique_ptr<Tokenizer> tokenizer = Tokenizer::from_gguf(*file);
  const std::string text = o.prompt_file.empty() ? o.prompt : read_text_file(o.prompt_file);
  const std::vector<int32_t> ids = tokenizer->encode(text, !o.no_parse_special);

  std::string out;
  if (o.ids_only) {
    out = fmt::format("[{}]\n", fmt::join(ids, ", "));
  } else {
    for (const int32_t id : ids) out += fmt::format("{:>6} -> '{}'\n", id, tokenizer->vocab().piece(id));
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

Subcommand add_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show the tokens a model's tokenizer gives a text");
  cmd->add_option("-m,--model", opts->model_path, "GGUF model (or tokenizer) file, optionally .gz")
      ->required()
      ->check(CLI::ExistingFile);
  CLI::Option* prompt = cmd->add_option("-p,--prompt", opts->prompt, "Text to tokenize");
  CLI::Option* file = cmd->add_option("-f,--file", opts->prompt_file, "Read the text from a file (verbatim)")
                          ->check(CLI::ExistingFile);
  prompt->excludes(file);
  cmd->add_flag("--ids", opts->ids_only, "Print only the ids, as a list: [1, 2, 3]");
  cmd->add_flag("--no-parse-special", opts->no_parse_special,
                "Treat control tokens written in the text (<|im_end|>, ...) as plain text");
  cmd->callback([prompt, file] {
    if (prompt->count() == 0 && file->count() == 0) throw CLI::RequiredError("-p,--prompt or -f,--file");
  });
  return {cmd, [opts](const Environment&) { return tokenize(*opts); }};
}

}  // namespace xelm::cli
