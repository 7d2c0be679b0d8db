// attention.cl — causal GQA attention of query rows over the KV cache pool, for every cache storage
// type, each row over its own sequence's pages.
//
// kernel_attention_<kv>_f32: one work-group of ATTN_WG items per (key split s, query head h, query
// row t). Query row t is at position positions[t] and sees keys 0 .. positions[t] of its sequence;
// key position p lives in cache row pages[p / page_size] * page_size + p % page_size of row t's block
// table (the batch's parts, kernel_abi.h). Split s covers key positions [s * split_len, (s + 1) *
// split_len) of those. The work-group walks its keys in tiles of ATTN_TILE: scores into local memory
// (one page look-up per key), then an online-softmax update (running max m, running sum l, rescaled
// accumulators) of the output dims, which item lid holds for d = lid + i * ATTN_WG (one page look-up
// per page crossed: within a page the keys are consecutive rows). With one split the normalised
// output goes to `out`; with several (flash decoding: a long context spread over many work-groups)
// each split writes (m, l, acc) and kernel_attention_reduce_f32 combines them; splits past a row's
// last key stay empty.
//   global = (ATTN_WG * n_splits, n_head, n_q), local = (ATTN_WG, 1, 1)
// Shapes: q, out [n_q, n_head * head_dim] f32; caches [n_ctx, n_head_kv * head_dim] of the storage
// type; batch [KV_BATCH_INTS(n_q, .)] int; part_acc [n_q, n_head, n_splits, head_dim]; part_ml
// [n_q, n_head, n_splits, 2]. head_dim <= ATTN_MAX_HEAD_DIM (the host checks).

#define ATTN_DIMS_PER_ITEM ((ATTN_MAX_HEAD_DIM + ATTN_WG - 1) / ATTN_WG)

// Pages are a power of two rows (KvBatch::page_size): a position's page and offset are a shift and a
// mask (Intel GPUs emulate integer division in a few dozen instructions).
inline int kv_page_offset(int p, int page_size) { return p & (page_size - 1); }

// The cache row of key position p, through a block table of pages of page_size rows.
inline ulong kv_row(global const int* table, int p, int page_size) {
  return (ulong)table[p >> popcount(page_size - 1)] * (ulong)page_size + (ulong)kv_page_offset(p, page_size);
}

inline float kv_load_f32(global const uchar* cache, ulong idx) { return ((global const float*)cache)[idx]; }
inline float kv_load_f16(global const uchar* cache, ulong idx) { return vload_half(idx, (global const half*)cache); }
// Element idx of a Q8_0 cache (rows are whole blocks, so idx / 32 is the block).
inline float kv_load_q8_0(global const uchar* cache, ulong idx) {
  global const uchar* block = cache + (idx / 32u) * 34u;
  return vload_half(0, (global const half*)block) * (float)((global const char*)(block + 2))[idx % 32u];
}

// Four consecutive elements from idx (the scores' dot products read keys four at a time: one
// 4-wide load per item where one element per load gave a 2-byte gather per element on Intel GPUs,
// bench/isa/tgllp.md).
inline float4 kv_load4_f32(global const uchar* cache, ulong idx) { return vload4(0, (global const float*)cache + idx); }
inline float4 kv_load4_f16(global const uchar* cache, ulong idx) { return vload_half4(0, (global const half*)cache + idx); }
inline float4 kv_load4_q8_0(global const uchar* cache, ulong idx) {
  return (float4)(kv_load_q8_0(cache, idx), kv_load_q8_0(cache, idx + 1), kv_load_q8_0(cache, idx + 2),
                  kv_load_q8_0(cache, idx + 3));
}

