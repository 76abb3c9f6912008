/* Shape and dtype inference of the data-movement ops: reshape (Reshape, ExpandDims, Squeeze,
 * Flatten), transpose, concat, split, strided_slice, gather, shape, seq_get_item, non_zero. */
#include <limits.h>

#include "graph/op_impl.h"
#include "graph/shape_util.h"

/* Checks input i is present, has a valid shape and a dtype with a known element size. */
static sl_status check_data_input(const sl_op_call *call, int i)
{
    SL_TRY(sl_op_check_input(call, i));
    if (sl_dtype_size(call->in[i]->dtype) == 0) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "input %d has unsupported dtype %s", i,
                           sl_dtype_name(call->in[i]->dtype));
    }
    return SL_OK;
}

static sl_status check_out_shape(const sl_op_call *call, const sl_shape *s)
{
    int64_t n;
    if (s->rank > SL_MAX_DIMS || !sl_shape_numel_checked(s, &n)) {
        return sl_op_error(call, SL_ERR_SHAPE, "the output shape is invalid or too large");
    }
    return SL_OK;
}

/* The axes of ExpandDims/Squeeze/Flatten: the attribute, else a constant input 1. */
static sl_status get_axes(const sl_op_call *call, int64_t *axes, int *n)
{
    const sl_params_axes *p = &call->p->axes;
    if (p->n_axis > 0) {
        *n = (int)(p->n_axis < SL_MAX_DIMS ? p->n_axis : SL_MAX_DIMS);
        for (int i = 0; i < *n; i++) {
            axes[i] = p->axis[i];
        }
        return SL_OK;
    }
    *n = 0;
    if (call->n_in > 1 && call->in[1]) {
        return sl_op_read_ints(call, 1, "axis", axes, SL_MAX_DIMS, n);
    }
    return SL_OK;
}

static sl_status infer_reshape_target(const sl_op_call *call, const sl_shape *in, sl_shape *out)
{
    int64_t t[SL_MAX_DIMS];
    int n;
    SL_TRY(sl_op_read_ints(call, 1, "shape", t, SL_MAX_DIMS, &n));
    int infer_at = -1;
    int64_t known = 1, numel = sl_shape_numel(in);
    out->rank = n;
    for (int i = 0; i < n; i++) {
        if (t[i] == -1 && infer_at < 0) {
            infer_at = i;
            continue;
        }
        if (t[i] < 0 || t[i] > SL_MAX_NUMEL || (t[i] && known > SL_MAX_NUMEL / t[i])) {
            return sl_op_error(call, SL_ERR_SHAPE, "invalid target dim %lld at %d",
                               (long long)t[i], i);
        }
        out->dims[i] = t[i];
        known *= t[i];
    }
    if (infer_at >= 0) {
        if (known == 0 || numel % known != 0) {
            return sl_op_error(call, SL_ERR_SHAPE, "cannot infer the -1 dim: %lld elements "
                               "into parts of %lld", (long long)numel, (long long)known);
        }
        out->dims[infer_at] = numel / known;
        known = numel;
    }
    if (known != numel) {
        char bi[160], bo[160];
        return sl_op_error(call, SL_ERR_SHAPE, "cannot reshape %s into %s",
                           sl_shape_str(in, bi, sizeof bi), sl_shape_str(out, bo, sizeof bo));
    }
    return SL_OK;
}

static sl_status infer_expand_dims(const sl_op_call *call, const sl_shape *in, sl_shape *out)
{
    int64_t axes[SL_MAX_DIMS];
    int n, axis;
    SL_TRY(get_axes(call, axes, &n));
    if (n != 1 || !sl_axis_normalize(axes[0], in->rank + 1, &axis)) {
        return sl_op_error(call, SL_ERR_SHAPE, "needs one axis in [%d, %d]", -in->rank - 1,
                           in->rank);
    }
    if (in->rank >= SL_MAX_DIMS) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "the output has more than %d dims",
                           SL_MAX_DIMS);
    }
    out->rank = in->rank + 1;
    for (int i = 0, k = 0; i < out->rank; i++) {
        out->dims[i] = i == axis ? 1 : in->dims[k++];
    }
    return SL_OK;
}

