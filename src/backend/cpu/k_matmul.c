/* MatMul / BatchMatMul: BLAS for floats (sl_gemm_*, split across the pool), one product per
 * batch on the operands in place; a plain loop over output rows for integers. */
#include <string.h>

#include "backend/cpu/gemm.h"
#include "core/pool.h"
#include "graph/infer_nn.h"
#include "graph/op_impl.h"

/* Element offsets of batch bi's matrices in a and b. */
static void batch_offsets(const sl_matmul_dims *d, int64_t bi, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int i = d->batch_rank - 1; i >= 0; i--) {
        int64_t idx = bi % d->out_batch[i];
        bi /= d->out_batch[i];
        *oa += idx * d->a_stride[i];
        *ob += idx * d->b_stride[i];
    }
}

typedef struct int_job {
    const sl_matmul_dims *d;
    int ta, tb;
    const void *a, *b;
    void *c;
} int_job;

/* Output rows [begin, end) of all batches (row r = batch r / m, row r % m); unsigned arithmetic
 * so that overflow wraps instead of being undefined. */
#define DEFINE_INT_ROWS(name, T, U)                                                                \
    static void name(void *arg, int64_t begin, int64_t end)                                        \
    {                                                                                              \
        const int_job *j = arg;                                                                    \
        const sl_matmul_dims *d = j->d;                                                            \
        int64_t m = d->m, n = d->n, k = d->k;                                                      \
        for (int64_t r = begin; r < end; r++) {                                                    \
            int64_t oa, ob, i = r % m;                                                             \
            batch_offsets(d, r / m, &oa, &ob);                                                     \
            const T *a = (const T *)j->a + oa, *b = (const T *)j->b + ob;                          \
            T *c = (T *)j->c + r * n;                                                              \
            for (int64_t x = 0; x < n; x++) {                                                      \
                U acc = 0;                                                                         \
                for (int64_t y = 0; y < k; y++) {                                                  \
                    U av = (U)(j->ta ? a[y * m + i] : a[i * k + y]);                               \
                    U bv = (U)(j->tb ? b[x * k + y] : b[y * n + x]);                               \
                    acc += av * bv;                                                                \
                }                                                                                  \
                c[x] = (T)acc;                                                                     \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_INT_ROWS(rows_i32, int32_t, uint32_t)
DEFINE_INT_ROWS(rows_i64, int64_t, uint64_t)

sl_status sl_kernel_matmul(sl_op_call *call)
{
    sl_matmul_dims d;
    SL_TRY(sl_matmul_resolve(call, &d));
    const sl_value *a = call->in[0], *b = call->in[1];
    sl_value *c = call->out[0];
    int ta = call->p->matmul.transpose_a, tb = call->p->matmul.transpose_b;
    if (d.batch == 0 || d.m == 0 || d.n == 0) {
        return SL_OK;
    }
    if (d.k == 0) {
        /* an empty sum; BLAS rejects k == 0 leading dimensions */
        memset(c->data, 0, sl_value_bytes(c));
        return SL_OK;
    }
    size_t esz = sl_dtype_size(c->dtype);
    if (a->dtype == SL_DTYPE_INT32 || a->dtype == SL_DTYPE_INT64) {
        int_job j = {.d = &d, .ta = ta, .tb = tb, .a = a->data, .b = b->data, .c = c->data};
        int64_t work = d.n * d.k; /* per row */
        sl_pool_for(call->pool, d.batch * d.m, work >= 16384 ? 1 : 16384 / work,
                    esz == 4 ? rows_i32 : rows_i64, &j);
        return SL_OK;
    }
    for (int64_t bi = 0; bi < d.batch; bi++) {
        int64_t oa, ob, oc = bi * d.m * d.n;
        batch_offsets(&d, bi, &oa, &ob);
        if (esz == 4) {
            sl_gemm_f32(call->pool, ta, tb, d.m, d.n, d.k, (const float *)a->data + oa,
                        (const float *)b->data + ob, 0, (float *)c->data + oc);
        } else {
            sl_gemm_f64(call->pool, ta, tb, d.m, d.n, d.k, (const double *)a->data + oa,
                        (const double *)b->data + ob, 0, (double *)c->data + oc);
        }
    }
    return SL_OK;
}
