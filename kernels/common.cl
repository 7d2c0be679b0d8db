// common.cl — helpers shared by every kernel program (prepended to each program at build time):
// element loads of the float types and the dequantization of one "chunk" of every ggml weight type.
// Portable baseline: OpenCL C 1.2, no fp16 arithmetic, no sub-groups, no double.
//
// Fast paths, each switched on by the host with a -D option only where the device reports the
// feature (host/build_options.cpp, select_fast_paths); with none defined this is the baseline:
//   XELM_FP16          cl_khr_fp16: chunk dot products in half arithmetic (chunk_dot)
//   XELM_SUBGROUPS     cl_khr_subgroups / cl_intel_subgroups: matmul reductions with
//                      sub_group_reduce_add; XELM_SUBGROUP_SIZE=n adds intel_reqd_sub_group_size(n)
//   XELM_INT8          Q8_0/Q4_0 products on int8-quantized activations (matmul.cl);
//                      XELM_DOT_KHR takes the 4x8-bit dot from cl_khr_integer_dot_product,
//                      XELM_DOT_INTEL_ASM emits Intel's dp4a by inline vISA (DP4A)
#ifdef XELM_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif
#if defined(XELM_SUBGROUPS) && defined(cl_khr_subgroups)
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#endif
#ifdef XELM_DOT_KHR
#pragma OPENCL EXTENSION cl_khr_integer_dot_product : enable
#endif
//
// A chunk is the unit one work-item dequantizes at a time: one element for F32/F16/BF16, one
// 32-element block for the legacy quants, one 32-element run of a 256-element super-block for the
// K-quants. dequant_<type>(row, c, out) writes chunk c of a row (the row's raw GGUF bytes) to out.
// Block layouts are ggml's (runtime/quant_blocks.h); fields are read byte by byte or as halves,
// since blocks of 18, 22, 34, 110 or 210 bytes leave wider fields unaligned; the dword-multiple
// blocks (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) are read in whole dwords.

#define CHUNK_F32 1
#define CHUNK_F16 1
#define CHUNK_BF16 1
#define CHUNK_Q4_0 32
#define CHUNK_Q4_1 32
#define CHUNK_Q5_0 32
#define CHUNK_Q5_1 32
#define CHUNK_Q8_0 32
#define CHUNK_Q2_K 32
#define CHUNK_Q3_K 32
#define CHUNK_Q4_K 32
#define CHUNK_Q5_K 32
#define CHUNK_Q6_K 32

// Half at byte offset `off` (2-byte aligned in every block layout).
inline float load_half_at(global const uchar* p, uint off) { return vload_half(0, (global const half*)(p + off)); }

inline uint load_u32_bytes(global const uchar* p) {
  return (uint)p[0] | ((uint)p[1] << 8) | ((uint)p[2] << 16) | ((uint)p[3] << 24);
}

// Blocks whose size is a multiple of 4 bytes (Q4_1 20, Q5_1 24, Q2_K 84, Q4_K 144, Q5_K 176) start
// dword aligned (device buffers are aligned, rows are whole blocks) and are read in whole dwords:
// vload4 of uint gives one 4-dword load per item where byte reads gave a byte gather per 4 bytes
// on Intel GPUs (bench/isa/tgllp.md).

// Byte k (0..15) of four little-endian dwords.
inline uint byte_of4(uint4 v, int k) {
  const uint w = k < 4 ? v.x : k < 8 ? v.y : k < 12 ? v.z : v.w;
  return (w >> (8 * (k % 4))) & 0xffu;
}

inline void dequant_f32(global const uchar* row, int c, float* out) { out[0] = ((global const float*)row)[c]; }
inline void dequant_f16(global const uchar* row, int c, float* out) { out[0] = vload_half(c, (global const half*)row); }
inline void dequant_bf16(global const uchar* row, int c, float* out) {
  out[0] = as_float((uint)((global const ushort*)row)[c] << 16);
}

// Q4_0 (18 bytes): d, qs[16]; x = d * (q - 8); element j low nibble of qs[j], j+16 high nibble.
inline void dequant_q4_0(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)c * 18u;
  const float d = load_half_at(b, 0);
  for (int j = 0; j < 16; ++j) {
    const uchar q = b[2 + j];
    out[j] = d * (float)((int)(q & 15) - 8);
    out[j + 16] = d * (float)((int)(q >> 4) - 8);
  }
}

// Q4_1 (20 bytes): d, m, qs[16]; x = d * q + m. Dword aligned: qs is one 4-dword load.
inline void dequant_q4_1(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)c * 20u;
  const float2 dm = vload_half2(0, (global const half*)b);
  const uint4 q = vload4(0, (global const uint*)(b + 4));
  const uint qw[4] = {q.x, q.y, q.z, q.w};
  for (int j = 0; j < 16; ++j) {
    const uint v = (qw[j / 4] >> (8 * (j % 4))) & 0xffu;
    out[j] = (float)(v & 15u) * dm.x + dm.y;
    out[j + 16] = (float)(v >> 4) * dm.x + dm.y;
  }
}

