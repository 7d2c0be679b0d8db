// fuzz_gguf.cpp — libFuzzer target for the GGUF reader. Parses arbitrary bytes; on success touches
// every metadata value and every byte range of tensor data (so ASan sees any bad pointer), then
// re-writes the file with GgufWriter and checks the re-parse gives the same metadata and tensors.
// Only xelm::Error may escape a parse; anything else (crash, other exception, mismatch) is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/gguf.h"

namespace {

using xelm::gguf::GgufFile;
using xelm::gguf::Value;

size_t touch(const Value& value) {
  size_t sum = value.to_display_string(4).size();
  sum += value.as_int().value_or(0) + value.as_uint().value_or(0) + static_cast<size_t>(value.as_bool().value_or(false));
  if (const std::string* s = value.as_string()) sum += s->size();
  if (const Value::Array* items = value.as_array()) {
    for (const Value& item : *items) sum += touch(item);
  }
  return sum;
}

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> file;
  try {
    file = GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  } catch (const xelm::Error&) {
    return 0;
  }
  volatile size_t sink = 0;
  for (const auto& [key, value] : file->metadata()) sink = sink + key.size() + touch(value);
  for (const xelm::gguf::TensorInfo& t : file->tensors()) {
    require(t.data >= data && t.data + t.n_bytes <= data + size);
    sink = sink + t.data[0] + t.data[t.n_bytes - 1] + static_cast<size_t>(t.n_elements()) + t.shape_string().size();
  }

  xelm::gguf::GgufWriter writer;
  writer.copy_metadata_from(*file);
  for (const xelm::gguf::TensorInfo& t : file->tensors()) writer.add_tensor(t.name, t.type, t.shape, t.data);
  const std::vector<uint8_t> rewritten = writer.write_to_memory();
  const std::unique_ptr<GgufFile> again = GgufFile::parse(rewritten, "rewritten.gguf");
  require(again->metadata().size() == file->metadata().size());
  for (size_t i = 0; i < file->metadata().size(); ++i) {
    require(again->metadata()[i].first == file->metadata()[i].first);
    require(again->metadata()[i].second.to_display_string(1000000) ==
            file->metadata()[i].second.to_display_string(1000000));
  }
  require(again->tensors().size() == file->tensors().size());
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const xelm::gguf::TensorInfo& a = file->tensors()[i];
    const xelm::gguf::TensorInfo& b = again->tensors()[i];
    require(a.name == b.name && a.type == b.type && a.shape == b.shape && a.n_bytes == b.n_bytes);
    require(std::equal(a.data, a.data + a.n_bytes, b.data));
  }
  return 0;
}
