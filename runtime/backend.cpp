// backend.cpp — the few non-virtual helpers of the backend interface.
#include "runtime/backend.h"

#include <spdlog/fmt/fmt.h>

#include "runtime/error.h"

namespace xelm {

void Activation::set_rows(int64_t rows) {
  if (rows < 1 || rows > capacity_) {
    throw Error(fmt::format("internal: activation set to {} rows, capacity is {}", rows, capacity_));
  }
  rows_ = rows;
}

}  // namespace xelm