static sl_status infer_squeeze(const sl_op_call *call, const sl_shape *in, sl_shape *out)
{
    int64_t axes[SL_MAX_DIMS];
    int n, drop[SL_MAX_DIMS] = {0};
    SL_TRY(get_axes(call, axes, &n));
    for (int i = 0; i < n; i++) {
        int a;
        if (!sl_axis_normalize(axes[i], in->rank, &a)) {
            return sl_op_error(call, SL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                               (long long)axes[i], in->rank);
        }
        if (in->dims[a] != 1) {
            return sl_op_error(call, SL_ERR_SHAPE, "cannot squeeze dim %d of size %lld", a,
                               (long long)in->dims[a]);
        }
        drop[a] = 1;
    }
    out->rank = 0;
    for (int i = 0; i < in->rank; i++) {
        if (!(n ? drop[i] : in->dims[i] == 1)) {
            out->dims[out->rank++] = in->dims[i];
        }
    }
    return SL_OK;
}

/* [prod(dims[:axis]), prod(dims[axis:])], axis 1 by default. */
static sl_status infer_flatten(const sl_op_call *call, const sl_shape *in, sl_shape *out)
{
    int64_t axes[SL_MAX_DIMS];
    int n;
    SL_TRY(get_axes(call, axes, &n));
    int64_t a = n ? axes[0] : 1;
    if (a < -in->rank || a > in->rank) {
        return sl_op_error(call, SL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)a, in->rank);
    }
    int axis = (int)(a < 0 ? a + in->rank : a);
    out->rank = 2;
    out->dims[0] = sl_shape_prod(in, 0, axis);
    out->dims[1] = sl_shape_prod(in, axis, in->rank);
    return SL_OK;
}

sl_status sl_infer_reshape(sl_op_call *call)
{
    sl_op op = call->node->op;
    SL_TRY(sl_op_check_arity(call, op == SL_OP_RESHAPE ? 2 : 1, 2, 1));
    SL_TRY(check_data_input(call, 0));
    const sl_shape *in = &call->in[0]->shape;
    sl_shape out = {0};
    switch (op) {
    case SL_OP_RESHAPE: SL_TRY(infer_reshape_target(call, in, &out)); break;
    case SL_OP_EXPAND_DIMS: SL_TRY(infer_expand_dims(call, in, &out)); break;
    case SL_OP_SQUEEZE: SL_TRY(infer_squeeze(call, in, &out)); break;
    default: SL_TRY(infer_flatten(call, in, &out)); break;
    }
    call->out[0]->dtype = call->in[0]->dtype;
    call->out[0]->shape = out;
    return SL_OK;
}

sl_status sl_infer_transpose(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 2, 2, 1));
    SL_TRY(check_data_input(call, 0));
    const sl_shape *in = &call->in[0]->shape;
    int64_t perm[SL_MAX_DIMS];
    int n, seen[SL_MAX_DIMS] = {0};
    SL_TRY(sl_op_read_ints(call, 1, "perm", perm, SL_MAX_DIMS, &n));
    if (n != in->rank) {
        return sl_op_error(call, SL_ERR_SHAPE, "perm has %d entries for a rank-%d input", n,
                           in->rank);
    }
    sl_shape out = {.rank = n};
    for (int i = 0; i < n; i++) {
        int a;
        if (!sl_axis_normalize(perm[i], n, &a) || seen[a]) {
            return sl_op_error(call, SL_ERR_SHAPE, "perm is not a permutation of %d axes", n);
        }
        seen[a] = 1;
        out.dims[i] = in->dims[a];
    }
    call->out[0]->dtype = call->in[0]->dtype;
    call->out[0]->shape = out;
    return SL_OK;
}

