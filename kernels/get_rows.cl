// get_rows.cl — embedding lookup: out[t, :] = dequantized row tokens[t] of a table, every weight type.
// The table may be split into several buffers by row range; this launch covers rows
// [row0, row0 + n_rows) and skips tokens outside it.
//   global = (chunks per row, n_tokens); one work-item dequantizes one chunk (see common.cl).
// Shapes: table [n_rows, row_bytes] raw GGUF bytes from byte table_offset of its buffer; tokens [n_tokens] int; out [n_tokens, n_in] f32.

#define DEFINE_GET_ROWS(TYPE, CHUNK)                                                                   \
  kernel void kernel_get_rows_##TYPE##_f32(global const uchar* table_buffer, ulong table_offset,      \
                                           ulong row_bytes, int n_in,                                  \
                                           int row0, int n_rows, global const int* tokens,             \
                                           global float* out) {                                        \
    global const uchar* table = table_buffer + table_offset;                                           \
    const int c = get_global_id(0);                                                                    \
    const int t = get_global_id(1);                                                                    \
    const int r = tokens[t] - row0;                                                                    \
    if (r < 0 || r >= n_rows) return;                                                                  \
    float v[CHUNK];                                                                                    \
    dequant_##TYPE(table + (ulong)r * row_bytes, c, v);                                                \
    global float* dst = out + (ulong)t * (ulong)n_in + c * CHUNK;                                      \
    for (int k = 0; k < CHUNK; ++k) dst[k] = v[k];                                                     \
  }

DEFINE_GET_ROWS(f32, CHUNK_F32)
DEFINE_GET_ROWS(f16, CHUNK_F16)
DEFINE_GET_ROWS(bf16, CHUNK_BF16)
DEFINE_GET_ROWS(q4_0, CHUNK_Q4_0)
DEFINE_GET_ROWS(q4_1, CHUNK_Q4_1)
DEFINE_GET_ROWS(q5_0, CHUNK_Q5_0)
DEFINE_GET_ROWS(q5_1, CHUNK_Q5_1)
DEFINE_GET_ROWS(q8_0, CHUNK_Q8_0)
DEFINE_GET_ROWS(q2_k, CHUNK_Q2_K)
DEFINE_GET_ROWS(q3_k, CHUNK_Q3_K)
DEFINE_GET_ROWS(q4_k, CHUNK_Q4_K)
DEFINE_GET_ROWS(q5_k, CHUNK_Q5_K)
DEFINE_GET_ROWS(q6_k, CHUNK_Q6_K)
