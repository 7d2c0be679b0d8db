// rope.cl — rotary position embedding, NEOX pairing (i, i + head_dim / 2), in place.
// Row t is at position positions[t] of its sequence (the batch's positions part, kernel_abi.h).
// inv_freq[i] = freq_base^(-2i / head_dim), computed on the host exactly as the reference backend
// does, so angles agree to the last bit.
//   global = (head_dim / 2, n_heads, n_rows)
// Shapes: x [n_rows, n_cols] f32 with heads at column h * head_dim; batch [KV_BATCH_INTS(n_rows, .)]
// int; inv_freq [head_dim / 2].

kernel void kernel_rope_neox_f32(global float* x, int n_cols, int head_dim, global const int* batch,
                                 global const float* inv_freq) {
  const int i = get_global_id(0);
  const int h = get_global_id(1);
  const int t = get_global_id(2);
  const int half_dim = head_dim / 2;
  const int position = batch[KV_BATCH_POSITIONS(get_global_size(2)) + t];
  const float theta = (float)position * inv_freq[i];
  const float c = cos(theta), s = sin(theta);
  global float* v = x + (ulong)t * (ulong)n_cols + h * head_dim;
  const float a = v[i], b = v[i + half_dim];
  v[i] = a * c - b * s;
  v[i + half_dim] = a * s + b * c;
}
