// fuzz_util.h — what the libFuzzer targets share: quiet logging, the vendored Qwen3 tokenizer loaded
// once per process, and the one rule of every target (a broken promise aborts, so libFuzzer reports
// the input as a crash).
#pragma once

#include <cstdlib>
#include <memory>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/file_io.h"
#include "runtime/gguf.h"
#include "runtime/synthetic_model.h"
#include "runtime/tokenizer.h"

namespace xelm::fuzz {

inline void require(bool condition) {
  if (!condition) std::abort();
}

// The warnings a hostile input provokes (no chat template, ...) are expected: not printed per run.
inline void quiet_logs() { spdlog::set_level(spdlog::level::off); }

// The real Qwen3 tokenizer (tests/data/tokenizer/qwen3-tokenizer.gguf.gz), loaded on first use.
inline const Tokenizer& qwen3_tokenizer() {
  static const std::vector<uint8_t> bytes = read_file_bytes(default_tokenizer_path());
  static const std::unique_ptr<gguf::GgufFile> file = gguf::GgufFile::parse(bytes, "qwen3-tokenizer.gguf");
  static const std::unique_ptr<Tokenizer> tokenizer = Tokenizer::from_gguf(*file);
  return *tokenizer;
}

}  // namespace xelm::fuzz
