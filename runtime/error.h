// error.h — the one exception type xelm throws for bad input and unusable configurations.
// Messages are one line and name what is at fault (file, tensor, flag, device limit), e.g.
//   "model.gguf: tensor 'blk.0.attn_q.weight' data [4096, 8192) extends past end of file (6000 bytes)".
#pragma once

#include <stdexcept>
#include <string>

namespace xelm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace xelm
