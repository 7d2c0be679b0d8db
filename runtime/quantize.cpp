// quantize.cpp — the per-tensor type rules (after llama.cpp's llama_tensor_get_type for the
// non-imatrix K-quant and legacy mixes) and the row-parallel requantization loop.
#include "runtime/quantize.h"

#include <algorithm>
#include <deque>
#include <regex>
#include <thread>
#include <vector>

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {
namespace {

// Layers where the mixes spend more bits: the first and last eighth, and every third one between.
bool use_more_bits(int64_t i_layer, int64_t n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

int64_t layer_index(const std::string& name) {
  static const std::regex pattern(R"(^blk\.(\d+)\.)");
  std::smatch m;
  return std::regex_search(name, m, pattern) ? std::stoll(m[1].str()) : -1;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A block type whose block does not divide the row width falls back to a 32-element type, then F16.
GgmlType compatible_type(GgmlType type, int64_t row_width) {
  if (row_width % type_traits(type).block_size == 0) return type;
  GgmlType fallback = GgmlType::F16;
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K: fallback = GgmlType::Q4_0; break;  // llama.cpp picks IQ4_NL, which xelm lacks
    case GgmlType::Q4_K: fallback = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: fallback = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: fallback = GgmlType::Q8_0; break;
    default: break;
  }
  return row_width % type_traits(fallback).block_size == 0 ? fallback : GgmlType::F16;
}

}  // namespace

GgmlType choose_tensor_type(const FileTypeInfo& mix, const gguf::TensorInfo& tensor, const gguf::GgufFile& model) {
  if (tensor.shape.size() < 2 || !ends_with(tensor.name, ".weight")) return tensor.type;  // norms, biases
  const FileType ft = mix.file_type;
  const bool has_output = model.find_tensor("output.weight") != nullptr;
  const std::string& name = tensor.name;
  GgmlType type = mix.base_type;

  const std::string arch = model.find_string("general.architecture").value_or("");
  const int64_t n_layer = model.find_int(arch + ".block_count").value_or(0);
  const int64_t n_head = model.find_int(arch + ".attention.head_count").value_or(1);
  const int64_t n_gqa = n_head / std::max<int64_t>(1, model.find_int(arch + ".attention.head_count_kv").value_or(n_head));
  const int64_t il = layer_index(name);

  if (name == "output.weight" || (!has_output && name == "token_embd.weight")) {
    if (type != GgmlType::Q8_0 && type_traits(type).is_quantized) type = GgmlType::Q6_K;
    if (tensor.shape[0] % 256 != 0 && type_traits(type).is_quantized) type = GgmlType::Q8_0;
  } else if (ends_with(name, "attn_v.weight")) {
    if (ft == FileType::MOSTLY_Q2_K) {
      type = n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    } else if (ft == FileType::MOSTLY_Q3_K_M) {
      type = il < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    } else if (ft == FileType::MOSTLY_Q3_K_L) {
      type = GgmlType::Q5_K;
    } else if ((ft == FileType::MOSTLY_Q4_K_M || ft == FileType::MOSTLY_Q5_K_M) && use_more_bits(il, n_layer)) {
      type = GgmlType::Q6_K;
    } else if (ft == FileType::MOSTLY_Q4_K_S && il < 4) {
      type = GgmlType::Q5_K;
    }
  } else if (ends_with(name, "ffn_down.weight")) {
    if (ft == FileType::MOSTLY_Q2_K) {
      type = GgmlType::Q3_K;
    } else if (ft == FileType::MOSTLY_Q3_K_M) {
      type = il < n_layer / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
    } else if (ft == FileType::MOSTLY_Q3_K_L) {
      type = GgmlType::Q5_K;
    } else if ((ft == FileType::MOSTLY_Q4_K_M || ft == FileType::MOSTLY_Q5_K_M) && use_more_bits(il, n_layer)) {
      type = GgmlType::Q6_K;
    } else if (ft == FileType::MOSTLY_Q4_K_S && il < n_layer / 8) {
      type = GgmlType::Q5_K;
    }
  } else if (ends_with(name, "attn_output.weight")) {
    if (ft == FileType::MOSTLY_Q2_K) type = GgmlType::Q3_K;
    else if (ft == FileType::MOSTLY_Q3_K_M) type = GgmlType::Q4_K;
    else if (ft == FileType::MOSTLY_Q3_K_L) type = GgmlType::Q5_K;
  }
  return compatible_type(type, tensor.shape[0]);
}

void quantize_model(const std::string& in_path, const std::string& out_path, const FileTypeInfo& mix, int n_threads,
                    const std::function<void(const QuantizeProgress&)>& on_tensor) {
  auto in = gguf::GgufFile::open(in_path);
  gguf::GgufWriter writer;
  writer.copy_metadata_from(*in);
  writer.set_u32("general.file_type", static_cast<uint32_t>(mix.file_type));
  writer.set_u32("general.quantization_version", 2);

  std::deque<std::vector<uint8_t>> storage;  // converted tensors, alive until write()
  const size_t count = in->tensors().size();
  n_threads = std::max(1, n_threads);
  for (size_t index = 0; index < count; ++index) {
    const gguf::TensorInfo& t = in->tensors()[index];
    const GgmlType new_type = choose_tensor_type(mix, t, *in);
    if (new_type == t.type) {
      writer.add_tensor(t.name, t.type, t.shape, t.data);
      if (on_tensor) on_tensor({index, count, &t, new_type, t.n_bytes});
      continue;
    }
    if (!type_traits(new_type).can_quantize) {
      throw Error(fmt::format("{}: cannot quantize tensor '{}' to {}", in_path, t.name, type_traits(new_type).name));
    }
    const int64_t width = t.shape[0];
    const int64_t rows = t.n_elements() / width;
    const size_t src_stride = row_bytes(t.type, width), dst_stride = row_bytes(new_type, width);
    std::vector<uint8_t>& out = storage.emplace_back(dst_stride * static_cast<size_t>(rows));
    auto convert_rows = [&](int64_t first, int64_t last) {
      std::vector<float> row(static_cast<size_t>(width));
      for (int64_t r = first; r < last; ++r) {
        dequantize_row(t.type, t.data + static_cast<size_t>(r) * src_stride, row.data(), width);
        quantize_row(new_type, row.data(), out.data() + static_cast<size_t>(r) * dst_stride, width);
      }
    };
    std::vector<std::thread> workers;
    const int64_t per_thread = (rows + n_threads - 1) / n_threads;
    for (int64_t first = 0; first < rows; first += per_thread) {
      workers.emplace_back(convert_rows, first, std::min(rows, first + per_thread));
    }
    for (std::thread& worker : workers) worker.join();
    writer.add_tensor(t.name, new_type, t.shape, out.data());
    if (on_tensor) on_tensor({index, count, &t, new_type, out.size()});
  }
  writer.write(out_path);
}

}  // namespace xelm
