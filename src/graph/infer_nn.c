/* Shape inference of the neural-network layers: MatMul/BatchMatMul, Conv2D, MaxPool/AvgPool and
 * UpsampleNearest3D. Models are untrusted: every size is checked for overflow and range. */
#include "graph/infer_nn.h"

#include <math.h>

#include "graph/op_impl.h"
#include "graph/shape_util.h"

static sl_status need_rank(const sl_op_call *call, int i, int rank)
{
    if (call->in[i]->shape.rank != rank) {
        return sl_op_error(call, SL_ERR_SHAPE, "input %d must have rank %d, got %d", i, rank,
                           (int)call->in[i]->shape.rank);
    }
    return SL_OK;
}

static sl_status need_dtype(const sl_op_call *call, int i, sl_dtype a, sl_dtype b)
{
    sl_dtype t = call->in[i]->dtype;
    if (t != a && t != b) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "input %d has unsupported dtype %s", i,
                           sl_dtype_name(t));
    }
    return SL_OK;
}

/* Checks that a shape's element count and byte size fit (dims must be >= 0 or -1, unknown). */
static sl_status check_size(const sl_op_call *call, const sl_shape *s, sl_dtype dtype)
{
    int64_t n = sl_dtype_size(dtype) ? (int64_t)sl_dtype_size(dtype) : 1;
    if (s->rank < 0 || s->rank > SL_MAX_DIMS) {
        return sl_op_error(call, SL_ERR_SHAPE, "rank %d is out of range", (int)s->rank);
    }
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < -1) {
            return sl_op_error(call, SL_ERR_SHAPE, "negative dimension %lld",
                               (long long)s->dims[i]);
        }
        if (s->dims[i] >= 0 && __builtin_mul_overflow(n, s->dims[i], &n)) {
            char buf[160];
            return sl_op_error(call, SL_ERR_SHAPE, "the size of shape %s overflows",
                               sl_shape_str(s, buf, sizeof buf));
        }
    }
    return SL_OK;
}

static sl_status set_output(sl_op_call *call, sl_dtype dtype, const sl_shape *s)
{
    SL_TRY(check_size(call, s, dtype));
    call->out[0]->dtype = dtype;
    call->out[0]->shape = *s;
    return SL_OK;
}

/* Checks the input count, that the first min inputs are present, and every input's size. */
static sl_status need_inputs(const sl_op_call *call, int min, int max)
{
    SL_TRY(sl_op_check_arity(call, min, max, 1));
    for (int i = 0; i < call->n_in; i++) {
        if (call->in[i]) {
            SL_TRY(check_size(call, &call->in[i]->shape, call->in[i]->dtype));
        }
    }
    return SL_OK;
}

/* ---- sliding windows ---- */

/* Reads an (h, w) pair given as 1, 2 or 4 (N, C, H, W) entries; none means def. */
static sl_status hw_pair(const sl_op_call *call, const char *what, const int64_t *v, int64_t n,
                         int64_t def, int64_t out[2])
{
    switch (n) {
    case 0: out[0] = out[1] = def; break;
    case 1: out[0] = out[1] = v[0]; break;
    case 2: out[0] = v[0], out[1] = v[1]; break;
    case 4: out[0] = v[2], out[1] = v[3]; break;
    default:
        return sl_op_error(call, SL_ERR_FORMAT, "%s has %lld entries, expected 2 or 4", what,
                           (long long)n);
    }
    if (out[0] < 1 || out[1] < 1) {
        return sl_op_error(call, SL_ERR_FORMAT, "%s (%lld, %lld) must be >= 1", what,
                           (long long)out[0], (long long)out[1]);
    }
    return SL_OK;
}

/* Reads pad_list (top, bottom, left, right), given as 0, 1 or 4 entries. */
static sl_status pad_list(const sl_op_call *call, const int64_t *v, int64_t n, int64_t out[4])
{
    for (int i = 0; i < 4; i++) {
        out[i] = n == 0 ? 0 : n == 1 ? v[0] : v[i];
    }
    if (n != 0 && n != 1 && n != 4) {
        return sl_op_error(call, SL_ERR_FORMAT, "pad_list has %lld entries, expected 4",
                           (long long)n);
    }
    for (int i = 0; i < 4; i++) {
        if (out[i] < 0) {
            return sl_op_error(call, SL_ERR_FORMAT, "negative padding %lld", (long long)out[i]);
        }
    }
    return SL_OK;
}

