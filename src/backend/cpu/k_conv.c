/* Sliding-window layers on NCHW tensors: Conv2D (im2col + BLAS GEMM per image and group) and
 * MaxPool/AvgPool (direct, one N*C plane per work item). */
#include "backend/cpu/gemm.h"
#include <math.h>
#include <string.h>

#include "core/pool.h"
#include "graph/infer_nn.h"
#include "graph/op_impl.h"

/* Items per pool chunk so that a chunk does about 16K element operations, an item doing
 * a * b of them. */
static int64_t grain_for(int64_t a, int64_t b)
{
    int64_t work;
    if (__builtin_mul_overflow(a, b, &work) || work >= 16384) {
        return 1;
    }
    return 16384 / (work > 0 ? work : 1);
}

/* ---- Conv2D ---- */

typedef struct im2col_job {
    const sl_window2d *w;
    const float *x; /* [Cg, H, W] one image's channels of one group */
    int64_t h, wd;
    float *col; /* [Cg * kh * kw, OH * OW] */
} im2col_job;

/* Rows [begin, end) of the column matrix; row r = (c * kh + i) * kw + j holds input pixel
 * (oh * sh - pt + i * dh, ow * sw - pl + j * dw) of channel c for every output position. */
static void im2col_rows(void *arg, int64_t begin, int64_t end)
{
    const im2col_job *jb = arg;
    const sl_window2d *w = jb->w;
    for (int64_t r = begin; r < end; r++) {
        int64_t j = r % w->kw, i = (r / w->kw) % w->kh, c = r / (w->kw * w->kh);
        const float *plane = jb->x + c * jb->h * jb->wd;
        float *dst = jb->col + r * w->oh * w->ow;
        /* output columns [lo, hi) read inside the row: iw = ow * sw + off in [0, wd) */
        int64_t off = j * w->dw - w->pl;
        int64_t lo = off >= 0 ? 0 : (-off + w->sw - 1) / w->sw;
        int64_t hi = off >= jb->wd ? 0 : (jb->wd - 1 - off) / w->sw + 1;
        hi = hi < w->ow ? hi : w->ow;
        lo = lo < hi ? lo : hi;
        for (int64_t oh = 0; oh < w->oh; oh++, dst += w->ow) {
            int64_t ih = oh * w->sh - w->pt + i * w->dh;
            if (ih < 0 || ih >= jb->h) {
                memset(dst, 0, (size_t)w->ow * sizeof *dst);
                continue;
            }
            const float *src = plane + ih * jb->wd + off;
            memset(dst, 0, (size_t)lo * sizeof *dst);
            if (w->sw == 1) {
                memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
            } else {
                for (int64_t ow = lo; ow < hi; ow++) {
                    dst[ow] = src[ow * w->sw];
                }
            }
            memset(dst + hi, 0, (size_t)(w->ow - hi) * sizeof *dst);
        }
    }
}

sl_status sl_kernel_conv2d(sl_op_call *call)
{
    sl_window2d w;
    SL_TRY(sl_window2d_conv(call, &w));
    const sl_value *xv = call->in[0], *wv = call->in[1];
    const sl_value *bv = call->n_in > 2 ? call->in[2] : NULL;
    const sl_shape *xs = &xv->shape;
    int64_t n = xs->dims[0], c = xs->dims[1], h = xs->dims[2], wd = xs->dims[3];
    int64_t o = wv->shape.dims[0], group = call->p->conv2d.group;
    int64_t cg = c / group, og = o / group, ohw = w.oh * w.ow;
    int64_t kdim = cg * w.kh * w.kw; /* GEMM inner dimension */
    int direct = sl_window2d_is_pointwise(&w);
    if (og == 0 || ohw == 0) {
        return SL_OK;
    }
    const float *x = xv->data, *wt = wv->data, *bias = bv ? bv->data : NULL;
    float *y = call->out[0]->data;
    for (int64_t ni = 0; ni < n; ni++) {
        for (int64_t g = 0; g < group; g++) {
            const float *xg = x + (ni * c + g * cg) * h * wd;
            float *yg = y + (ni * o + g * og) * ohw;
            const float *col = xg; /* a 1x1 stride-1 unpadded conv reads the input as is */
            if (!direct) {
                im2col_job jb = {.w = &w, .x = xg, .h = h, .wd = wd, .col = call->scratch};
                sl_pool_for(call->pool, kdim, grain_for(ohw, 1), im2col_rows, &jb);
                col = call->scratch;
            }
            /* the bias seeds the output, which GEMM then accumulates into (beta = 1) */
            for (int64_t oc = 0; bias && oc < og; oc++) {
                float bval = bias[g * og + oc];
                for (int64_t p = 0; p < ohw; p++) {
                    yg[oc * ohw + p] = bval;
                }
            }
            sl_gemm_f32(call->pool, 0, 0, og, ohw, kdim, wt + g * og * kdim, col,
                        bias ? 1.0f : 0.0f, yg);
        }
    }
    return SL_OK;
}

