// kernel_isa.h — the instruction set a file of cpu_fallback/avx2/ is being compiled for, as the
// namespace XELM_KERNEL_ISA (isa_avx2, isa_avxvnni or isa_avx512) that its kernels and the inline
// helpers of simd_util.h / kquant_decode.h live in. The product kernels (dot_kernels.cpp,
// gemm_kernels.cpp) are compiled once per ISA with different target flags (CMakeLists.txt); a
// namespace per compilation keeps the copies of each helper apart, so the linker can never merge an
// AVX-512 copy into the AVX2 path (one definition per ISA). Derived from the compiler's own target
// macros, so flags and namespace cannot disagree.
#pragma once

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define XELM_KERNEL_ISA isa_avx512
#define XELM_KERNEL_VNNI 1
#elif defined(__AVXVNNI__)
#define XELM_KERNEL_ISA isa_avxvnni
#define XELM_KERNEL_VNNI 1
#else
#define XELM_KERNEL_ISA isa_avx2
#define XELM_KERNEL_VNNI 0
#endif