// Q5_0 (22 bytes): d, qh[4], qs[16]; x = d * (q - 16), bit 4 of element j is bit j of qh.
inline void dequant_q5_0(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)c * 22u;
  const float d = load_half_at(b, 0);
  const uint qh = load_u32_bytes(b + 2);
  for (int j = 0; j < 16; ++j) {
    const uchar q = b[6 + j];
    out[j] = d * (float)((int)((q & 15) | (((qh >> j) & 1u) << 4)) - 16);
    out[j + 16] = d * (float)((int)((q >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16);
  }
}

// Q5_1 (24 bytes): d, m, qh[4], qs[16]; x = d * q + m. Dword aligned: qh one dword, qs 4 dwords.
inline void dequant_q5_1(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)c * 24u;
  const float2 dm = vload_half2(0, (global const half*)b);
  const uint qh = ((global const uint*)(b + 4))[0];
  const uint4 q = vload4(0, (global const uint*)(b + 8));
  const uint qw[4] = {q.x, q.y, q.z, q.w};
  for (int j = 0; j < 16; ++j) {
    const uint v = (qw[j / 4] >> (8 * (j % 4))) & 0xffu;
    out[j] = (float)((v & 15u) | (((qh >> j) & 1u) << 4)) * dm.x + dm.y;
    out[j + 16] = (float)((v >> 4) | (((qh >> (j + 16)) & 1u) << 4)) * dm.x + dm.y;
  }
}

// Q8_0 (34 bytes): d, qs[32] signed; x = d * q.
inline void dequant_q8_0(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)c * 34u;
  const float d = load_half_at(b, 0);
  global const char* qs = (global const char*)(b + 2);
  for (int j = 0; j < 32; ++j) out[j] = d * (float)qs[j];
}

// K-quant chunk c = 32-element run r = c % 8 of super-block c / 8. For the 2-, 3- and 6-bit types
// run r covers half h = r / 4, quarter s = r % 4: elements 128h + 32s + l, l < 32.

// Q2_K (84 bytes): scales[16], qs[64], d, dmin; x = d * (sc & 15) * q - dmin * (sc >> 4).
// Dword aligned: the scales are 4 dwords, the run's 32 quant bytes 8 dwords.
inline void dequant_q2_k(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)(c / 8) * 84u;
  const int r = c % 8, h = r / 4, s = r % 4;
  const float2 dd = vload_half2(0, (global const half*)(b + 80));
  const uint4 scales = vload4(0, (global const uint*)b);
  global const uint* qp = (global const uint*)(b + 16 + 32 * h);
  const uint4 q0 = vload4(0, qp), q1 = vload4(1, qp);
  const uint qw[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  for (int half16 = 0; half16 < 2; ++half16) {
    const uint sc = byte_of4(scales, 8 * h + 2 * s + half16);
    const float dl = dd.x * (float)(sc & 15u), ml = dd.y * (float)(sc >> 4);
    for (int i = 0; i < 16; ++i) {
      const int l = 16 * half16 + i;
      const uint q = (qw[l / 4] >> (8 * (l % 4) + 2 * s)) & 3u;
      out[l] = dl * (float)q - ml;
    }
  }
}

// Q3_K (110 bytes): hmask[32], qs[64], scales[12], d; x = d * (s_j - 32) * (q - 4).
inline int q3_k_scale(global const uchar* scales, int j) {
  const int low = j < 8 ? scales[j] & 15 : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}
inline void dequant_q3_k(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)(c / 8) * 110u;
  const int r = c % 8, h = r / 4, s = r % 4;
  const float d = load_half_at(b, 108);
  for (int half16 = 0; half16 < 2; ++half16) {
    const float dl = d * (float)q3_k_scale(b + 96, 8 * h + 2 * s + half16);
    for (int i = 0; i < 16; ++i) {
      const int l = 16 * half16 + i;
      const int low = (b[32 + 32 * h + l] >> (2 * s)) & 3;
      const int high = (b[l] >> r) & 1;
      out[l] = dl * (float)(low - (high ? 0 : 4));
    }
  }
}

