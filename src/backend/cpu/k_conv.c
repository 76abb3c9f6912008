/* Sliding-window layers on NCHW tensors: Conv2D (direct for stride 1 and few input channels,
 * else im2col + BLAS GEMM per image and group) and MaxPool/AvgPool (direct, one N*C plane per work
 * item). */
#include <math.h>
#include <string.h>

#include "backend/cpu/gemm.h"
#include "backend/cpu/simd.h"


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

/* ---- Conv2D, direct: stride 1, small C/group * kh * kw ----
 * With stride 1, output (r, c) reads input (r + i * dh, c + j * dw), i.e. flat input index
 * q + i * dh * W + j * dw for q = r * W + c. So over the flat index q every tap is a shifted
 * contiguous run of the input: computing q in [0, (OH - 1) * W + OW) (the columns c >= OW of each
 * row are computed and dropped) turns the convolution into axpys over contiguous memory, blocked
 * as DIRECT_OCB output channels x DIRECT_NV vectors of q in registers. No im2col copy. */

#define DIRECT_OCB 4
#define DIRECT_NV 3
/* Above this GEMM inner dimension (C/group * kh * kw) im2col + GEMM wins. */
#define DIRECT_MAX_KDIM 512

typedef struct direct_job {
    const float *x;    /* [cg, h, wd]: padding already applied */
    const float *wt;   /* [og, cg, kh, kw] */
    const float *bias; /* [og] or NULL */
    float *y;          /* [og, oh, ow] */
    int64_t cg, h, wd, og, oh, ow, kh, kw, dh, dw;
    int64_t len; /* flat positions q computed: (oh - 1) * wd + ow */
} direct_job;

/* Stores channel o's vectors of flat positions from (row r, column c) on, dropping the columns
 * >= ow: a vector inside a row's kept columns in one store, the others lane by lane. */
static inline __attribute__((always_inline)) void direct_store(const direct_job *j, int64_t o,
                                                               int64_t r, int64_t c,
                                                               const sl_v8f *vals, int nv)
{
    float *y = j->y + o * j->oh * j->ow;
    for (int v = 0; v < nv; v++) {
        if (c + SL_V8_LEN <= j->ow) {
            SL_V8_STORE(y + r * j->ow + c, vals[v]);
            c += SL_V8_LEN;
            continue;
        }
        for (int e = 0; e < SL_V8_LEN; e++, c++) {
            if (c == j->wd) {
                c = 0;
                r++;
            }
            if (c < j->ow) {
                y[r * j->ow + c] = vals[v][e];
            }
        }
    }
}

/* Channels [o0, o0 + ocb) at flat positions [q, q + nv * 8); ocb and nv are constants at every
 * call, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void direct_tile(const direct_job *j, int64_t o0,
                                                              int ocb, int64_t q, int nv)
{
    const int64_t kdim = j->cg * j->kh * j->kw;
    sl_v8f acc[DIRECT_OCB][DIRECT_NV];
    for (int o = 0; o < ocb; o++) {
        float b = j->bias ? j->bias[o0 + o] : 0.0f;
        for (int v = 0; v < nv; v++) {
            acc[o][v] = (sl_v8f){0} + b;
        }
    }
    const float *w = j->wt + o0 * kdim;
    for (int64_t c = 0; c < j->cg; c++) {
        for (int64_t i = 0; i < j->kh; i++) {
            const float *xr = j->x + (c * j->h + i * j->dh) * j->wd + q;
            for (int64_t t = 0; t < j->kw; t++, w++) {
                sl_v8f xv[DIRECT_NV];
                for (int v = 0; v < nv; v++) {
                    xv[v] = SL_V8_LOAD(xr + t * j->dw + v * SL_V8_LEN);
                }
                for (int o = 0; o < ocb; o++) {
                    float wv = w[o * kdim];
                    for (int v = 0; v < nv; v++) {
                        acc[o][v] += wv * xv[v];
                    }
                }
            }
        }
    }
    for (int o = 0; o < ocb; o++) {
        direct_store(j, o0 + o, q / j->wd, q % j->wd, acc[o], nv);
    }
}

/* One channel at the flat positions [q, len), fewer than a vector. */
static void direct_tail(const direct_job *j, int64_t o, int64_t q)
{
    const int64_t kdim = j->cg * j->kh * j->kw;
    for (int64_t p = q; p < j->len; p++) {
        const float *w = j->wt + o * kdim;
        float acc = j->bias ? j->bias[o] : 0.0f;
        for (int64_t c = 0; c < j->cg; c++) {
            for (int64_t i = 0; i < j->kh; i++) {
                const float *xr = j->x + (c * j->h + i * j->dh) * j->wd + p;
                for (int64_t t = 0; t < j->kw; t++) {
                    acc += *w++ * xr[t * j->dw];
                }
            }
        }
        if (p % j->wd < j->ow) {
            j->y[(o * j->oh + p / j->wd) * j->ow + p % j->wd] = acc;
        }
    }
}

