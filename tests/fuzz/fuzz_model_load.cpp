// fuzz_model_load.cpp — libFuzzer target for loading a model from untrusted GGUF bytes: the config
// keys, the tensor table against the architecture (qwen2 and qwen3 seeds), the vocabulary, merges,
// token types and special ids, and the embedded chat template. A file the loader accepts must give
// a consistent model (every bound tensor inside the file, of the shape the config implies), a
// tokenizer whose ids stay in the vocabulary, and a template that renders a conversation which
// tokenizes. Only xelm::Error may escape; anything else (crash, other exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/chat_prompt.h"
#include "runtime/chat_template.h"
#include "runtime/error.h"
#include "runtime/model.h"
#include "tests/fuzz/fuzz_util.h"

using xelm::fuzz::require;

namespace {

void check_tensor(xelm::WeightTensor t, const uint8_t* data, size_t size) {
  if (t == nullptr) return;
  require(t->data >= data && t->data + t->n_bytes <= data + size);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xelm::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<xelm::Model> model;
  try {
    model = xelm::Model::from_file(xelm::gguf::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf"));
  } catch (const xelm::Error&) {
    return 0;
  }
  const xelm::ModelConfig& c = model->config();
  const xelm::ModelWeights& w = model->weights();
  require(w.token_embd != nullptr && w.output != nullptr && w.output_norm != nullptr);
  require(w.layers.size() == static_cast<size_t>(c.n_layer));
  require(w.token_embd->shape.size() == 2 && w.token_embd->shape[0] == c.n_embd && w.token_embd->shape[1] == c.n_vocab);
  check_tensor(w.token_embd, data, size);
  check_tensor(w.output, data, size);
  check_tensor(w.output_norm, data, size);
  for (const xelm::LayerWeights& l : w.layers) {
    for (xelm::WeightTensor t : {l.attn_norm, l.wq, l.wk, l.wv, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.wo, l.ffn_norm,
                                 l.w_gate, l.w_up, l.w_down}) {
      check_tensor(t, data, size);
    }
  }
  volatile uint64_t sink = model->weight_bytes();
  (void)sink;

  std::unique_ptr<xelm::Tokenizer> tokenizer;
  try {
    tokenizer = xelm::Tokenizer::from_gguf(model->file());
  } catch (const xelm::Error&) {
    return 0;
  }
  const xelm::ChatTemplate chat_template = xelm::ChatTemplate::from_gguf(model->file());
  const std::vector<xelm::ChatMessage> messages = {
      {"system", "Be brief.", ""}, {"user", "Hi <|im_end|> there", ""}, {"assistant", "Hello.", "thinking"}, {"user", "Bye", ""}};
  for (const bool thinking : {true, false}) {
    const std::string prompt = chat_template.render(messages, /*add_generation_prompt=*/true, thinking);
    const std::vector<int32_t> ids = xelm::tokenize_chat_prompt(*tokenizer, prompt, messages);
    for (const int32_t id : ids) require(id >= 0 && static_cast<size_t>(id) < tokenizer->vocab().size());
    volatile size_t decoded = tokenizer->decode(ids).size();
    (void)decoded;
  }
  return 0;
}
