// kernel_abi.h — kernel arguments that are passed by value as structs, defined once for both sides:
// the host's C++ includes this file (host/fused_ops.cpp), and program_source (host/program_cache.cpp)
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

#endif  // XELM_KERNEL_ABI_H
