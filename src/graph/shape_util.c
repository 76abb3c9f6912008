#include "graph/shape_util.h"

#include <stdarg.h>
#include <stdio.h>

sl_status sl_op_error(const sl_op_call *call, sl_status status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const sl_op_info *info = sl_op_get(call->node->op);
    return sl_error(status, "%s (%s): %s", call->node->name, info ? info->name : "?", msg);
}

sl_status sl_op_check_arity(const sl_op_call *call, int min_in, int max_in, int n_out)
{
    if (call->n_in < min_in || call->n_in > max_in) {
        return sl_op_error(call, SL_ERR_FORMAT, "expects %d to %d inputs, got %d", min_in, max_in,
                           call->n_in);
    }
    for (int i = 0; i < min_in; i++) {
        if (!call->in[i]) {
            return sl_op_error(call, SL_ERR_FORMAT, "input %d is missing", i);
        }
    }
    if (call->n_out != n_out) {
        return sl_op_error(call, SL_ERR_FORMAT, "expects %d outputs, got %d", n_out,
                           call->n_out);
    }
    return SL_OK;
}

sl_status sl_op_check_input(const sl_op_call *call, int i)
{
    const sl_value *v = i < call->n_in ? call->in[i] : NULL;
    if (!v) {
        return sl_op_error(call, SL_ERR_FORMAT, "input %d is missing", i);
    }
    int64_t n;
    if (v->shape.rank < 0 || v->shape.rank > SL_MAX_DIMS) {
        return sl_op_error(call, SL_ERR_SHAPE, "input %d has invalid rank %d", i, v->shape.rank);
    }
    if (!sl_shape_numel_checked(&v->shape, &n)) {
        char buf[160];
        return sl_op_error(call, SL_ERR_SHAPE, "input %d has an invalid or unknown shape %s", i,
                           sl_shape_str(&v->shape, buf, sizeof buf));
    }
    return SL_OK;
}

sl_status sl_op_read_ints(const sl_op_call *call, int i, const char *what, int64_t *vals,
                          int max_n, int *n)
{
    SL_TRY(sl_op_check_input(call, i));
    const sl_value *v = call->in[i];
    if (!sl_dtype_is_int(v->dtype)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "%s (input %d) must be an integer tensor, "
                           "not %s", what, i, sl_dtype_name(v->dtype));
    }
    if (!sl_value_known(call, v)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "%s (input %d) must be a constant", what, i);
    }
    int64_t count = sl_shape_numel(&v->shape);
    if (v->shape.rank > 1 || count > max_n) {
        return sl_op_error(call, SL_ERR_SHAPE, "%s (input %d) must be a scalar or a 1-D tensor "
                           "of at most %d values", what, i, max_n);
    }
    for (int64_t k = 0; k < count; k++) {
        vals[k] = sl_value_get_int(v, k);
    }
    *n = (int)count;
    return SL_OK;
}

int sl_shape_numel_checked(const sl_shape *s, int64_t *out)
{
    int64_t n = 1;
    int zero = 0;
    for (int i = 0; i < s->rank; i++) {
        int64_t d = s->dims[i];
        if (d < 0 || d > SL_MAX_NUMEL) {
            return 0;
        }
        if (d == 0) {
            zero = 1;
        } else if (n > SL_MAX_NUMEL / d) {
            return 0;
        } else {
            n *= d;
        }
    }
    *out = zero ? 0 : n;
    return 1;
}

int64_t sl_shape_prod(const sl_shape *s, int begin, int end)
{
    int64_t n = 1;
    for (int i = begin; i < end; i++) {
        n *= s->dims[i];
    }
    return n;
}

int sl_axis_normalize(int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank) {
        return 0;
    }
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 1;
}

int sl_dtype_is_float(sl_dtype t)
{
    return t == SL_DTYPE_FLOAT16 || t == SL_DTYPE_BFLOAT16 || t == SL_DTYPE_FLOAT32 ||
           t == SL_DTYPE_FLOAT64;
}

int sl_dtype_is_int(sl_dtype t)
{
    switch (t) {
    case SL_DTYPE_INT8:
    case SL_DTYPE_INT16:
    case SL_DTYPE_INT32:
    case SL_DTYPE_INT64:
    case SL_DTYPE_UINT8:
    case SL_DTYPE_UINT16:
    case SL_DTYPE_UINT32:
    case SL_DTYPE_UINT64: return 1;
    default: return 0;
    }
}

int sl_dtype_is_numeric(sl_dtype t)
{
    return t == SL_DTYPE_BOOL || sl_dtype_is_int(t) || sl_dtype_is_float(t);
}

int sl_shape_broadcast(const sl_shape *a, const sl_shape *b, sl_shape *out)
{
    int rank = a->rank > b->rank ? a->rank : b->rank;
    sl_shape r = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            return 0;
        }
        r.dims[i] = da == 1 ? db : da;
    }
    *out = r;
    return 1;
}

