// rope.h — the angles of rotary position embedding, computed in one place for every backend, so the
// CPU backends and the OpenCL kernels rotate by the same float values.
//
// NEOX pairing: dimensions (i, i + head_dim / 2) of a head at position p are rotated by
// theta = p * inv_freq[i] (rope_angle), with inv_freq[i] = freq_base^(-2i / head_dim) as float, the
// way the golden references compute it. YaRN and partial rotary extend these two functions.
#pragma once

#include <cstdint>
#include <vector>

namespace xelm {

// inv_freq [head_dim / 2].
std::vector<float> rope_inv_freq(int64_t head_dim, float freq_base);

// The rotation angle of pair i at position pos (the OpenCL kernels compute the same float product).
inline float rope_angle(int64_t pos, float inv_freq) { return static_cast<float>(pos) * inv_freq; }

// cos and sin [head_dim / 2] of the angles rope_angle(pos, inv_freq[i]).
void rope_cos_sin(int64_t pos, const std::vector<float>& inv_freq, std::vector<float>& cos, std::vector<float>& sin);

// Rotates the NEOX pairs (i, i + half) of one head [2 * half] in place by the angles whose cos and
// sin are given [half] (the scalar rotation: the reference backend, and the re-rotation of cached
// keys when a span is evicted).
void rope_rotate_head(float* head, int64_t half, const float* cos, const float* sin);

}  // namespace xelm
