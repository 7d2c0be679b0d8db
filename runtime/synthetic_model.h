// synthetic_model.h — writes GGUF models of any Qwen2/Qwen3 shape with seeded random weights and,
// optionally, the real Qwen3 tokenizer. Tests and benchmarks use these instead of downloaded
// weights: they exercise every shape and type path with reproducible numbers.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/ggml_types.h"
#include "runtime/model_config.h"

namespace xelm {

struct SyntheticModelSpec {
  Architecture arch = Architecture::Qwen3;
  std::string name = "xelm-synthetic";
  int64_t n_layer = 2;
  int64_t n_embd = 64;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t head_dim = 16;
  int64_t n_ff = 128;
  int64_t n_vocab = 512;       // padded up to the tokenizer's size when one is included
  int64_t n_ctx = 4096;
  float rope_freq_base = 1000000.0f;
  float rms_norm_eps = 1e-6f;
  bool tied_output = true;
  GgmlType weight_type = GgmlType::F32;  // matrices; norms and biases stay F32 as llama.cpp keeps them
  uint64_t seed = 42;
  // GGUF (optionally .gz) whose tokenizer.* keys are copied in; empty = no tokenizer.
  std::string tokenizer_path;
  // > 0: keep only the tokenizer's first tokenizer_tokens tokens (its 256 byte tokens come first) and
  // its added tokens, renumbered after them, with the merges among them: a vocabulary of a few
  // hundred tokens that still tokenizes any text (fuzz seeds). 0: the whole tokenizer.
  int64_t tokenizer_tokens = 0;

  // The Qwen3-0.6B shape: 28 layers, 1024 hidden, 16/8 heads × 128, FFN 3072, vocab 151936, tied.
  static SyntheticModelSpec qwen3_0_6b();
};

// The vendored Qwen3 tokenizer (tests/data/tokenizer/qwen3-tokenizer.gguf.gz in the source tree).
std::string default_tokenizer_path();

// Writes the model; throws xelm::Error on an invalid spec or I/O failure.
void write_synthetic_model(const SyntheticModelSpec& spec, const std::string& path);

}  // namespace xelm
