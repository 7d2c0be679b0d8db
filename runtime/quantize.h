// quantize.h — model quantization with the tensor-type mixes users know from llama.cpp's
// llama-quantize (Q4_K_M keeps attn_v/ffn_down of some layers and the output at Q6_K, etc.).
#pragma once

#include <functional>
#include <string>

#include "runtime/file_type.h"
#include "runtime/gguf.h"

namespace xelm {

// The type llama.cpp's mix rules give `tensor` in a model quantized to `mix`. Vectors (norms,
// biases) stay as they are; widths a block type cannot hold fall back as llama.cpp does.
GgmlType choose_tensor_type(const FileTypeInfo& mix, const gguf::TensorInfo& tensor, const gguf::GgufFile& model);

struct QuantizeProgress {
  size_t index;       // 0-based tensor number
  size_t count;       // tensors in the model
  const gguf::TensorInfo* tensor;
  GgmlType new_type;
  uint64_t new_bytes;
};

// Reads IN (F32/F16/BF16 matrices; already-quantized tensors are re-quantized only if their type
// changes), writes OUT with the same metadata (general.file_type updated) and tokenizer.
// `on_tensor` is called after each tensor. Uses `n_threads` threads for the row loop.
void quantize_model(const std::string& in_path, const std::string& out_path, const FileTypeInfo& mix, int n_threads,
                    const std::function<void(const QuantizeProgress&)>& on_tensor);

}  // namespace xelm
