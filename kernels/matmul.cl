// matmul.cl — y[t, row0 + o] = sum_i x[t, i] * W[o, i] (+ bias[row0 + o]) for every weight type,
// dequantizing W in the kernel. W is one buffer of rows [row0, row0 + gridDim0) of a tensor (large
// tensors are split into several buffers by row range; the host launches once per piece).
//
// Work decomposition: one work-group of MATMUL_WG items per MATMUL_ROWS output rows (taken one after
// the other) and MATMUL_TOKENS activation rows (tokens). Each item walks a row's chunks with stride
// MATMUL_WG, dequantizes a chunk once and multiplies it into up to MATMUL_TOKENS accumulators, so
// prefill reads each weight once per MATMUL_TOKENS tokens; a local-memory tree reduction finishes
// each dot product (matmul_finish).
//   global = (MATMUL_WG * ceil(n_rows / MATMUL_ROWS), ceil(n_tokens / MATMUL_TOKENS)),
//   local = (MATMUL_WG, 1)
// Shapes: w [n_rows, row_bytes] raw GGUF bytes from byte w_offset of its buffer; x [n_tokens, n_in] f32; y [n_tokens, n_out] f32.
// Build options: MATMUL_WG (power of two), MATMUL_ROWS, MATMUL_TOKENS; fast paths (common.cl):
// XELM_SUBGROUPS reduces with sub_group_reduce_add (MATMUL_ATTR requires XELM_SUBGROUP_SIZE on
// Intel), XELM_FP16 computes the chunk products in half (chunk_dot), XELM_INT8 adds
// kernel_quantize_act_q8 and kernel_matmul_{q8_0,q4_0}_q8 (int8 activations; DP4A with
// XELM_DOT_INTEL_ASM or XELM_DOT_KHR, else the 4x8-bit dot written out).

// The required sub-group size goes on the int8 kernels only (their inline dp4a is written for that
// SIMD width); the float kernels keep the compiler's choice (forcing SIMD16 on them sent
// kernel_matmul_q5_k_f32 to 4 KiB of scratch on tgllp).
#ifdef XELM_SUBGROUP_SIZE
#define MATMUL_ATTR __attribute__((intel_reqd_sub_group_size(XELM_SUBGROUP_SIZE)))
#else
#define MATMUL_ATTR
#endif