/* One sliced (not shrunk) dim of size d: clamps begin/end like numpy and counts the elements. */
static void slice_dim(int64_t b, int64_t e, int64_t s, int bmask, int emask, int64_t d,
                      int64_t *begin, int64_t *len)
{
    int64_t lo = s > 0 ? 0 : -1, hi = s > 0 ? d : d - 1;
    b = bmask ? (s > 0 ? lo : hi) : (b < 0 ? b + d : b);
    e = emask ? (s > 0 ? hi : lo) : (e < 0 ? e + d : e);
    b = b < lo ? lo : b > hi ? hi : b;
    e = e < lo ? lo : e > hi ? hi : e;
    int64_t diff = s > 0 ? e - b : b - e;
    int64_t mag = s > 0 ? s : (s == INT64_MIN ? INT64_MAX : -s);
    *begin = b;
    *len = diff > 0 ? (diff - 1) / mag + 1 : 0;
}

sl_status sl_strided_slice_plan(const sl_op_call *call, sl_slice_plan *plan)
{
    enum { MAX_SPEC = 2 * SL_MAX_DIMS };
    int64_t b[MAX_SPEC], e[MAX_SPEC], s[MAX_SPEC];
    int nb = 0, ne = 0, ns = 0;
    SL_TRY(sl_op_read_ints(call, 1, "begin", b, MAX_SPEC, &nb));
    SL_TRY(sl_op_read_ints(call, 2, "end", e, MAX_SPEC, &ne));
    SL_TRY(sl_op_read_ints(call, 3, "strides", s, MAX_SPEC, &ns));
    if (nb != ne || nb != ns) {
        return sl_op_error(call, SL_ERR_SHAPE, "begin, end and strides have %d, %d and %d values",
                           nb, ne, ns);
    }
    const sl_params_strided_slice *p = &call->p->strided_slice;
    const sl_shape *in = &call->in[0]->shape;
    int n = nb, rank = in->rank, ell = -1, consumed = 0;
    for (int i = 0; i < n; i++) {
        if (ell < 0 && (p->ellipsis_mask >> i & 1)) {
            ell = i;
        } else if (!(p->new_axis_mask >> i & 1)) {
            consumed++;
        }
    }
    if (consumed > rank) {
        return sl_op_error(call, SL_ERR_SHAPE, "slices %d dims of a rank-%d input", consumed,
                           rank);
    }
    plan->out.rank = 0;
    int d = 0;
    for (int i = 0; i <= n; i++) {
        /* the ellipsis, or the implicit one after the last entry, covers the dims left over */
        int full = i == ell ? rank - consumed : i == n ? rank - d : 0;
        for (int k = 0; k < full; k++, d++) {
            plan->begin[d] = 0;
            plan->step[d] = 1;
            plan->len[d] = in->dims[d];
            if (plan->out.rank >= SL_MAX_DIMS) {
                goto too_many;
            }
            plan->out.dims[plan->out.rank++] = in->dims[d];
        }
        if (i == ell || i == n) {
            continue;
        }
        if (p->new_axis_mask >> i & 1) {
            if (plan->out.rank >= SL_MAX_DIMS) {
                goto too_many;
            }
            plan->out.dims[plan->out.rank++] = 1;
            continue;
        }
        if (s[i] == 0) {
            return sl_op_error(call, SL_ERR_INVALID_ARG, "stride %d is 0", i);
        }
        int64_t dim = in->dims[d];
        if (p->shrink_axis_mask >> i & 1) {
            int64_t idx = b[i] < 0 ? b[i] + dim : b[i];
            if (idx < 0 || idx >= dim) {
                return sl_op_error(call, SL_ERR_SHAPE, "index %lld is out of range for dim %d "
                                   "of size %lld", (long long)b[i], d, (long long)dim);
            }
            plan->begin[d] = idx;
            plan->step[d] = 1;
            plan->len[d] = 1;
            d++;
            continue;
        }
        slice_dim(b[i], e[i], s[i], (int)(p->begin_mask >> i & 1), (int)(p->end_mask >> i & 1),
                  dim, &plan->begin[d], &plan->len[d]);
        /* a step only matters between two elements: with one or none it may be any value,
         * and the kernel's stride (step * the dim's stride) must not overflow */
        plan->step[d] = plan->len[d] > 1 ? s[i] : 1;
        if (plan->out.rank >= SL_MAX_DIMS) {
            goto too_many;
        }
        plan->out.dims[plan->out.rank++] = plan->len[d];
        d++;
    }
    return SL_OK;
too_many:
    return sl_op_error(call, SL_ERR_UNSUPPORTED, "the output has more than %d dims", SL_MAX_DIMS);
}