// Q4_K / Q5_K packed 6-bit scale and min of 32-element sub-block j; `head` is the block's first 16
// bytes (d, dmin, scales[12]), so scale byte i is byte 4 + i of head.
inline void k4_scale_min(int j, uint4 head, float* sc, float* m) {
  if (j < 4) {
    *sc = (float)(byte_of4(head, 4 + j) & 63u);
    *m = (float)(byte_of4(head, 8 + j) & 63u);
  } else {
    *sc = (float)((byte_of4(head, 8 + j) & 15u) | ((byte_of4(head, j) >> 6) << 4));
    *m = (float)((byte_of4(head, 8 + j) >> 4) | ((byte_of4(head, 4 + j) >> 6) << 4));
  }
}

// Q4_K (144 bytes): d, dmin, scales[12], qs[128]; run r: nibble r % 2 of qs[32 * (r / 2) + l].
inline void dequant_q4_k(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)(c / 8) * 144u;
  const int r = c % 8;
  float sc, m;
  k4_scale_min(r, vload4(0, (global const uint*)b), &sc, &m);
  const float2 dm = vload_half2(0, (global const half*)b);
  const float d1 = dm.x * sc, m1 = dm.y * m;
  global const uint* q = (global const uint*)(b + 16 + 32 * (r / 2));
  const uint4 q0 = vload4(0, q), q1 = vload4(1, q);
  const uint qw[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  const int shift = 4 * (r % 2);
  for (int l = 0; l < 32; ++l) out[l] = d1 * (float)((qw[l / 4] >> (8 * (l % 4) + shift)) & 15u) - m1;
}

