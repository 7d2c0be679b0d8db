// kernel_abi.h — what the host and the kernels lay out alike, defined once for both sides: kernel
// arguments passed by value as structs, and the int array a KvBatch is uploaded as. The host's C++
// includes this file (host/fused_ops.cpp, host/ops.cpp), and program_source (host/program_cache.cpp)
// puts it in front of every program, after ggml's GGML_TYPE_* numbers (which it generates from
// GgmlType, runtime/ggml_types.h). Written in the C both compilers read: OpenCL's fixed-size types
// (cl_ulong/cl_int on the host), no pointers (OpenCL 1.2 allows such structs as kernel arguments),
// members in decreasing size so that neither side pads differently (the host static_asserts it).
#ifndef XELM_KERNEL_ABI_H
#define XELM_KERNEL_ABI_H

#ifdef __OPENCL_VERSION__
#define XELM_ABI_ULONG ulong
#define XELM_ABI_INT int
#else
#include <CL/cl_platform.h>
#define XELM_ABI_ULONG cl_ulong
#define XELM_ABI_INT cl_int
#endif

// One product of kernel_matvec_f32 (fused.cl): W [rows, row_bytes] raw GGUF bytes of ggml type `type`
// from byte `offset` of its buffer, y [rows] (+ bias [rows] when has_bias). rows = 0: unused.
typedef struct {
  XELM_ABI_ULONG offset;
  XELM_ABI_ULONG row_bytes;
  XELM_ABI_INT type;
  XELM_ABI_INT rows;
  XELM_ABI_INT has_bias;
  XELM_ABI_INT unused;  // keeps the size a multiple of 8 on both sides
} MatvecSegment;

#define MATVEC_SEGMENTS 3

// The products of one kernel_matvec_f32 launch (q|k|v, or one): segment s owns ceil(rows_s /
// MATMUL_ROWS) consecutive work-groups, segment 0 first.
typedef struct {
  MatvecSegment s[MATVEC_SEGMENTS];
} MatvecSegments;

// A KvBatch of n rows on the device (uploaded once per batch id, OpenClBackendImpl::kv_batch): one int
// array [KV_BATCH_INTS(n, n_pages)] of four parts, each starting at int KV_BATCH_<PART>(n):
//   positions [n]  row t's position in its sequence (KvBatch::positions)
//   slots     [n]  the cache row row t's k and v are stored in (KvBatch::slots)
//   tables    [n]  where row t's block table starts in `pages` (KvRun::table of its run)
//   pages     [n_pages]  the block tables (KvBatch::pages): position p of row t's sequence lives in cache
//                  row pages[tables[t] + p / page_size] * page_size + p % page_size
#define KV_BATCH_POSITIONS(n) 0
#define KV_BATCH_SLOTS(n) (n)
#define KV_BATCH_TABLES(n) (2 * (n))
#define KV_BATCH_PAGES(n) (3 * (n))
#define KV_BATCH_INTS(n, n_pages) (3 * (n) + (n_pages))

#endif  // XELM_KERNEL_ABI_H
