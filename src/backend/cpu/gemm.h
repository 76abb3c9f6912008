/* Matrix products for the CPU kernels: row-major C[m, n] = op(A)[m, k] op(B)[k, n] (+ beta C),
 * split across the model's thread pool by columns of C (by rows when C is narrow), each slice
 * one single-threaded BLAS call (GEMV when the slice is a vector). One pool runs everything:
 * BLAS's own threads are turned off, so the two never compete for cores. */
#ifndef SL_BACKEND_CPU_GEMM_H
#define SL_BACKEND_CPU_GEMM_H

#include <stdint.h>

#include "core/pool.h"

/* Turns BLAS's own threading off (once per process). */
void sl_gemm_init(void);

/* Contiguous operands: lda = ta ? m : k, ldb = tb ? k : n, ldc = n. Sizes >= 1. */
void sl_gemm_f32(sl_pool *pool, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                 const float *b, float beta, float *c);
void sl_gemm_f64(sl_pool *pool, int ta, int tb, int64_t m, int64_t n, int64_t k, const double *a,
                 const double *b, double beta, double *c);

#endif
