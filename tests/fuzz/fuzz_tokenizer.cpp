// fuzz_tokenizer.cpp — libFuzzer target for the Qwen3 tokenizer (the real vocabulary and merges):
// arbitrary bytes (invalid UTF-8, huge runs, special tokens; tests/data/fuzz/tokenizer.dict lists
// them) are encoded with and without special-token parsing and decoded back. Promises checked:
// every id is in the vocabulary; decoding is exact for ASCII text; encoding what decoding gave
// changes nothing more (decode∘encode is idempotent: only NFC normalisation may change text);
// streaming the pieces through Utf8Stream gives the same bytes as decode. Only xelm::Error may escape.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vocab.h"
#include "tests/fuzz/fuzz_util.h"

using xelm::fuzz::require;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xelm::fuzz::quiet_logs();
  xelm::fuzz::qwen3_tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const xelm::Tokenizer& tokenizer = xelm::fuzz::qwen3_tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bool ascii = true;
  for (const char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  for (const bool parse_special : {true, false}) {
    const std::vector<int32_t> ids = tokenizer.encode(text, parse_special);
    for (const int32_t id : ids) require(id >= 0 && static_cast<size_t>(id) < tokenizer.vocab().size());
    require(ids.empty() == text.empty());
    const std::string decoded = tokenizer.decode(ids);
    if (ascii) require(decoded == text);
    require(tokenizer.decode(tokenizer.encode(decoded, parse_special)) == decoded);
    xelm::Utf8Stream stream;
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.push(tokenizer.vocab().piece(id));
    streamed += stream.flush();
    require(streamed == decoded);
  }
  return 0;
}
