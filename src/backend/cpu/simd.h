/* Portable 8-float vectors for the hand-blocked CPU loops (GCC/Clang vector extensions), and the
 * attribute that compiles a function twice, for AVX+FMA and for the baseline ISA, picking one at
 * load time. Files using them are compiled with -ffp-contract=fast (see CMakeLists.txt): GCC in
 * ISO C mode does not fuse a * b + c into an FMA otherwise. (A `#pragma GCC optimize` for it
 * miscompiled together with target_clones in GCC 12.) */
#ifndef SL_BACKEND_CPU_SIMD_H
#define SL_BACKEND_CPU_SIMD_H

#include <string.h>

typedef float sl_v8f __attribute__((vector_size(32)));
/* the same, for unaligned loads and stores through pointers (vectors alias their elements) */
typedef float sl_v8f_u __attribute__((vector_size(32), aligned(4)));

#define SL_V8_LEN 8
#define SL_V8_LOAD(p) (*(const sl_v8f_u *)(p))
#define SL_V8_STORE(p, v) (*(sl_v8f_u *)(p) = (v))

#if defined(__x86_64__)
#define SL_SIMD_CLONES __attribute__((target_clones("fma", "default")))
#else
#define SL_SIMD_CLONES
#endif

#endif