sl_status sl_infer_concat(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 1, INT_MAX, 1));
    SL_TRY(check_data_input(call, 0));
    const sl_value *first = call->in[0];
    int axis;
    int64_t a = call->p->axes.n_axis ? call->p->axes.axis[0] : 0;
    if (!sl_axis_normalize(a, first->shape.rank, &axis)) {
        return sl_op_error(call, SL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)a, first->shape.rank);
    }
    sl_shape out = first->shape;
    for (int i = 1; i < call->n_in; i++) {
        SL_TRY(check_data_input(call, i));
        const sl_value *v = call->in[i];
        if (v->dtype != first->dtype) {
            return sl_op_error(call, SL_ERR_UNSUPPORTED, "input %d has dtype %s, input 0 %s", i,
                               sl_dtype_name(v->dtype), sl_dtype_name(first->dtype));
        }
        int same = v->shape.rank == out.rank;
        for (int d = 0; same && d < out.rank; d++) {
            same = d == axis || v->shape.dims[d] == out.dims[d];
        }
        if (!same) {
            char b0[160], bi[160];
            return sl_op_error(call, SL_ERR_SHAPE, "input %d shape %s does not match input 0 "
                               "shape %s off axis %d", i, sl_shape_str(&v->shape, bi, sizeof bi),
                               sl_shape_str(&first->shape, b0, sizeof b0), axis);
        }
        if (out.dims[axis] > SL_MAX_NUMEL - v->shape.dims[axis]) {
            return sl_op_error(call, SL_ERR_SHAPE, "the output is too large");
        }
        out.dims[axis] += v->shape.dims[axis];
    }
    SL_TRY(check_out_shape(call, &out));
    call->out[0]->dtype = first->dtype;
    call->out[0]->shape = out;
    return SL_OK;
}

sl_status sl_infer_split(sl_op_call *call)
{
    const sl_params_split *p = &call->p->split;
    if (p->output_num < 1 || p->output_num != call->n_out) {
        return sl_op_error(call, SL_ERR_FORMAT, "output_num %lld does not match %d outputs",
                           (long long)p->output_num, call->n_out);
    }
    SL_TRY(sl_op_check_arity(call, 1, 3, call->n_out));
    SL_TRY(check_data_input(call, 0));
    const sl_value *x = call->in[0];
    int axis;
    if (!sl_axis_normalize(p->axis, x->shape.rank, &axis)) {
        return sl_op_error(call, SL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)p->axis, x->shape.rank);
    }
    if (x->shape.dims[axis] % p->output_num != 0) {
        return sl_op_error(call, SL_ERR_SHAPE, "dim %d of size %lld does not split into %lld "
                           "equal parts", axis, (long long)x->shape.dims[axis],
                           (long long)p->output_num);
    }
    for (int i = 0; i < call->n_out; i++) {
        call->out[i]->dtype = x->dtype;
        call->out[i]->shape = x->shape;
        call->out[i]->shape.dims[axis] = x->shape.dims[axis] / p->output_num;
    }
    return SL_OK;
}

sl_status sl_infer_strided_slice(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 4, 9, 1));
    SL_TRY(check_data_input(call, 0));
    sl_slice_plan plan;
    SL_TRY(sl_strided_slice_plan(call, &plan));
    call->out[0]->dtype = call->in[0]->dtype;
    call->out[0]->shape = plan.out;
    return SL_OK;
}