// Sums acc[t] over the work-group (common.cl's work-group sum of MATMUL_TOKENS values) and writes
// y[t0 + t, row0 + row] (+ bias) for t < nt; every item calls it (it holds barriers).
DEFINE_WORK_GROUP_PARTIALS(work_group_sum_tokens_partials, MATMUL_TOKENS, sub_group_reduce_add, XELM_ADD_INTO)
inline void matmul_finish(float* acc, local float* partial, int lid, int nt, int t0, int row, int row0,
                          global float* y, int n_out, global const float* bias, int has_bias) {
  work_group_sum_tokens_partials(acc, partial, lid, MATMUL_WG);
  for (int t = lid; t < nt; t += MATMUL_WG) {
    y[(ulong)(t0 + t) * (ulong)n_out + row0 + row] =
        work_group_sum_total(partial, t, MATMUL_WG) + (has_bias ? bias[row0 + row] : 0.0f);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}

#define DEFINE_MATMUL(TYPE, CHUNK)                                                                    \
  kernel void kernel_matmul_##TYPE##_f32(global const uchar* w_buffer, ulong w_offset,                 \
                                         ulong row_bytes, int n_in, int row0, int n_rows,             \
                                         global const float* x, global float* y,                      \
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
          acc[0] += chunk_dot(wv, x0 + c * CHUNK, CHUNK);                                             \
        }                                                                                             \
      } else {                                                                                        \
        for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                             \
          dequant_##TYPE(w_row, c, wv);                                                               \
          for (int t = 0; t < MATMUL_TOKENS; ++t) {                                                   \
            if (t < nt) acc[t] += chunk_dot(wv, x0 + (ulong)t * (ulong)n_in + c * CHUNK, CHUNK);      \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
      matmul_finish(acc, partial, lid, nt, t0, row, row0, y, n_out, bias, has_bias);                  \
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

#ifdef XELM_INT8
// Int8 fast path: activations quantized per 32-element block as ggml's Q8_0 does (d = max|x| / 127,
// q = round(x / d)) into xq [n_tokens, n_in] and xd [n_tokens, n_in / 32], then Q8_0 and Q4_0
// weights multiplied block by block in 32-bit integers, four 8-bit products per dot:
// y = sum_blocks d_w * d_x * sum_j q_w[j] * q_x[j].
#if defined(XELM_DOT_INTEL_ASM)
// Intel Gen12+: one dp4a per 4x8-bit dot, as inline vISA at the kernel's SIMD width (the required
// sub-group size): r = acc + sum of the signed byte products of x and y.
#define XELM_STR2(x) #x
#define XELM_STR(x) XELM_STR2(x)
inline int dp4a_ss(int acc, int x, int y) {
  int r;
  __asm__("dp4a (M1, " XELM_STR(XELM_SUBGROUP_SIZE) ") %0(0,0)<1> %1(0,0)<1;1,0> %2(0,0)<1;1,0> %3(0,0)<1;1,0>"
          : "=rw"(r)
          : "rw"(acc), "rw"(x), "rw"(y));
  return r;
}
#define DOT4_ACC(acc, a, b) dp4a_ss((acc), as_int(a), as_int(b))
#elif defined(XELM_DOT_KHR)
#define DOT4_ACC(acc, a, b) ((acc) + dot((a), (b)))
#else
#define DOT4_ACC(acc, a, b) ((acc) + dot4_i8((a), (b)))
inline int dot4_i8(char4 a, char4 b) {
  const int4 p = convert_int4(a) * convert_int4(b);
  return (p.x + p.y) + (p.z + p.w);
}
#endif

// global = (n_in / 32, n_tokens).
kernel void kernel_quantize_act_q8(global const float* x, global char* xq, global float* xd, int n_in) {
  const int blk = get_global_id(0), t = get_global_id(1);
  const ulong base = (ulong)t * (ulong)n_in + (ulong)blk * 32;
  float v[32];
  float amax = 0.0f;
  for (int k = 0; k < 32; ++k) {
    v[k] = x[base + k];
    amax = fmax(amax, fabs(v[k]));
  }
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int k = 0; k < 32; ++k) xq[base + k] = (char)convert_int_rte(v[k] * id);
  xd[(ulong)t * (ulong)(n_in / 32) + blk] = d;
}

// Block c of a Q8_0 / Q4_0 row against 32 int8 activations with scale xd.
inline float dot_q8_0_q8(global const uchar* row, int c, global const char* xq, float xd) {
  global const uchar* b = row + (uint)c * 34u;
  global const char* qs = (global const char*)(b + 2);
  int s = 0;
  for (int i = 0; i < 8; ++i) s = DOT4_ACC(s, vload4(i, qs), vload4(i, xq));
  return load_half_at(b, 0) * xd * (float)s;
}
inline float dot_q4_0_q8(global const uchar* row, int c, global const char* xq, float xd) {
  global const uchar* b = row + (uint)c * 18u;
  int s = 0;
  for (int i = 0; i < 4; ++i) {
    const uchar4 q = vload4(i, b + 2);
    s = DOT4_ACC(s, convert_char4(q & (uchar4)(15)) - (char4)(8), vload4(i, xq));
    s = DOT4_ACC(s, convert_char4(q >> (uchar4)(4)) - (char4)(8), vload4(i + 4, xq));
  }
  return load_half_at(b, 0) * xd * (float)s;
}

// The matmul decomposition above, on int8 activations.
#define DEFINE_MATMUL_Q8(TYPE)                                                                        \
  MATMUL_ATTR kernel void kernel_matmul_##TYPE##_q8(global const uchar* w_buffer, ulong w_offset,     \
                                                    ulong row_bytes, int n_in, int row0, int n_rows,  \
                                                    global const char* xq, global const float* xd,    \
                                                    global float* y, int n_out, int n_tokens,         \
                                                    global const float* bias, int has_bias) {         \
    local float partial[MATMUL_TOKENS * MATMUL_WG];                                                   \
    global const uchar* w = w_buffer + w_offset;                                                      \
    const int lid = get_local_id(0);                                                                  \
    const int t0 = get_group_id(1) * MATMUL_TOKENS;                                                   \
    const int nt = min(MATMUL_TOKENS, n_tokens - t0);                                                 \
    const int n_chunks = n_in / 32;                                                                   \
    const int first_row = get_group_id(0) * MATMUL_ROWS;                                              \
    const int last_row = min(first_row + MATMUL_ROWS, n_rows);                                        \
    for (int row = first_row; row < last_row; ++row) {                                                \
      global const uchar* w_row = w + (ulong)row * row_bytes;                                         \
      float acc[MATMUL_TOKENS];                                                                       \
      for (int t = 0; t < MATMUL_TOKENS; ++t) acc[t] = 0.0f;                                          \
      for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                               \
        for (int t = 0; t < MATMUL_TOKENS; ++t) {                                                     \
          if (t < nt) {                                                                               \
            const ulong xt = (ulong)(t0 + t);                                                         \
            acc[t] += dot_##TYPE##_q8(w_row, c, xq + xt * (ulong)n_in + c * 32,                       \
                                      xd[xt * (ulong)n_chunks + c]);                                  \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
      matmul_finish(acc, partial, lid, nt, t0, row, row0, y, n_out, bias, has_bias);                  \
    }                                                                                                 \
  }

DEFINE_MATMUL_Q8(q8_0)
DEFINE_MATMUL_Q8(q4_0)
#endif  // XELM_INT8