#define DIRECT_TILES(ocb)                                                                          \
    do {                                                                                           \
        int64_t v = begin;                                                                         \
        for (; v + DIRECT_NV <= end; v += DIRECT_NV) {                                             \
            direct_tile(j, o0, ocb, v * SL_V8_LEN, DIRECT_NV);                                     \
        }                                                                                          \
        for (; v < end; v++) {                                                                     \
            direct_tile(j, o0, ocb, v * SL_V8_LEN, 1);                                             \
        }                                                                                          \
    } while (0)

/* Vectors [begin, end) of the flat positions (vector v = q in [8 v, 8 v + 8)), every channel;
 * a vector that would run past len is done by direct_tail. */
SL_SIMD_CLONES static void direct_vectors(void *arg, int64_t begin, int64_t end)
{
    const direct_job *j = arg;
    int64_t full = j->len / SL_V8_LEN, tail_end = end;
    end = end < full ? end : full;
    for (int64_t o0 = 0; o0 < j->og; o0 += DIRECT_OCB) {
        switch (j->og - o0 < DIRECT_OCB ? j->og - o0 : DIRECT_OCB) {
        case 1:
            DIRECT_TILES(1);
            break;
        case 2:
            DIRECT_TILES(2);
            break;
        case 3:
            DIRECT_TILES(3);
            break;
        default:
            DIRECT_TILES(DIRECT_OCB);
            break;
        }
    }
    if (tail_end > full) {
        for (int64_t o = 0; o < j->og; o++) {
            direct_tail(j, o, full * SL_V8_LEN);
        }
    }
}

/* Copies x [cg, h, wd] into pad [cg, ph, pw] at row pt, column pl, zeros around it. */
static void pad_planes(const float *x, int64_t cg, int64_t h, int64_t wd, int64_t pt, int64_t pl,
                       int64_t ph, int64_t pw, float *pad)
{
    for (int64_t c = 0; c < cg; c++) {
        for (int64_t r = 0; r < ph; r++) {
            float *dst = pad + (c * ph + r) * pw;
            int64_t ih = r - pt, lo = pl < pw ? pl : pw, hi = pl + wd < pw ? pl + wd : pw;
            if (ih < 0 || ih >= h) {
                memset(dst, 0, (size_t)pw * sizeof *dst);
                continue;
            }
            memset(dst, 0, (size_t)lo * sizeof *dst);
            memcpy(dst + lo, x + (c * h + ih) * wd + (lo - pl), (size_t)(hi - lo) * sizeof *dst);
            memset(dst + hi, 0, (size_t)(pw - hi) * sizeof *dst);
        }
    }
}

/* Runs one image and group directly if the window suits it (stride 1, small kdim, and the
 * padded input fits the im2col scratch); returns 0 to leave it to im2col + GEMM. */