/* One axis of a window: the output extent and the padding actually used. in may be -1. */
static sl_status window_axis(const sl_op_call *call, const char *axis, int64_t in, int64_t k,
                             int64_t s, int64_t d, int64_t mode, int64_t *p0, int64_t *p1,
                             int64_t *out)
{
    int64_t eff; /* the dilated kernel extent */
    if (k < 1) {
        return sl_op_error(call, SL_ERR_SHAPE, "kernel %s %lld must be >= 1", axis, (long long)k);
    }
    if (__builtin_mul_overflow(d, k - 1, &eff) || __builtin_add_overflow(eff, 1, &eff)) {
        return sl_op_error(call, SL_ERR_SHAPE, "dilated kernel %s overflows", axis);
    }
    if (mode == SL_PAD_SAME) {
        *p0 = *p1 = 0;
        *out = in; /* -1 (unknown) and 0 (empty) stay as they are */
        if (in > 0) {
            /* TensorFlow's rule: ceil(in / s) outputs, the odd padding at the end */
            *out = in / s + (in % s != 0);
            int64_t total;
            if (__builtin_add_overflow((*out - 1) * s, eff, &total)) {
                return sl_op_error(call, SL_ERR_SHAPE, "padding along %s overflows", axis);
            }
            total = total > in ? total - in : 0;
            *p0 = total / 2;
            *p1 = total - *p0;
        }
        return SL_OK;
    }
    if (mode == SL_PAD_VALID) {
        *p0 = *p1 = 0;
    } else if (mode != SL_PAD_PAD) {
        return sl_op_error(call, SL_ERR_FORMAT, "unknown pad_mode %lld", (long long)mode);
    }
    if (in < 0) {
        *out = -1;
        return SL_OK;
    }
    int64_t padded;
    if (__builtin_add_overflow(in, *p0, &padded) || __builtin_add_overflow(padded, *p1, &padded)) {
        return sl_op_error(call, SL_ERR_SHAPE, "padded %s overflows", axis);
    }
    if (padded < eff) {
        return sl_op_error(call, SL_ERR_SHAPE, "kernel %s %lld (dilated) exceeds the %s %lld", axis,
                           (long long)eff, mode == SL_PAD_PAD ? "padded input" : "input",
                           (long long)padded);
    }
    *out = (padded - eff) / s + 1;
    return SL_OK;
}

/* Fills w's strides, padding and output extent; w->kh/kw/dh/dw are set by the caller. */
static sl_status window_resolve(const sl_op_call *call, sl_window2d *w, const int64_t *stride,
                                int64_t n_stride, const int64_t *pads, int64_t n_pads, int64_t mode,
                                int64_t format)
{
    const sl_shape *x = &call->in[0]->shape;
    int64_t s[2] = {1, 1}, p[4] = {0};
    if (format != 0) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "only the NCHW format is supported");
    }
    SL_TRY(hw_pair(call, "stride", stride, n_stride, 1, s));
    SL_TRY(pad_list(call, pads, n_pads, p));
    w->sh = s[0];
    w->sw = s[1];
    w->pt = p[0], w->pb = p[1], w->pl = p[2], w->pr = p[3];
    SL_TRY(
        window_axis(call, "height", x->dims[2], w->kh, w->sh, w->dh, mode, &w->pt, &w->pb, &w->oh));
    return window_axis(call, "width", x->dims[3], w->kw, w->sw, w->dw, mode, &w->pl, &w->pr,
                       &w->ow);
}

sl_status sl_window2d_conv(const sl_op_call *call, sl_window2d *w)
{
    const sl_params_conv2d *p = &call->p->conv2d;
    const sl_shape *ws = &call->in[1]->shape;
    int64_t d[2] = {1, 1};
    SL_TRY(hw_pair(call, "dilation", p->dilation, p->n_dilation, 1, d));
    w->kh = ws->dims[2];
    w->kw = ws->dims[3];
    w->dh = d[0];
    w->dw = d[1];
    return window_resolve(call, w, p->stride, p->n_stride, p->pad_list, p->n_pad_list, p->pad_mode,
                          p->format);
}