sl_status sl_infer_gather(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 3, 4, 1));
    SL_TRY(check_data_input(call, 0));
    SL_TRY(sl_op_check_input(call, 1));
    const sl_shape *ps = &call->in[0]->shape, *is = &call->in[1]->shape;
    sl_dtype it = call->in[1]->dtype;
    if (it != SL_DTYPE_INT32 && it != SL_DTYPE_INT64) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "indices must be int32 or int64, not %s",
                           sl_dtype_name(it));
    }
    if (call->p->gather.batch_dims != 0) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "batch_dims %lld is not supported",
                           (long long)call->p->gather.batch_dims);
    }
    int64_t a;
    int n, axis;
    SL_TRY(sl_op_read_ints(call, 2, "axis", &a, 1, &n));
    if (n != 1 || !sl_axis_normalize(a, ps->rank, &axis)) {
        return sl_op_error(call, SL_ERR_SHAPE, "axis must be one value in [%d, %d)", -ps->rank,
                           ps->rank);
    }
    if (ps->rank - 1 + is->rank > SL_MAX_DIMS) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "the output has more than %d dims",
                           SL_MAX_DIMS);
    }
    sl_shape out = {.rank = ps->rank - 1 + is->rank};
    int k = 0;
    for (int i = 0; i < axis; i++) {
        out.dims[k++] = ps->dims[i];
    }
    for (int i = 0; i < is->rank; i++) {
        out.dims[k++] = is->dims[i];
    }
    for (int i = axis + 1; i < ps->rank; i++) {
        out.dims[k++] = ps->dims[i];
    }
    SL_TRY(check_out_shape(call, &out));
    call->out[0]->dtype = call->in[0]->dtype;
    call->out[0]->shape = out;
    return SL_OK;
}

sl_status sl_infer_shape(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 1, 1, 1));
    SL_TRY(sl_op_check_input(call, 0));
    call->out[0]->dtype = SL_DTYPE_INT64;
    call->out[0]->shape = (sl_shape){.rank = 1, .dims = {call->in[0]->shape.rank}};
    return SL_OK;
}

sl_status sl_infer_seq_get_item(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 2, 2, 1));
    SL_TRY(check_data_input(call, 0));
    const sl_value *seq = call->in[0];
    if (seq->shape.rank != 1) {
        return sl_op_error(call, SL_ERR_SHAPE, "the sequence must be 1-D, not rank %d",
                           seq->shape.rank);
    }
    int64_t idx;
    int n;
    SL_TRY(sl_op_read_ints(call, 1, "index", &idx, 1, &n));
    if (n != 1 || call->in[1]->shape.rank != 0 ||
        idx < -seq->shape.dims[0] || idx >= seq->shape.dims[0]) {
        return sl_op_error(call, SL_ERR_SHAPE, "index must be a scalar in [%lld, %lld)",
                           (long long)-seq->shape.dims[0], (long long)seq->shape.dims[0]);
    }
    call->out[0]->dtype = seq->dtype;
    call->out[0]->shape = (sl_shape){.rank = 0};
    return SL_OK;
}

sl_status sl_infer_make_seq(sl_op_call *call)
{
    sl_dtype t = SL_DTYPE_INT64;
    for (int i = 0; i < call->n_in; i++) {
        SL_TRY(sl_op_check_input(call, i));
        const sl_value *v = call->in[i];
        if (v->shape.rank != 0 || !sl_dtype_is_numeric(v->dtype)) {
            return sl_op_error(call, SL_ERR_UNSUPPORTED,
                               "item %d must be a number (a 0-d tensor), not rank %d %s", i,
                               v->shape.rank, sl_dtype_name(v->dtype));
        }
        if (v->dtype == SL_DTYPE_FLOAT64 || (sl_dtype_is_float(v->dtype) && t == SL_DTYPE_INT64)) {
            t = v->dtype == SL_DTYPE_FLOAT64 ? SL_DTYPE_FLOAT64 : SL_DTYPE_FLOAT32;
        }
    }
    call->out[0]->dtype = t;
    call->out[0]->shape = (sl_shape){.rank = 1, .dims = {call->n_in}};
    return SL_OK;
}

sl_status sl_infer_non_zero(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 1, 1, 1));
    SL_TRY(sl_op_check_input(call, 0));
    const sl_value *x = call->in[0];
    if (!sl_dtype_is_numeric(x->dtype)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "input 0 has unsupported dtype %s",
                           sl_dtype_name(x->dtype));
    }
    /* planned at the bound (every element non-zero); the kernel sets the real count */
    call->out[0]->dtype = SL_DTYPE_INT64;
    call->out[0]->shape = (sl_shape){.rank = 2,
                                     .dims = {sl_shape_numel(&x->shape), x->shape.rank}};
    call->out[0]->dynamic = 1;
    return SL_OK;
}
