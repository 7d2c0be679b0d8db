// fused.cl — the decode path's fused kernels: what a decoded token's layer needs in few launches.
// The host uses the two products below for one-row batches (every decoded token) and keeps the
// tiled kernels of matmul.cl / norm.cl / elementwise.cl for prefill; kernel_rope_store_* serves any
// batch. Arithmetic is the reference backend's, op for op: h = x * scale * norm_weight with
// scale = 1 / sqrt(mean(x^2) + eps), y = sum_i W[o, i] * h[i] (+ bias), silu(g) = g / (1 + e^-g).
//
//   kernel_matvec_f32       up to three products of one input row over one logical row range (q|k|v,
//                           or the output head): y_s[o] = W_s[o, :] · h (+ bias_s[o]) for s < 3, with
//                           h = rms_norm(x) * norm_weight computed in the kernel (normed) or h = x, and
//                           the result stored (y = ...) or added to y (accumulate: the residual add).
//   kernel_norm_swiglu_f32  out[o] = silu(W_gate[o, :] · h) * (W_up[o, :] · h), h = rms_norm(x) * norm_weight.
//   kernel_rope_store_<kv>  qwen3's per-head q/k rms_norm (when given) and NEOX rope of q and k in place,
//                           then the rows' k and v written into the KV cache pool at their slots.
//
// Weight types are run-time arguments (ggml's type numbers: GGML_TYPE_*, which the host generates
// in front of every program from its GgmlType), uniform over a work-group, so one launch can mix
// types: Q4_K_M stores attn_v as Q6_K beside Q4_K attn_q/attn_k.
// The switch sits outside the chunk loop, so each type runs its own loop as in matmul.cl.
// Work-group sums go through common.cl's work_group_sum, so XELM_SUBGROUPS reduces by sub-group;
// the int8 path (XELM_INT8) is prefill-only: it needs the activations quantized by a launch of its own.

// This item's share of W[row, :] · h over chunks lid, lid + MATMUL_WG, ... (h as above; norm_w and
// scale unused when !normed). row_dot2_* does two rows (gate and up) against the same h.
#define DEFINE_ROW_DOT(TYPE, CHUNK)                                                                     \
  inline float row_dot_##TYPE(global const uchar* w_row, global const float* x, global const float* norm_w, \
                              float scale, int normed, int n_in, int lid) {                              \
    const int n_chunks = n_in / CHUNK;                                                                   \
    float acc = 0.0f;                                                                                    \
    float wv[CHUNK];                                                                                     \
    if (normed) {                                                                                        \
      for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                                  \
        dequant_##TYPE(w_row, c, wv);                                                                    \
        global const float* xc = x + c * CHUNK;                                                          \
        global const float* gc = norm_w + c * CHUNK;                                                     \
        for (int k = 0; k < CHUNK; ++k) acc += wv[k] * (xc[k] * scale * gc[k]);                         \
      }                                                                                                  \
    } else {                                                                                             \
      for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                                  \
        dequant_##TYPE(w_row, c, wv);                                                                    \
        global const float* xc = x + c * CHUNK;                                                          \
        for (int k = 0; k < CHUNK; ++k) acc += wv[k] * xc[k];                                            \
      }                                                                                                  \
    }                                                                                                    \
    return acc;                                                                                          \
  }                                                                                                      \
  inline float row_dot2_##TYPE(global const uchar* g_row, global const uchar* u_row, global const float* x, \
                               global const float* norm_w, float scale, int n_in, int lid, float* up) {   \
    const int n_chunks = n_in / CHUNK;                                                                   \
    float acc_g = 0.0f, acc_u = 0.0f;                                                                    \
    float wv[CHUNK];                                                                                     \
    for (int c = lid; c < n_chunks; c += MATMUL_WG) {                                                    \
      global const float* xc = x + c * CHUNK;                                                            \
      global const float* gc = norm_w + c * CHUNK;                                                       \
      dequant_##TYPE(g_row, c, wv);                                                                      \
      for (int k = 0; k < CHUNK; ++k) acc_g += wv[k] * (xc[k] * scale * gc[k]);                         \
      dequant_##TYPE(u_row, c, wv);                                                                      \
      for (int k = 0; k < CHUNK; ++k) acc_u += wv[k] * (xc[k] * scale * gc[k]);                         \
    }                                                                                                    \
    *up = acc_u;                                                                                         \
    return acc_g;                                                                                        \
  }

