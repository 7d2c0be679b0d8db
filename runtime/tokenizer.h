// tokenizer.h — Qwen's byte-level BPE tokenizer (GGUF tokenizer.ggml.model "gpt2", pre "qwen2"),
// giving the same ids as Hugging Face `tokenizers` on the model's tokenizer.json.
//
// encode(text) follows HF's pipeline: added tokens are matched first on the raw text (leftmost,
// longest), the text between them is NFC-normalized, split by the Qwen2 pre-tokenizer regex, mapped
// to GPT-2's byte-level alphabet and merged by BPE rank.
//
// parse_special = false is HF's `encode_special_tokens = True` (llama.cpp's parse_special = false):
// control tokens (<|im_start|>, <|endoftext|>, ...) in the text are plain text, user-defined added
// tokens (<think>, <tool_call>, ...) are still matched.
//
// Invalid UTF-8 (which HF, taking Python str, never sees) is encoded exactly, byte for byte: each
// maximal run of bytes that is not valid UTF-8 becomes its own pre-token and goes through BPE without
// normalization or regex, so decode(encode(x)) == x for any bytes x whose valid parts are NFC.
// In general decode(encode(x)) is x with each valid stretch between added tokens put in NFC.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/gguf.h"
#include "runtime/vocab.h"

namespace xelm {

class Tokenizer {
 public:
  // Throws xelm::Error naming the file when it has no tokenizer, or one xelm does not implement
  // (tokenizer.ggml.model other than "gpt2", a pre-tokenizer other than Qwen's), or broken merges.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::GgufFile& file);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Safe to call from several threads at once.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // The bytes the ids stand for (added tokens as their text); throws xelm::Error on an id outside
  // the vocabulary. Not valid UTF-8 when the ids split a character (see Utf8Stream for streaming).
  std::string decode(std::span<const int32_t> ids) const;

  const Vocabulary& vocab() const;
  // The id of a token by its stored text: "<|im_end|>", or a byte-level spelling such as "Ġthe".
  std::optional<int32_t> token_id(std::string_view token_text) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xelm