sl_status sl_window2d_pool(const sl_op_call *call, sl_window2d *w)
{
    const sl_params_pool2d *p = &call->p->pool2d;
    int64_t k[2] = {1, 1};
    SL_TRY(hw_pair(call, "kernel_size", p->kernel_size, p->n_kernel_size, 1, k));
    w->kh = k[0];
    w->kw = k[1];
    w->dh = w->dw = 1;
    SL_TRY(window_resolve(call, w, p->strides, p->n_strides, p->pad_list, p->n_pad_list,
                          p->pad_mode, p->format));
    /* a window lying wholly in the padding would have nothing to pool */
    if (w->pt >= w->kh || w->pb >= w->kh || w->pl >= w->kw || w->pr >= w->kw) {
        return sl_op_error(call, SL_ERR_SHAPE, "padding must be smaller than the kernel");
    }
    return SL_OK;
}

/* ---- Conv2D ---- */

sl_status sl_infer_conv2d(sl_op_call *call)
{
    SL_TRY(need_inputs(call, 2, 3));
    SL_TRY(need_rank(call, 0, 4));
    SL_TRY(need_rank(call, 1, 4));
    for (int i = 0; i < call->n_in; i++) {
        if (call->in[i]) {
            SL_TRY(need_dtype(call, i, SL_DTYPE_FLOAT32, SL_DTYPE_FLOAT32));
        }
    }
    const sl_params_conv2d *p = &call->p->conv2d;
    const sl_shape *x = &call->in[0]->shape, *wt = &call->in[1]->shape;
    for (int i = 0; i < 4; i++) {
        if (wt->dims[i] < 0) {
            return sl_op_error(call, SL_ERR_UNSUPPORTED, "the weight's shape must be known");
        }
    }
    int64_t o = wt->dims[0], cg = wt->dims[1], group = p->group;
    if (group < 1) {
        return sl_op_error(call, SL_ERR_FORMAT, "group %lld must be >= 1", (long long)group);
    }
    if (cg < 1 || o % group != 0) {
        return sl_op_error(call, SL_ERR_SHAPE, "weight [%lld,%lld,...] does not fit group %lld",
                           (long long)o, (long long)cg, (long long)group);
    }
    int64_t c;
    if (__builtin_mul_overflow(cg, group, &c) || (x->dims[1] >= 0 && x->dims[1] != c)) {
        return sl_op_error(call, SL_ERR_SHAPE,
                           "input has %lld channels, the weight expects %lld x %lld",
                           (long long)x->dims[1], (long long)cg, (long long)group);
    }
    if (p->out_channel > 0 && p->out_channel != o) {
        return sl_op_error(call, SL_ERR_SHAPE, "out_channel %lld differs from the weight's %lld",
                           (long long)p->out_channel, (long long)o);
    }
    const sl_value *bias = call->n_in > 2 ? call->in[2] : NULL;
    if (bias && (bias->shape.rank != 1 || bias->shape.dims[0] != o)) {
        return sl_op_error(call, SL_ERR_SHAPE, "bias must have shape [%lld]", (long long)o);
    }
    sl_window2d w;
    SL_TRY(sl_window2d_conv(call, &w));
    sl_shape out = {.rank = 4, .dims = {x->dims[0], o, w.oh, w.ow}};
    SL_TRY(set_output(call, SL_DTYPE_FLOAT32, &out));

    /* GEMM per image and group: [O/group, C/group*kh*kw] x [C/group*kh*kw, OH*OW], the right
     * operand built by im2col in the scratch (not needed by a plain 1x1 conv) */
    call->scratch_bytes = 0;
    int64_t kdim, ohw;
    if (__builtin_mul_overflow(cg, w.kh * w.kw, &kdim) || kdim > INT32_MAX || o > INT32_MAX) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "the weight exceeds BLAS's int range");
    }
    if (w.oh < 0 || w.ow < 0) {
        return SL_OK;
    }
    if (__builtin_mul_overflow(w.oh, w.ow, &ohw) || ohw > INT32_MAX) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "the output plane exceeds BLAS's int range");
    }
    int64_t bytes;
    if (__builtin_mul_overflow(kdim * (int64_t)sizeof(float), ohw, &bytes)) {
        return sl_op_error(call, SL_ERR_SHAPE, "im2col buffer size overflows");
    }
    call->scratch_bytes = sl_window2d_is_pointwise(&w) ? 0 : (size_t)bytes;
    return SL_OK;
}

