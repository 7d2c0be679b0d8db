// gemm.cl — the kernels around the prefill GEMM path (host/gemm_path.cpp, matmul with many
// tokens): the weight is dequantized block of rows by block of rows into a dense scratch matrix,
// which a GEMM library (CLBlast) multiplies with the activations; the bias is added afterwards.
// Portable baseline: OpenCL C 1.2, no extensions.
//
// kernel_dequant_<type>_f32: out[r, :] = W[row_begin + r, :] as f32,
//   global = (n_in / CHUNK_<type>, n_block_rows); w as in matmul.cl (raw GGUF bytes from w_offset).
// kernel_add_bias_f32: y[t, col0 + o] += bias[col0 + o], global = (n_cols, n_tokens).

#define DEFINE_DEQUANT(TYPE, CHUNK)                                                                   \
  kernel void kernel_dequant_##TYPE##_f32(global const uchar* w_buffer, ulong w_offset, ulong row_bytes, \
                                          int n_in, int row_begin, global float* out) {               \
    const int c = get_global_id(0), r = get_global_id(1);                                             \
    global const uchar* w_row = w_buffer + w_offset + (ulong)(row_begin + r) * row_bytes;             \
    float v[CHUNK];                                                                                   \
    dequant_##TYPE(w_row, c, v);                                                                      \
    global float* o = out + (ulong)r * (ulong)n_in + (ulong)c * CHUNK;                                \
    for (int k = 0; k < CHUNK; ++k) o[k] = v[k];                                                      \
  }

DEFINE_DEQUANT(f32, CHUNK_F32)
DEFINE_DEQUANT(f16, CHUNK_F16)
DEFINE_DEQUANT(bf16, CHUNK_BF16)
DEFINE_DEQUANT(q4_0, CHUNK_Q4_0)
DEFINE_DEQUANT(q4_1, CHUNK_Q4_1)
DEFINE_DEQUANT(q5_0, CHUNK_Q5_0)
DEFINE_DEQUANT(q5_1, CHUNK_Q5_1)
DEFINE_DEQUANT(q8_0, CHUNK_Q8_0)
DEFINE_DEQUANT(q2_k, CHUNK_Q2_K)
DEFINE_DEQUANT(q3_k, CHUNK_Q3_K)
DEFINE_DEQUANT(q4_k, CHUNK_Q4_K)
DEFINE_DEQUANT(q5_k, CHUNK_Q5_K)
DEFINE_DEQUANT(q6_k, CHUNK_Q6_K)

kernel void kernel_add_bias_f32(global float* y, global const float* bias, int n_out, int col0) {
  const int o = col0 + get_global_id(0), t = get_global_id(1);
  y[(ulong)t * (ulong)n_out + o] += bias[o];
}