DEFINE_ROW_DOT(f32, CHUNK_F32)
DEFINE_ROW_DOT(f16, CHUNK_F16)
DEFINE_ROW_DOT(bf16, CHUNK_BF16)
DEFINE_ROW_DOT(q4_0, CHUNK_Q4_0)
DEFINE_ROW_DOT(q4_1, CHUNK_Q4_1)
DEFINE_ROW_DOT(q5_0, CHUNK_Q5_0)
DEFINE_ROW_DOT(q5_1, CHUNK_Q5_1)
DEFINE_ROW_DOT(q8_0, CHUNK_Q8_0)
DEFINE_ROW_DOT(q2_k, CHUNK_Q2_K)
DEFINE_ROW_DOT(q3_k, CHUNK_Q3_K)
DEFINE_ROW_DOT(q4_k, CHUNK_Q4_K)
DEFINE_ROW_DOT(q5_k, CHUNK_Q5_K)
DEFINE_ROW_DOT(q6_k, CHUNK_Q6_K)

#define ROW_DOT_CASE(NAME, TYPE) \
  case GGML_TYPE_##NAME:         \
    return row_dot_##TYPE(w_row, x, norm_w, scale, normed, n_in, lid);
inline float row_dot(int type, global const uchar* w_row, global const float* x, global const float* norm_w,
                     float scale, int normed, int n_in, int lid) {
  switch (type) {
    ROW_DOT_CASE(F32, f32) ROW_DOT_CASE(F16, f16) ROW_DOT_CASE(BF16, bf16) ROW_DOT_CASE(Q4_0, q4_0)
    ROW_DOT_CASE(Q4_1, q4_1) ROW_DOT_CASE(Q5_0, q5_0) ROW_DOT_CASE(Q5_1, q5_1) ROW_DOT_CASE(Q8_0, q8_0)
    ROW_DOT_CASE(Q2_K, q2_k) ROW_DOT_CASE(Q3_K, q3_k) ROW_DOT_CASE(Q4_K, q4_k) ROW_DOT_CASE(Q5_K, q5_k)
    ROW_DOT_CASE(Q6_K, q6_k)
  }
  return 0.0f;  // the host only passes the types above
}

#define ROW_DOT2_CASE(NAME, TYPE) \
  case GGML_TYPE_##NAME:          \
    return row_dot2_##TYPE(g_row, u_row, x, norm_w, scale, n_in, lid, up);
inline float row_dot2(int type, global const uchar* g_row, global const uchar* u_row, global const float* x,
                      global const float* norm_w, float scale, int n_in, int lid, float* up) {
  switch (type) {
    ROW_DOT2_CASE(F32, f32) ROW_DOT2_CASE(F16, f16) ROW_DOT2_CASE(BF16, bf16) ROW_DOT2_CASE(Q4_0, q4_0)
    ROW_DOT2_CASE(Q4_1, q4_1) ROW_DOT2_CASE(Q5_0, q5_0) ROW_DOT2_CASE(Q5_1, q5_1) ROW_DOT2_CASE(Q8_0, q8_0)
    ROW_DOT2_CASE(Q2_K, q2_k) ROW_DOT2_CASE(Q3_K, q3_k) ROW_DOT2_CASE(Q4_K, q4_k) ROW_DOT2_CASE(Q5_K, q5_k)
    ROW_DOT2_CASE(Q6_K, q6_k)
  }
  *up = 0.0f;
  return 0.0f;
}

// 1 / sqrt(mean(x[0 .. n)^2) + eps) over the work-group (every item gets it; 1 when !normed). Every
// item reaches the reduction's barriers whatever `normed` says. `scratch` holds `wg` floats.
inline float rms_scale(global const float* x, int n, float eps, int normed, local float* scratch, int lid, int wg) {
  float sum_sq = 0.0f;
  if (normed) {
    for (int i = lid; i < n; i += wg) sum_sq += x[i] * x[i];
  }
  sum_sq = work_group_sum(sum_sq, scratch, lid, wg);
  return normed ? 1.0f / sqrt(sum_sq / (float)n + eps) : 1.0f;
}