/* ---- MaxPool / AvgPool ---- */

sl_status sl_infer_pool2d(sl_op_call *call)
{
    SL_TRY(need_inputs(call, 1, 1));
    SL_TRY(need_rank(call, 0, 4));
    SL_TRY(need_dtype(call, 0, SL_DTYPE_FLOAT32, SL_DTYPE_FLOAT64));
    sl_window2d w;
    SL_TRY(sl_window2d_pool(call, &w));
    const sl_shape *x = &call->in[0]->shape;
    sl_shape out = {.rank = 4, .dims = {x->dims[0], x->dims[1], w.oh, w.ow}};
    call->scratch_bytes = 0;
    return set_output(call, call->in[0]->dtype, &out);
}

/* ---- MatMul / BatchMatMul ---- */

sl_status sl_matmul_resolve(const sl_op_call *call, sl_matmul_dims *d)
{
    const sl_shape *a = &call->in[0]->shape, *b = &call->in[1]->shape;
    int ta = call->p->matmul.transpose_a, tb = call->p->matmul.transpose_b;
    int ra = a->rank, rb = b->rank;
    if (ra < 2 || rb < 2) {
        return sl_op_error(call, SL_ERR_SHAPE, "operands need rank >= 2, got %d and %d", ra, rb);
    }
    d->m = a->dims[ra - 2 + ta];
    int64_t ka = a->dims[ra - 1 - ta];
    int64_t kb = b->dims[rb - 2 + tb];
    d->n = b->dims[rb - 1 - tb];
    if (ka >= 0 && kb >= 0 && ka != kb) {
        return sl_op_error(call, SL_ERR_SHAPE, "inner dimensions differ: %lld and %lld",
                           (long long)ka, (long long)kb);
    }
    d->k = ka >= 0 ? ka : kb;
    d->batch_rank = (ra > rb ? ra : rb) - 2;
    d->batch = 1;
    /* numpy broadcasting of the batch dims, aligned on the right; strides from the innermost */
    int64_t sa = a->dims[ra - 2] * a->dims[ra - 1], sb = b->dims[rb - 2] * b->dims[rb - 1];
    for (int i = d->batch_rank - 1; i >= 0; i--) {
        int ia = i - (d->batch_rank - (ra - 2)), ib = i - (d->batch_rank - (rb - 2));
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da >= 0 && db >= 0 && da != db && da != 1 && db != 1) {
            return sl_op_error(call, SL_ERR_SHAPE,
                               "batch dimensions %lld and %lld do not broadcast", (long long)da,
                               (long long)db);
        }
        int64_t o = da == 1 ? db : db == 1 ? da : da >= 0 ? da : db;
        d->out_batch[i] = o;
        d->a_stride[i] = da == 1 ? 0 : sa;
        d->b_stride[i] = db == 1 ? 0 : sb;
        /* meaningful only when every dim is known (the kernel); the inputs' sizes were checked */
        sa *= da;
        sb *= db;
        if (__builtin_mul_overflow(d->batch, o, &d->batch)) {
            return sl_op_error(call, SL_ERR_SHAPE, "batch size overflows");
        }
    }
    return SL_OK;
}