#define DEFINE_ATTENTION(KV)                                                                             \
  kernel void kernel_attention_##KV##_f32(global const float* q, global const uchar* k_cache,            \
                                          global const uchar* v_cache, global float* out,                \
                                          global float* part_acc, global float* part_ml, int n_head,     \
                                          int n_head_kv, int head_dim, global const int* batch,          \
                                          int page_size, int split_len, float scale) {                   \
    local float q_local[ATTN_MAX_HEAD_DIM];                                                              \
    local float scores[ATTN_TILE];                                                                       \
    local float scratch[ATTN_WG];                                                                        \
    const int lid = get_local_id(0);                                                                     \
    const int split = get_group_id(0), n_splits = get_num_groups(0);                                     \
    const int h = get_group_id(1), t = get_group_id(2);                                                  \
    const int kv_h = h / (n_head / n_head_kv);                                                           \
    const int kv_width = n_head_kv * head_dim;                                                           \
    const int n_q = get_num_groups(2);                                                                   \
    const int n_keys = batch[KV_BATCH_POSITIONS(n_q) + t] + 1;                                           \
    global const int* table = batch + KV_BATCH_PAGES(n_q) + batch[KV_BATCH_TABLES(n_q) + t];            \
    const int first = split * split_len;                                                                 \
    const int last = min(first + split_len, n_keys);                                                     \
    const ulong q_base = ((ulong)t * (ulong)n_head + h) * (ulong)head_dim;                               \
    for (int d = lid; d < head_dim; d += ATTN_WG) q_local[d] = q[q_base + d];                            \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                        \
    float m = -INFINITY, l = 0.0f;                                                                       \
    float acc[ATTN_DIMS_PER_ITEM];                                                                       \
    for (int i = 0; i < ATTN_DIMS_PER_ITEM; ++i) acc[i] = 0.0f;                                          \
    for (int tile = first; tile < last; tile += ATTN_TILE) {                                             \
      const int n_tile = min(ATTN_TILE, last - tile);                                                    \
      float tile_max = -INFINITY;                                                                        \
      for (int j = lid; j < n_tile; j += ATTN_WG) {                                                      \
        const ulong k_base = kv_row(table, tile + j, page_size) * (ulong)kv_width + (ulong)kv_h * (ulong)head_dim; \
        float dot4 = 0.0f;                                                                               \
        int d = 0;                                                                                       \
        for (; d + 4 <= head_dim; d += 4) dot4 += dot(vload4(0, q_local + d), kv_load4_##KV(k_cache, k_base + d)); \
        for (; d < head_dim; ++d) dot4 += q_local[d] * kv_load_##KV(k_cache, k_base + d);                \
        scores[j] = dot4 * scale;                                                                        \
        tile_max = fmax(tile_max, scores[j]);                                                            \
      }                                                                                                  \
      tile_max = work_group_max(tile_max, scratch, lid, ATTN_WG);                                        \
      const float new_m = fmax(m, tile_max);                                                             \
      const float correction = exp(m - new_m);                                                           \
      float tile_sum = 0.0f;                                                                             \
      for (int j = lid; j < n_tile; j += ATTN_WG) {                                                      \
        scores[j] = exp(scores[j] - new_m);                                                              \
        tile_sum += scores[j];                                                                           \
      }                                                                                                  \
      tile_sum = work_group_sum(tile_sum, scratch, lid, ATTN_WG);                                        \
      l = l * correction + tile_sum;                                                                     \
      for (int i = 0; i < ATTN_DIMS_PER_ITEM; ++i) {                                                     \
        const int d = lid + i * ATTN_WG;                                                                 \
        if (d < head_dim) {                                                                              \
          float a = acc[i] * correction;                                                                 \
          for (int j = 0; j < n_tile;) { /* the tile's keys page by page */                              \
            const int p = tile + j;                                                                      \
            const int in_page = min(n_tile - j, page_size - kv_page_offset(p, page_size));                              \
            const ulong v_base = kv_row(table, p, page_size) * (ulong)kv_width + (ulong)kv_h * (ulong)head_dim + d; \
            for (int e = 0; e < in_page; ++e, ++j) a += scores[j] * kv_load_##KV(v_cache, v_base + (ulong)e * kv_width); \
          }                                                                                              \
          acc[i] = a;                                                                                    \
        }                                                                                                \
      }                                                                                                  \
      m = new_m;                                                                                         \
      barrier(CLK_LOCAL_MEM_FENCE);                                                                      \
    }                                                                                                    \
    const ulong part = ((ulong)t * (ulong)n_head + h) * (ulong)n_splits + split;                         \
    for (int i = 0; i < ATTN_DIMS_PER_ITEM; ++i) {                                                       \
      const int d = lid + i * ATTN_WG;                                                                   \
      if (d < head_dim) {                                                                                \
        if (n_splits == 1) {                                                                             \
          out[q_base + d] = acc[i] / l;                                                                  \
        } else {                                                                                         \
          part_acc[part * (ulong)head_dim + d] = acc[i];                                                 \
        }                                                                                                \
      }                                                                                                  \
    }                                                                                                    \
    if (n_splits > 1 && lid == 0) {                                                                      \
      part_ml[2 * part] = m;                                                                             \
      part_ml[2 * part + 1] = l;                                                                         \
    }                                                                                                    \
  }

DEFINE_ATTENTION(f32)
DEFINE_ATTENTION(f16)
DEFINE_ATTENTION(q8_0)

// Combines the splits of kernel_attention_<kv>_f32: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s
// with M the largest m_s. Split 0 always holds key 0, so M is finite; empty splits (m = -inf, l = 0)
// weigh nothing.
//   global = (head_dim, n_head, n_q)
kernel void kernel_attention_reduce_f32(global const float* part_acc, global const float* part_ml, global float* out,
                                        int n_splits) {
  const int d = get_global_id(0), h = get_global_id(1), t = get_global_id(2);
  const int head_dim = get_global_size(0), n_head = get_global_size(1);
  const ulong first = ((ulong)t * (ulong)n_head + h) * (ulong)n_splits;
  float m = -INFINITY;
  for (int s = 0; s < n_splits; ++s) m = fmax(m, part_ml[2 * (first + s)]);
  float num = 0.0f, den = 0.0f;
  for (int s = 0; s < n_splits; ++s) {
    const float weight = exp(part_ml[2 * (first + s)] - m);
    num += weight * part_acc[(first + s) * (ulong)head_dim + d];
    den += weight * part_ml[2 * (first + s) + 1];
  }
  out[((ulong)t * (ulong)n_head + h) * (ulong)head_dim + d] = num / den;
}