// One work-group of MATMUL_WG items per MATMUL_ROWS output rows of one segment; segment s owns
// ceil(rows_s / MATMUL_ROWS) consecutive groups (segment 0 first). Unused segments have rows_s = 0.
//   global = (MATMUL_WG * total groups), local = (MATMUL_WG)
// Shapes: x [n_in] f32 (one token row); norm_w [n_in] f32; per segment s (MatvecSegment, kernel_abi.h,
// for the scalars): W_s [rows_s, row_bytes_s] raw GGUF bytes from byte offset_s of w_s; y_s [rows_s] f32;
// bias_s [rows_s] f32 (read when has_bias_s). y_s must not alias x (accumulate adds into y_s, e.g. the
// residual stream, with x another row).
kernel void kernel_matvec_f32(global const float* x, global const float* norm_w, float eps, int normed,
                              int accumulate, int n_in, MatvecSegments segments, global const uchar* w0,
                              global const uchar* w1, global const uchar* w2, global float* y0, global float* y1,
                              global float* y2, global const float* bias0, global const float* bias1,
                              global const float* bias2) {
  local float partial[MATMUL_WG];
  const int lid = get_local_id(0);
  const float scale = rms_scale(x, n_in, eps, normed, partial, lid, MATMUL_WG);
  // This group's segment: past the groups of the segments before it (segment s is taken while the
  // group lies past the current one's groups). Unrolled, the loop indexes the struct and the
  // pointers by constants and selects, with no branch: a run-time index put the struct in private
  // memory on Intel (4 KiB scratch), and a `break` made PoCL keep the choice per work-item (10% slower).
  global const uchar* const weights[MATVEC_SEGMENTS] = {w0, w1, w2};
  global float* const outputs[MATVEC_SEGMENTS] = {y0, y1, y2};
  global const float* const biases[MATVEC_SEGMENTS] = {bias0, bias1, bias2};
  MatvecSegment m = segments.s[0];
  global const uchar* w = weights[0];
  global float* y = outputs[0];
  global const float* bias = biases[0];
  int g = get_group_id(0);
#pragma unroll
  for (int s = 1; s < MATVEC_SEGMENTS; ++s) {
    const int groups = (m.rows + MATMUL_ROWS - 1) / MATMUL_ROWS;
    const bool past = g >= groups;
    g = past ? g - groups : g;
    m = past ? segments.s[s] : m;
    w = past ? weights[s] : w;
    y = past ? outputs[s] : y;
    bias = past ? biases[s] : bias;
  }
  w += m.offset;
  const int first_row = g * MATMUL_ROWS, last_row = min(first_row + MATMUL_ROWS, m.rows);
  for (int row = first_row; row < last_row; ++row) {
    const float dot = work_group_sum(row_dot(m.type, w + (ulong)row * m.row_bytes, x, norm_w, scale, normed, n_in, lid),
                                     partial, lid, MATMUL_WG);
    if (lid == 0) {
      const float v = dot + (m.has_bias ? bias[row] : 0.0f);
      y[row] = accumulate ? y[row] + v : v;
    }
  }
}

// One work-group of MATMUL_WG items per MATMUL_ROWS rows of gate and up (the same type and shape).
//   global = (MATMUL_WG * ceil(n_rows / MATMUL_ROWS)), local = (MATMUL_WG)
// Shapes: x, norm_w [n_in] f32; W_gate, W_up [n_rows, row_bytes]; out [n_rows] f32.
kernel void kernel_norm_swiglu_f32(global const float* x, global const float* norm_w, float eps, int n_in,
                                   global const uchar* wg_buffer, ulong wg_offset, global const uchar* wu_buffer,
                                   ulong wu_offset, ulong row_bytes, int type, int n_rows, global float* out) {
  local float partial[MATMUL_WG];
  const int lid = get_local_id(0);
  const float scale = rms_scale(x, n_in, eps, 1, partial, lid, MATMUL_WG);
  global const uchar* w_gate = wg_buffer + wg_offset;
  global const uchar* w_up = wu_buffer + wu_offset;
  const int first_row = get_group_id(0) * MATMUL_ROWS, last_row = min(first_row + MATMUL_ROWS, n_rows);
  for (int row = first_row; row < last_row; ++row) {
    float up;
    const float gate_part = row_dot2(type, w_gate + (ulong)row * row_bytes, w_up + (ulong)row * row_bytes, x, norm_w,
                                     scale, n_in, lid, &up);
    const float g = work_group_sum(gate_part, partial, lid, MATMUL_WG);
    const float u = work_group_sum(up, partial, lid, MATMUL_WG);
    if (lid == 0) out[row] = g / (1.0f + exp(-g)) * u;
  }
}

// Writes one head (head_dim floats) into a cache row from element dst, as kv_cache.cl converts:
// F32 as is, F16 by vstore_half (round to nearest even), Q8_0 in whole 32-element blocks.
inline void store_head_f32(global uchar* cache, ulong dst, global const float* head, int head_dim, int lid) {
  for (int i = lid; i < head_dim; i += NORM_WG) ((global float*)cache)[dst + i] = head[i];
}
inline void store_head_f16(global uchar* cache, ulong dst, global const float* head, int head_dim, int lid) {
  for (int i = lid; i < head_dim; i += NORM_WG) vstore_half(head[i], dst + i, (global half*)cache);
}
inline void store_head_q8_0(global uchar* cache, ulong dst, global const float* head, int head_dim, int lid) {
  for (int b = lid; b < head_dim / 32; b += NORM_WG) quantize_block_q8_0(head + b * 32, cache + (dst / 32 + b) * 34u);
}