sl_status sl_infer_matmul(sl_op_call *call)
{
    /* inputs 2 and 3 may carry transpose_a/b as constants (decoded into the params) */
    SL_TRY(need_inputs(call, 2, 4));
    sl_dtype t = call->in[0]->dtype;
    if ((t != SL_DTYPE_FLOAT32 && t != SL_DTYPE_FLOAT64 && t != SL_DTYPE_INT32 &&
         t != SL_DTYPE_INT64) ||
        call->in[1]->dtype != t) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "unsupported dtypes %s and %s",
                           sl_dtype_name(t), sl_dtype_name(call->in[1]->dtype));
    }
    sl_matmul_dims d;
    SL_TRY(sl_matmul_resolve(call, &d));
    if ((t == SL_DTYPE_FLOAT32 || t == SL_DTYPE_FLOAT64) &&
        (d.m > INT32_MAX || d.n > INT32_MAX || d.k > INT32_MAX)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "a matrix dimension exceeds BLAS's int range");
    }
    sl_shape out = {.rank = d.batch_rank + 2};
    for (int i = 0; i < d.batch_rank; i++) {
        out.dims[i] = d.out_batch[i];
    }
    out.dims[d.batch_rank] = d.m;
    out.dims[d.batch_rank + 1] = d.n;
    call->scratch_bytes = 0;
    return set_output(call, call->in[0]->dtype, &out);
}

/* ---- UpsampleNearest3D ---- */

sl_status sl_infer_upsample_nearest3d(sl_op_call *call)
{
    SL_TRY(need_inputs(call, 1, 3));
    SL_TRY(need_rank(call, 0, 5));
    SL_TRY(need_dtype(call, 0, SL_DTYPE_FLOAT32, SL_DTYPE_FLOAT64));
    const sl_value *size = call->n_in > 1 ? call->in[1] : NULL;
    const sl_value *scales = call->n_in > 2 ? call->in[2] : NULL;
    if (!size == !scales) {
        return sl_op_error(call, SL_ERR_FORMAT,
                           "exactly one of output_size and scales must be given");
    }
    const sl_value *v = size ? size : scales;
    const char *what = size ? "output_size" : "scales";
    if (!sl_value_known(call, v)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "%s must be a constant", what);
    }
    if (v->shape.rank != 1 || v->shape.dims[0] != 3) {
        return sl_op_error(call, SL_ERR_SHAPE, "%s must hold 3 values", what);
    }
    if (size ? v->dtype != SL_DTYPE_INT32 && v->dtype != SL_DTYPE_INT64
             : v->dtype != SL_DTYPE_FLOAT32 && v->dtype != SL_DTYPE_FLOAT64) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "%s has unsupported dtype %s", what,
                           sl_dtype_name(v->dtype));
    }
    const sl_shape *x = &call->in[0]->shape;
    sl_shape out = *x;
    int64_t idx_bytes = 0; /* the kernel's source index tables: one entry per output index */
    for (int i = 0; i < 3; i++) {
        int64_t in = x->dims[2 + i], o;
        if (size) {
            o = sl_value_get_int(v, i);
            if (o < 1) {
                return sl_op_error(call, SL_ERR_SHAPE, "output_size %lld must be >= 1",
                                   (long long)o);
            }
        } else {
            double s = sl_value_get_float(v, i);
            if (!(s > 0.0) || !isfinite(s)) {
                return sl_op_error(call, SL_ERR_SHAPE, "scale %g must be > 0", s);
            }
            double f = floor((double)in * s);
            if (f >= 0x1p62) {
                return sl_op_error(call, SL_ERR_SHAPE, "scaled size overflows");
            }
            o = in < 0 ? -1 : (int64_t)f;
        }
        if (in == 0 && o > 0) {
            return sl_op_error(call, SL_ERR_SHAPE, "cannot upsample an empty axis to %lld",
                               (long long)o);
        }
        out.dims[2 + i] = o;
        if (__builtin_add_overflow(idx_bytes, o > 0 ? o : 0, &idx_bytes)) {
            return sl_op_error(call, SL_ERR_SHAPE, "output size overflows");
        }
    }
    SL_TRY(set_output(call, call->in[0]->dtype, &out));
    if (__builtin_mul_overflow(idx_bytes, (int64_t)sizeof(int64_t), &idx_bytes)) {
        return sl_op_error(call, SL_ERR_SHAPE, "output size overflows");
    }
    call->scratch_bytes = (size_t)idx_bytes;
    return SL_OK;
}