// Q5_K (176 bytes): d, dmin, scales[12], qh[32], qs[128]; high bit of run r is bit r of qh[l].
inline void dequant_q5_k(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)(c / 8) * 176u;
  const int r = c % 8;
  float sc, m;
  k4_scale_min(r, vload4(0, (global const uint*)b), &sc, &m);
  const float2 dm = vload_half2(0, (global const half*)b);
  const float d1 = dm.x * sc, m1 = dm.y * m;
  global const uint* qh = (global const uint*)(b + 16);
  global const uint* q = (global const uint*)(b + 48 + 32 * (r / 2));
  const uint4 h0 = vload4(0, qh), h1 = vload4(1, qh), q0 = vload4(0, q), q1 = vload4(1, q);
  const uint hw[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
  const uint qw[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  const int shift = 4 * (r % 2);
  for (int l = 0; l < 32; ++l) {
    const uint v = ((qw[l / 4] >> (8 * (l % 4) + shift)) & 15u) | (((hw[l / 4] >> (8 * (l % 4) + r)) & 1u) << 4);
    out[l] = d1 * (float)v - m1;
  }
}

// Q6_K (210 bytes): ql[128], qh[64], scales[16] signed, d; x = d * scale * (q - 32).
inline void dequant_q6_k(global const uchar* row, int c, float* out) {
  global const uchar* b = row + (uint)(c / 8) * 210u;
  const int r = c % 8, h = r / 4, s = r % 4;
  const float d = load_half_at(b, 208);
  global const char* scales = (global const char*)(b + 192);
  for (int half16 = 0; half16 < 2; ++half16) {
    const float dl = d * (float)scales[8 * h + 2 * s + half16];
    for (int i = 0; i < 16; ++i) {
      const int l = 16 * half16 + i;
      const uchar ql = b[64 * h + l + 32 * (s % 2)];
      const int low = s < 2 ? ql & 15 : ql >> 4;
      const int high = (b[128 + 32 * h + l] >> (2 * s)) & 3;
      out[l] = dl * (float)((low | (high << 4)) - 32);
    }
  }
}

// One 32-element block of f32 into Q8_0 (34 bytes: d, qs[32]) with ggml's reference rounding:
// d = amax / 127, q = round(x / d). For the KV cache (kv_cache.cl, fused.cl).
inline void quantize_block_q8_0(global const float* x, global uchar* block) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = fmax(amax, fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  vstore_half(d, 0, (global half*)block);
  global char* qs = (global char*)(block + 2);
  for (int j = 0; j < 32; ++j) qs[j] = (char)round(x[j] * id);
}

// sum_k w[k] * x[k] over one dequantized chunk of n elements. XELM_FP16: in half arithmetic, four
// products per lane of a half8 accumulator, then summed in float (chunks of 32 stay far from half's
// range limits at the magnitudes of weights and normalised activations).
inline float chunk_dot(const float* w, global const float* x, int n) {
#ifdef XELM_FP16
  if (n % 8 == 0) {
    half8 acc = (half8)(0.0h);
    for (int k = 0; k < n; k += 8) acc = fma(convert_half8(vload8(0, w + k)), convert_half8(vload8(0, x + k)), acc);
    const float8 f = convert_float8(acc);
    return ((f.s0 + f.s1) + (f.s2 + f.s3)) + ((f.s4 + f.s5) + (f.s6 + f.s7));
  }
#endif
  float s = 0.0f;
  for (int k = 0; k < n; ++k) s += w[k] * x[k];
  return s;
}

// Work-group reductions over a work-group of n (a power of two) items. Every item must call them
// (they hold barriers); `scratch` holds COUNT * n floats.
//   DEFINE_WORK_GROUP_PARTIALS(NAME, COUNT, SUB_GROUP_OP, COMBINE_INTO) defines
//     void NAME(const float* v, local float* scratch, int lid, int n): each of the COUNT values
//     v[0 .. COUNT) of every item combined over the work-group, separately, into partial results
//     in scratch;
//   DEFINE_WORK_GROUP_TOTAL(NAME, COMBINE_INTO) defines float NAME(scratch, k, n): value k's result
//     from the partials, for any item and any k; a barrier must separate the last read of a result
//     from the next use of scratch;
//   DEFINE_WORK_GROUP_REDUCE(NAME, SUB_GROUP_OP, COMBINE_INTO) defines float NAME(v, scratch, lid, n),
//     the one-value case with the result in every item (work_group_sum, work_group_max), and the
//     NAME##_partials / NAME##_total it is made of. matmul.cl's matmul_finish is the MATMUL_TOKENS case.
// Baseline: a local-memory tree, value k's result in scratch[k * n]. XELM_SUBGROUPS: one
// sub_group_reduce_* per sub-group and value, the sub-groups' results combined from local memory.
// COMBINE_INTO(acc, x) updates acc in place (acc += x). The tree keeps the shape PoCL needs to lay
// out the barrier regions well: COUNT a compile-time constant and the loops unrolled, the update
// as `+=` (a run-time count, no unrolling or `a = a + b` made the matmuls 35% slower there).
#define XELM_ADD_INTO(acc, x) ((acc) += (x))
#define XELM_MAX_INTO(acc, x) ((acc) = fmax((acc), (x)))
#ifdef XELM_SUBGROUPS
#define DEFINE_WORK_GROUP_PARTIALS(NAME, COUNT, SUB_GROUP_OP, COMBINE_INTO)                       \
  inline void NAME(const float* v, local float* scratch, int lid, int n) {                        \
    const uint sg = get_sub_group_id();                                                            \
    for (int k = 0; k < (COUNT); ++k) {                                                            \
      const float mine = SUB_GROUP_OP(v[k]);                                                       \
      if (get_sub_group_local_id() == 0) scratch[k * n + sg] = mine;                               \
    }                                                                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
  }
#define DEFINE_WORK_GROUP_TOTAL(NAME, COMBINE_INTO)                                                \
  inline float NAME(local const float* scratch, int k, int n) {                                    \
    float total = scratch[k * n];                                                                  \
    for (uint j = 1; j < get_num_sub_groups(); ++j) COMBINE_INTO(total, scratch[k * n + j]);       \
    return total;                                                                                  \
  }
#else
#define DEFINE_WORK_GROUP_PARTIALS(NAME, COUNT, SUB_GROUP_OP, COMBINE_INTO)                       \
  inline void NAME(const float* v, local float* scratch, int lid, int n) {                        \
    _Pragma("unroll") for (int k = 0; k < (COUNT); ++k) scratch[k * n + lid] = v[k];               \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    _Pragma("unroll") for (int s = n / 2; s > 0; s >>= 1) {                                        \
      if (lid < s) {                                                                               \
        _Pragma("unroll") for (int k = 0; k < (COUNT); ++k) {                                      \
          COMBINE_INTO(scratch[k * n + lid], scratch[k * n + lid + s]);                            \
        }                                                                                          \
      }                                                                                            \
      barrier(CLK_LOCAL_MEM_FENCE);                                                                \
    }                                                                                              \
  }
#define DEFINE_WORK_GROUP_TOTAL(NAME, COMBINE_INTO) \
  inline float NAME(local const float* scratch, int k, int n) { return scratch[k * n]; }
#endif
#define DEFINE_WORK_GROUP_REDUCE(NAME, SUB_GROUP_OP, COMBINE_INTO)                                \
  DEFINE_WORK_GROUP_PARTIALS(NAME##_partials, 1, SUB_GROUP_OP, COMBINE_INTO)                       \
  DEFINE_WORK_GROUP_TOTAL(NAME##_total, COMBINE_INTO)                                              \
  inline float NAME(float v, local float* scratch, int lid, int n) {                               \
    NAME##_partials(&v, scratch, lid, n);                                                          \
    const float total = NAME##_total(scratch, 0, n);                                               \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    return total;                                                                                  \
  }
DEFINE_WORK_GROUP_REDUCE(work_group_sum, sub_group_reduce_add, XELM_ADD_INTO)
DEFINE_WORK_GROUP_REDUCE(work_group_max, sub_group_reduce_max, XELM_MAX_INTO)
