#include "backend/cpu/gemm.h"

#include <cblas.h>
#include <pthread.h>

/* Below this many multiply-adds per slice, splitting costs more than it saves. */
#define MIN_SLICE_WORK (1 << 16)
/* Column slices are multiples of this (the width of BLAS micro-kernels). */
#define COL_ALIGN 16
/* A thread's columns go to BLAS this many at a time: OpenBLAS's sgemm with a transposed B of
 * 4096 x 4096 runs ~10% faster in 256-column calls than in one call (measured on an AMD EPYC,
 * AVX2, batch 64); GEMV gains nothing from it. */
#define COL_SLICE 256

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

void sl_gemm_init(void)
{
    pthread_once(&blas_once, blas_single_thread);
}

/* One BLAS call on a slice with explicit leading dimensions. A row vector a (m == 1) has
 * stride 1, or lda when transposed; a column vector b (n == 1) stride ldb, or 1 transposed. */
#define DEFINE_BLAS_CALL(name, T, gemm, gemv)                                                    \
    static void name(int ta, int tb, int64_t m, int64_t n, int64_t k, const T *a, int64_t lda,  \
                     const T *b, int64_t ldb, T beta, T *c, int64_t ldc)                         \
    {                                                                                            \
        if (m == 1) {                                                                            \
            gemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? n : k),               \
                 (int)(tb ? k : n), 1, b, (int)ldb, a, (int)(ta ? lda : 1), beta, c, 1);          \
        } else if (n == 1) {                                                                     \
            gemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (int)(ta ? k : m),               \
                 (int)(ta ? m : k), 1, a, (int)lda, b, (int)(tb ? 1 : ldb), beta, c, (int)ldc);   \
        } else {                                                                                 \
            gemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,  \
                 (int)m, (int)n, (int)k, 1, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);        \
        }                                                                                        \
    }
DEFINE_BLAS_CALL(blas_f32, float, cblas_sgemm, cblas_sgemv)
DEFINE_BLAS_CALL(blas_f64, double, cblas_dgemm, cblas_dgemv)

typedef struct gemm_job {
    int ta, tb, by_cols, f64;
    int64_t m, n, k;
    const void *a, *b;
    void *c;
    double beta;
} gemm_job;

static void gemm_call(const gemm_job *j, int64_t begin, int64_t end)
{
    int64_t lda = j->ta ? j->m : j->k, ldb = j->tb ? j->k : j->n, ldc = j->n;
    int64_t m = j->m, n = j->n, oa = 0, ob = 0, oc;
    if (j->by_cols) {
        n = end - begin;
        ob = j->tb ? begin * ldb : begin;
        oc = begin;
    } else {
        m = end - begin;
        oa = j->ta ? begin : begin * lda;
        oc = begin * ldc;
    }
    if (j->f64) {
        blas_f64(j->ta, j->tb, m, n, j->k, (const double *)j->a + oa, lda,
                 (const double *)j->b + ob, ldb, j->beta, (double *)j->c + oc, ldc);
    } else {
        blas_f32(j->ta, j->tb, m, n, j->k, (const float *)j->a + oa, lda,
                 (const float *)j->b + ob, ldb, (float)j->beta, (float *)j->c + oc, ldc);
    }
}

static void gemm_slice(void *arg, int64_t begin, int64_t end)
{
    const gemm_job *j = arg;
    int64_t step = j->by_cols && j->m > 1 ? COL_SLICE : end - begin;
    for (int64_t s = begin; s < end; s += step) {
        gemm_call(j, s, end - s < step ? end : s + step);
    }
}

static void gemm_run(sl_pool *pool, gemm_job *j)
{
    int threads = sl_pool_size(pool);
    /* work per column and per row of C */
    int64_t col_work = j->m * j->k, row_work = j->n * j->k;
    if (threads > 1 && j->n >= 2 * COL_ALIGN) {
        int64_t grain = (MIN_SLICE_WORK + col_work - 1) / col_work;
        int64_t per_thread = (j->n + threads - 1) / threads;
        grain = grain > per_thread ? grain : per_thread;
        grain = (grain + COL_ALIGN - 1) / COL_ALIGN * COL_ALIGN;
        j->by_cols = 1;
        sl_pool_for(pool, j->n, grain, gemm_slice, j);
    } else if (threads > 1 && j->m >= 2) {
        j->by_cols = 0;
        sl_pool_for(pool, j->m, (MIN_SLICE_WORK + row_work - 1) / row_work, gemm_slice, j);
    } else {
        j->by_cols = 1;
        gemm_slice(j, 0, j->n);
    }
}

void sl_gemm_f32(sl_pool *pool, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                 const float *b, float beta, float *c)
{
    gemm_job j = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .a = a, .b = b, .c = c,
                  .beta = beta};
    gemm_run(pool, &j);
}

void sl_gemm_f64(sl_pool *pool, int ta, int tb, int64_t m, int64_t n, int64_t k, const double *a,
                 const double *b, double beta, double *c)
{
    gemm_job j = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .a = a, .b = b, .c = c,
                  .beta = beta, .f64 = 1};
    gemm_run(pool, &j);
}