// One work-group of NORM_WG items per (head slot, row t): slots [0, n_head) are q heads, then n_head_kv
// k heads, then n_head_kv v heads. q and k heads: h = rms_norm(head) * norm (when has_*_norm), then
// NEOX rope at position positions[t], written back in place; k and v heads are then written into the
// cache row slots[t] (the batch's parts, kernel_abi.h; for Q8_0 in whole 32-element blocks, so head_dim
// must be a multiple of 32; the host checks). The sum of squares uses kernel_rms_norm_f32's decomposition and the angles rope.cl's, so the
// results equal the unfused rms_norm, rope and store_kv launches.
//   global = (NORM_WG, n_head + 2 * n_head_kv, n_rows), local = (NORM_WG, 1, 1)
// Shapes: q [n_rows, n_head * head_dim], k and v [n_rows, n_head_kv * head_dim] f32; q_norm, k_norm
// [head_dim] f32; caches [n_ctx, n_head_kv * head_dim] of the storage type; batch
// [KV_BATCH_INTS(n_rows, .)] int; inv_freq [head_dim / 2].
#define DEFINE_ROPE_STORE(KV)                                                                             \
  kernel void kernel_rope_store_##KV(global float* q, global float* k, global float* v,                 \
                                     global const float* q_norm, global const float* k_norm,            \
                                     int has_q_norm, int has_k_norm, float eps, global uchar* k_cache,  \
                                     global uchar* v_cache, int n_head, int n_head_kv, int head_dim,    \
                                     global const int* batch, global const float* inv_freq) {           \
    local float scratch[NORM_WG];                                                                       \
    const int lid = get_local_id(0);                                                                    \
    const int slot = get_group_id(1), t = get_group_id(2);                                              \
    const int kv_width = n_head_kv * head_dim, half_dim = head_dim / 2;                                 \
    const int n_rows = get_num_groups(2);                                                               \
    const int is_q = slot < n_head, is_v = slot >= n_head + n_head_kv;                                  \
    const int kv_h = is_q ? 0 : is_v ? slot - n_head - n_head_kv : slot - n_head;                       \
    global float* head = is_q ? q + ((ulong)t * (ulong)n_head + slot) * (ulong)head_dim                 \
                              : (is_v ? v : k) + (ulong)t * (ulong)kv_width + (ulong)kv_h * (ulong)head_dim; \
    global const float* norm_w = is_q ? q_norm : k_norm;                                                \
    const int normed = !is_v && (is_q ? has_q_norm : has_k_norm);                                       \
    float sum_sq = 0.0f;                                                                                \
    if (normed) {                                                                                       \
      for (int i = lid; i < head_dim; i += NORM_WG) sum_sq += head[i] * head[i];                        \
    }                                                                                                   \
    sum_sq = work_group_sum(sum_sq, scratch, lid, NORM_WG); /* every item: no barrier in a branch */    \
    const float scale = 1.0f / sqrt(sum_sq / (float)head_dim + eps);                                    \
    if (!is_v) {                                                                                        \
      for (int i = lid; i < half_dim; i += NORM_WG) {                                                   \
        float a = head[i], b = head[i + half_dim];                                                      \
        if (normed) {                                                                                   \
          a = a * scale * norm_w[i];                                                                    \
          b = b * scale * norm_w[i + half_dim];                                                         \
        }                                                                                               \
        const float theta = (float)batch[KV_BATCH_POSITIONS(n_rows) + t] * inv_freq[i];                 \
        const float c = cos(theta), s = sin(theta);                                                     \
        head[i] = a * c - b * s;                                                                        \
        head[i + half_dim] = a * s + b * c;                                                             \
      }                                                                                                 \
    }                                                                                                   \
    barrier(CLK_GLOBAL_MEM_FENCE); /* the rotated k head is read back below by other items */          \
    if (!is_q) {                                                                                        \
      const ulong cache_row = (ulong)batch[KV_BATCH_SLOTS(n_rows) + t];                                 \
      const ulong dst = cache_row * (ulong)kv_width + (ulong)kv_h * (ulong)head_dim;                    \
      store_head_##KV(is_v ? v_cache : k_cache, dst, head, head_dim, lid);                              \
    }                                                                                                   \
  }

DEFINE_ROPE_STORE(f32)
DEFINE_ROPE_STORE(f16)
DEFINE_ROPE_STORE(q8_0)