static int conv_direct(sl_op_call *call, const sl_window2d *w, const float *x, int64_t cg,
                       int64_t h, int64_t wd, const float *wt, const float *bias, int64_t og,
                       float *y)
{
    int64_t kdim = cg * w->kh * w->kw;
    if (w->sh != 1 || w->sw != 1 || kdim > DIRECT_MAX_KDIM || sl_window2d_is_pointwise(w)) {
        return 0;
    }
    direct_job j = {.x = x, .wt = wt, .bias = bias, .y = y, .cg = cg, .h = h, .wd = wd,
                    .og = og, .oh = w->oh, .ow = w->ow, .kh = w->kh, .kw = w->kw, .dh = w->dh,
                    .dw = w->dw};
    if (w->pt | w->pb | w->pl | w->pr) {
        /* the extent the outputs read; infer sized the scratch for im2col: kdim * oh * ow */
        j.h = w->oh + (w->kh - 1) * w->dh;
        j.wd = w->ow + (w->kw - 1) * w->dw;
        if (cg * j.h * j.wd > kdim * w->oh * w->ow) {
            return 0;
        }
        pad_planes(x, cg, h, wd, w->pt, w->pl, j.h, j.wd, call->scratch);
        j.x = call->scratch;
    }
    j.len = (w->oh - 1) * j.wd + w->ow;
    int64_t vectors = (j.len + SL_V8_LEN - 1) / SL_V8_LEN;
    /* about 64K multiply-adds per chunk, in whole register tiles */
    int64_t grain = (1 << 16) / (SL_V8_LEN * og * kdim) + 1;
    grain = (grain + DIRECT_NV - 1) / DIRECT_NV * DIRECT_NV;
    sl_pool_for(call->pool, vectors, grain, direct_vectors, &j);
    return 1;
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
            const float *bg = bias ? bias + g * og : NULL;
            if (conv_direct(call, &w, xg, cg, h, wd, wt + g * og * kdim, bg, og, yg)) {
                continue;
            }
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

/* One step of a max: NaN wins (a later NaN replaces acc). */
#define MAX_STEP(acc, v) ((v) > (acc) || (v) != (v) ? (v) : (acc))

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
                            acc = AVG ? acc + v : MAX_STEP(acc, v);                                \
                        }                                                                          \
                    }                                                                              \
                    y[oh * w->ow + ow] = AVG ? acc / (T)((h1 - h0) * (w1 - w0)) : acc;             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
/* The common 2x2 stride-2 unpadded max pool, every window inside the input. */
#define DEFINE_MAX_POOL_2X2(name, T)                                                               \
    static void name(void *arg, int64_t begin, int64_t end)                                        \
    {                                                                                              \
        const pool_job *jb = arg;                                                                  \
        const int64_t wd = jb->wd, oh = jb->w->oh, ow = jb->w->ow;                                 \
        for (int64_t pl = begin; pl < end; pl++) {                                                 \
            const T *x = (const T *)jb->x + pl * jb->h * wd;                                       \
            T *y = (T *)jb->y + pl * oh * ow;                                                      \
            for (int64_t r = 0; r < oh; r++, y += ow) {                                            \
                const T *r0 = x + 2 * r * wd, *r1 = r0 + wd;                                       \
                for (int64_t c = 0; c < ow; c++) {                                                 \
                    T acc = r0[2 * c];                                                             \
                    acc = MAX_STEP(acc, r0[2 * c + 1]);                                            \
                    acc = MAX_STEP(acc, r1[2 * c]);                                                \
                    y[c] = MAX_STEP(acc, r1[2 * c + 1]);                                           \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_MAX_POOL_2X2(max_pool_2x2_f32, float)
DEFINE_MAX_POOL_2X2(max_pool_2x2_f64, double)

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
    if (call->node->op == SL_OP_MAX_POOL && w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2 &&
        w.pt == 0 && w.pl == 0 && 2 * w.oh <= jb.h && 2 * w.ow <= jb.wd) {
        fn = f32 ? max_pool_2x2_f32 : max_pool_2x2_f64;
    }
    sl_pool_for(call->pool, xs->dims[0] * xs->dims[1], grain_for(w.oh * w.ow, w.kh * w.kw), fn,
                &jb);
    return SL_OK;
}