/* ---- MaxPool / AvgPool ---- */

typedef struct pool_job {
    const sl_window2d *w;
    int64_t h, wd;
    const void *x; /* [N * C, H, W] */
    void *y;       /* [N * C, OH, OW] */
} pool_job;

/* Planes [begin, end): the max (NaN wins), or the mean over the window's non-padded elements.
 * AVG is a constant so each variant compiles to its own tight loop. */
#define DEFINE_POOL_PLANES(name, T, AVG)                                                           \
    static void name(void *arg, int64_t begin, int64_t end)                                        \
    {                                                                                              \
        const pool_job *jb = arg;                                                                  \
        const sl_window2d *w = jb->w;                                                              \
        const int64_t h = jb->h, wd = jb->wd;                                                      \
        for (int64_t pl = begin; pl < end; pl++) {                                                 \
            const T *x = (const T *)jb->x + pl * h * wd;                                           \
            T *y = (T *)jb->y + pl * w->oh * w->ow;                                                \
            for (int64_t oh = 0; oh < w->oh; oh++) {                                               \
                int64_t h0 = oh * w->sh - w->pt, h1 = h0 + w->kh;                                  \
                h0 = h0 < 0 ? 0 : h0;                                                              \
                h1 = h1 > h ? h : h1;                                                              \
                for (int64_t ow = 0; ow < w->ow; ow++) {                                           \
                    int64_t w0 = ow * w->sw - w->pl, w1 = w0 + w->kw;                              \
                    w0 = w0 < 0 ? 0 : w0;                                                          \
                    w1 = w1 > wd ? wd : w1;                                                        \
                    T acc = AVG ? 0 : -INFINITY;                                                   \
                    for (int64_t ih = h0; ih < h1; ih++) {                                         \
                        const T *row = x + ih * wd;                                                \
                        for (int64_t iw = w0; iw < w1; iw++) {                                     \
                            T v = row[iw];                                                         \
                            acc = AVG ? acc + v : (v > acc || v != v ? v : acc);                   \
                        }                                                                          \
                    }                                                                              \
                    y[oh * w->ow + ow] = AVG ? acc / (T)((h1 - h0) * (w1 - w0)) : acc;             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_POOL_PLANES(max_pool_f32, float, 0)
DEFINE_POOL_PLANES(max_pool_f64, double, 0)
DEFINE_POOL_PLANES(avg_pool_f32, float, 1)
DEFINE_POOL_PLANES(avg_pool_f64, double, 1)

sl_status sl_kernel_pool2d(sl_op_call *call)
{
    sl_window2d w;
    SL_TRY(sl_window2d_pool(call, &w));
    const sl_value *xv = call->in[0];
    const sl_shape *xs = &xv->shape;
    if (sl_shape_numel(&call->out[0]->shape) == 0) {
        return SL_OK;
    }
    pool_job jb = {.w = &w, .h = xs->dims[2], .wd = xs->dims[3], .x = xv->data,
                   .y = call->out[0]->data};
    int f32 = xv->dtype == SL_DTYPE_FLOAT32;
    sl_pool_fn fn = call->node->op == SL_OP_AVG_POOL ? (f32 ? avg_pool_f32 : avg_pool_f64)
                                                      : (f32 ? max_pool_f32 : max_pool_f64);
    sl_pool_for(call->pool, xs->dims[0] * xs->dims[1], grain_for(w.oh * w.ow, w.kh * w.kw), fn,
                &jb);
    return SL_OK;
}
