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

void rope_cos_sin(int64_t pos, const std::vector<float>& inv_freq, std::vector<float>& cos, std::vector<float>& sin) {
  cos.resize(inv_freq.size());
  sin.resize(inv_freq.size());
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float theta = rope_angle(pos, inv_freq[i]);
    cos[i] = std::cos(theta);
    sin[i] = std::sin(theta);
  }
}

void rope_rotate_head(float* head, int64_t half, const float* cos, const float* sin) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = head[i], b = head[i + half];
    head[i] = a * cos[i] - b * sin[i];
    head[i + half] = a * sin[i] + b * cos[i];
  }
}

}  // namespace xelm
