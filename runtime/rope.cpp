// rope.cpp — the RoPE frequencies (see rope.h).
#include "runtime/rope.h"

#include <cmath>

namespace xelm {

std::vector<float> rope_inv_freq(int64_t head_dim, float freq_base) {
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    inv_freq[i] = std::pow(freq_base, -2.0f * static_cast<float>(i) / static_cast<float>(head_dim));
  }
  return inv_freq;
}

}  // namespace xelm
