// file_io.h — whole-file reads (transparently gunzipping .gz files) for small auxiliary inputs such
// as the vendored tokenizer; model files themselves are mmapped by gguf.cpp instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xelm {

// Reads the file; if it starts with the gzip magic, returns the decompressed bytes.
// Throws xelm::Error("<path>: <reason>") on failure.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace xelm
