// matmul.cl — y[t, row0 + o] = sum_i x[t, i] * W[o, i] (+ bias[row0 + o]) for every weight type,
// dequantizing W in the kernel. W is one buffer of rows [row0, row0 + gridDim0) of a tensor (large
// tensors are split into several buffers by row range; the host launches once per piece).
//
// Work decomposition: one work-group of MATMUL_WG items per MATMUL_ROWS output rows (taken one after
// the other) and MATMUL_TOKENS activation rows (tokens). Each item walks a row's chunks with stride
// MATMUL_WG, dequantizes a chunk once and multiplies it into up to MATMUL_TOKENS accumulators, so
// prefill reads each weight once per MATMUL_TOKENS tokens; a local-memory tree reduction finishes
// each dot product.
//   global = (MATMUL_WG * ceil(n_rows / MATMUL_ROWS), ceil(n_tokens / MATMUL_TOKENS)),
//   local = (MATMUL_WG, 1)
// Shapes: w [n_rows, row_bytes] raw GGUF bytes from byte w_offset of its buffer; x [n_tokens, n_in] f32; y [n_tokens, n_out] f32.
// Build options: MATMUL_WG (power of two), MATMUL_ROWS, MATMUL_TOKENS.

#define DEFINE_MATMUL(TYPE, CHUNK)                                                                    \
  kernel void kernel_matmul_##TYPE##_f32(global const uchar* w_buffer, ulong w_offset, ulong row_bytes, \
                                         int n_in, int row0,                                          \
                                         int n_rows, global const float* x, global float* y,          \
                                         int n_out, int n_tokens, global const float* bias,           \
                                         int has_bias) {                                              \
    local float partial[MATMUL_TOKENS * MATMUL_WG];                                                   \
    global const uchar* w = w_buffer + w_offset;                                                      \
    const int lid = get_local_id(0);                                                                  \
    const int t0 = get_group_id(1) * MATMUL_TOKENS;                                                   \
    const int nt = min(MATMUL_TOKENS, n_tokens - t0);                                                 \
    const int n_chunks = n_in / CHUNK;                                                                \
    global const float* x0 = x + (ulong)t0 * (ulong)n_in;                                             \
    const int first_row = get_group_id(0) * MATMUL_ROWS;                                              \
    const int last_row = min(first_row + MATMUL_ROWS, n_rows);                                        \
    for (int row = first_row; row < last_row; ++row) {                                                \
      global const uchar* w_row = w + (ulong)row * row_bytes;                                         \
      float acc[MATMUL_TOKENS];                                                                       \
      for (int t = 0; t < MATMUL_TOKENS; ++t) acc[t] = 0.0f;                                          \
      float wv[CHUNK];                                                                                \
      if (nt == 1) { /* decode: one activation row, no per-token guards */                          \
        for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                             \
          dequant_##TYPE(w_row, c, wv);                                                               \
          global const float* xc = x0 + c * CHUNK;                                                    \
          for (int k = 0; k < CHUNK; ++k) acc[0] += wv[k] * xc[k];                                    \
        }                                                                                             \
      } else {                                                                                        \
        for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                             \
          dequant_##TYPE(w_row, c, wv);                                                               \
          for (int t = 0; t < MATMUL_TOKENS; ++t) {                                                   \
            if (t < nt) {                                                                             \
              global const float* xc = x0 + (ulong)t * (ulong)n_in + c * CHUNK;                       \
              float s = 0.0f;                                                                         \
              for (int k = 0; k < CHUNK; ++k) s += wv[k] * xc[k];                                     \
              acc[t] += s;                                                                            \
            }                                                                                         \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
      for (int t = 0; t < MATMUL_TOKENS; ++t) partial[t * MATMUL_WG + lid] = acc[t];                  \
      barrier(CLK_LOCAL_MEM_FENCE);                                                                   \
      for (int s = MATMUL_WG / 2; s > 0; s >>= 1) {                                                   \
        if (lid < s) {                                                                                \
          for (int t = 0; t < MATMUL_TOKENS; ++t) partial[t * MATMUL_WG + lid] += partial[t * MATMUL_WG + lid + s]; \
        }                                                                                             \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                 \
      }                                                                                               \
      for (int t = lid; t < nt; t += MATMUL_WG) {                                                     \
        const float b = has_bias ? bias[row0 + row] : 0.0f;                                           \
        y[(ulong)(t0 + t) * (ulong)n_out + row0 + row] = partial[t * MATMUL_WG] + b;                  \
      }                                                                                               \
      barrier(CLK_LOCAL_MEM_FENCE);                                                                   \
    }                                                                                                 \
  }

DEFINE_MATMUL(f32, CHUNK_F32)
DEFINE_MATMUL(f16, CHUNK_F16)
DEFINE_MATMUL(bf16, CHUNK_BF16)
DEFINE_MATMUL(q4_0, CHUNK_Q4_0)
DEFINE_MATMUL(q4_1, CHUNK_Q4_1)
DEFINE_MATMUL(q5_0, CHUNK_Q5_0)
DEFINE_MATMUL(q5_1, CHUNK_Q5_1)
DEFINE_MATMUL(q8_0, CHUNK_Q8_0)
DEFINE_MATMUL(q2_k, CHUNK_Q2_K)
DEFINE_MATMUL(q3_k, CHUNK_Q3_K)
DEFINE_MATMUL(q4_k, CHUNK_Q4_K)
DEFINE_MATMUL(q5_k, CHUNK_Q5_K)
DEFINE_MATMUL(q6_k, CHUNK_Q6_K)
