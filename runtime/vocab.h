// vocab.h — the token vocabulary stored in a GGUF (tokenizer.ggml.*), and byte-level decoding of
// token ids back to text (GPT-2 byte↔unicode mapping, as Qwen's BPE uses).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/gguf.h"

namespace xelm {

// GPT-2's byte-level alphabet, which Qwen's BPE tokens are spelled in: every byte stands for one
// code point (printable bytes for themselves, the other 68 for U+0100.. in order).
uint32_t byte_level_code_point(uint8_t byte);
std::optional<uint8_t> byte_level_byte(uint32_t code_point);  // nullopt: stands for no byte

// Length of the valid UTF-8 character starting at text[pos] (1..4), or 0 when the bytes there are
// not one (malformed, overlong, surrogate, beyond U+10FFFF or cut short).
size_t utf8_sequence_length(std::string_view text, size_t pos);

enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Vocabulary {
 public:
  // nullopt when the file carries no tokenizer; throws xelm::Error when it carries a broken one.
  static std::optional<Vocabulary> from_gguf(const gguf::GgufFile& file);

  size_t size() const { return tokens_.size(); }
  const std::string& model() const { return model_; }       // "gpt2"
  const std::string& pre() const { return pre_; }           // "qwen2"
  const std::string& token(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType type(int32_t id) const { return types_.at(static_cast<size_t>(id)); }
  size_t n_merges() const { return n_merges_; }
  std::optional<int32_t> eos() const { return eos_; }
  std::optional<int32_t> bos() const { return bos_; }
  bool is_end_of_generation(int32_t id) const;  // eos, <|endoftext|>, <|im_end|>
  const std::vector<int32_t>& end_of_generation() const { return end_of_generation_; }

  // The bytes a token stands for (control tokens as their text). Not necessarily valid UTF-8 alone.
  std::string piece(int32_t id) const;

 private:
  std::string model_, pre_;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  size_t n_merges_ = 0;
  std::optional<int32_t> eos_, bos_;
  std::vector<int32_t> end_of_generation_;
};

}  // namespace xelm

namespace xelm {

// Streams token pieces as text without ever emitting part of a UTF-8 character: bytes of an
// unfinished sequence are held back until the next piece completes them (or flush()).
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);  // the complete characters available so far
  std::string flush();                          // whatever is left, even if incomplete

 private:
  std::string pending_;
};

}  // namespace xelm
