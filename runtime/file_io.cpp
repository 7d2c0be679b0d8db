// file_io.cpp — read_file_bytes with zlib's gz reader (which passes plain files through unchanged).
#include "runtime/file_io.h"

#include <cerrno>
#include <cstring>

#include <spdlog/fmt/fmt.h>
#include <zlib.h>

#include "runtime/error.h"

namespace xelm {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    const int got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) {
      int code = 0;
      const std::string reason = gzerror(file, &code);
      gzclose(file);
      throw Error(fmt::format("{}: read failed: {}", path, reason));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  }
  gzclose(file);
  return bytes;
}

}  // namespace xelm
