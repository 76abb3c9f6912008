/* Shape and dtype inference of the elementwise ops: unary, cast, binary, bias_add, scalar and
 * softmax. */
#include "graph/op_impl.h"
#include "graph/shape_util.h"

/* The dtypes that binary arithmetic and bias_add compute in. */
static int is_arith_dtype(sl_dtype t)
{
    return t == SL_DTYPE_FLOAT32 || t == SL_DTYPE_FLOAT64 || t == SL_DTYPE_INT32 ||
           t == SL_DTYPE_INT64;
}

static int is_scalar(const sl_value *v)
{
    return v->shape.rank == 0;
}

static sl_status bad_dtype(const sl_op_call *call, int i)
{
    return sl_op_error(call, SL_ERR_UNSUPPORTED, "input %d has unsupported dtype %s", i,
                       sl_dtype_name(call->in[i]->dtype));
}

sl_status sl_infer_unary(sl_op_call *call)
{
    sl_op op = call->node->op;
    SL_TRY(sl_op_check_arity(call, 1, op == SL_OP_CELU ? 2 : 1, 1));
    SL_TRY(sl_op_check_input(call, 0));
    const sl_value *x = call->in[0];
    int int_ok = op == SL_OP_RELU || op == SL_OP_NEG || op == SL_OP_ABS;
    int ok = x->dtype == SL_DTYPE_FLOAT32 || x->dtype == SL_DTYPE_FLOAT64 ||
             (int_ok && (x->dtype == SL_DTYPE_INT32 || x->dtype == SL_DTYPE_INT64));
    if (!ok) {
        return bad_dtype(call, 0);
    }
    if (op == SL_OP_CELU) {
        if (call->n_in > 1 && call->in[1]) {
            SL_TRY(sl_op_check_input(call, 1));
            if (sl_shape_numel(&call->in[1]->shape) != 1 ||
                !sl_dtype_is_numeric(call->in[1]->dtype)) {
                return sl_op_error(call, SL_ERR_SHAPE, "alpha (input 1) must be a numeric scalar");
            }
        } else if (call->p->unary.alpha == 0) {
            return sl_op_error(call, SL_ERR_INVALID_ARG, "alpha must not be 0");
        }
    }
    if (op == SL_OP_LOG && call->p->unary.base != -1 &&
        (call->p->unary.base <= 0 || call->p->unary.base == 1)) {
        return sl_op_error(call, SL_ERR_INVALID_ARG, "base %g is not -1 or a positive number "
                           "other than 1", call->p->unary.base);
    }
    call->out[0]->dtype = x->dtype;
    call->out[0]->shape = x->shape;
    return SL_OK;
}

static int is_cast_dtype(sl_dtype t)
{
    return sl_dtype_is_numeric(t);
}

sl_status sl_infer_cast(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 1, 2, 1));
    SL_TRY(sl_op_check_input(call, 0));
    int64_t to = call->p->cast.to;
    if (to == 0 && call->n_in > 1 && call->in[1]) {
        int64_t v[1];
        int n;
        SL_TRY(sl_op_read_ints(call, 1, "dst_type", v, 1, &n));
        to = n == 1 ? v[0] : 0;
    }
    if (!is_cast_dtype(call->in[0]->dtype)) {
        return bad_dtype(call, 0);
    }
    if (to < 0 || to > 1000 || !is_cast_dtype((sl_dtype)to)) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "cannot cast to dtype %lld (%s)",
                           (long long)to, to >= 0 && to <= 1000 ? sl_dtype_name((sl_dtype)to)
                                                                 : "unknown");
    }
    call->out[0]->dtype = (sl_dtype)to;
    call->out[0]->shape = call->in[0]->shape;
    return SL_OK;
}

/* Both the same arithmetic dtype, or a 0-d input of another numeric dtype that takes the other's
 * dtype (two 0-d inputs of different dtypes: the wider arithmetic one wins). */
static sl_status binary_dtype(const sl_op_call *call, const sl_value *a, const sl_value *b,
                              sl_dtype *out)
{
    static const sl_dtype order[] = {SL_DTYPE_FLOAT64, SL_DTYPE_FLOAT32, SL_DTYPE_INT64,
                                     SL_DTYPE_INT32};
    if (a->dtype == b->dtype) {
        if (!is_arith_dtype(a->dtype)) {
            return bad_dtype(call, 0);
        }
        *out = a->dtype;
        return SL_OK;
    }
    int a_ok = is_scalar(b) && sl_dtype_is_numeric(b->dtype) && is_arith_dtype(a->dtype);
    int b_ok = is_scalar(a) && sl_dtype_is_numeric(a->dtype) && is_arith_dtype(b->dtype);
    if (a_ok && b_ok) {
        for (int i = 0; i < 4; i++) {
            if (order[i] == a->dtype || order[i] == b->dtype) {
                *out = order[i];
                return SL_OK;
            }
        }
    }
    if (!a_ok && !b_ok) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "inputs have dtypes %s and %s",
                           sl_dtype_name(a->dtype), sl_dtype_name(b->dtype));
    }
    *out = a_ok ? a->dtype : b->dtype;
    return SL_OK;
}

sl_status sl_infer_binary(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 2, 2, 1));
    SL_TRY(sl_op_check_input(call, 0));
    SL_TRY(sl_op_check_input(call, 1));
    const sl_value *a = call->in[0], *b = call->in[1];
    sl_dtype t = SL_DTYPE_UNKNOWN;
    SL_TRY(binary_dtype(call, a, b, &t));
    sl_shape s;
    if (!sl_shape_broadcast(&a->shape, &b->shape, &s)) {
        char ba[160], bb[160];
        return sl_op_error(call, SL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                           sl_shape_str(&a->shape, ba, sizeof ba),
                           sl_shape_str(&b->shape, bb, sizeof bb));
    }
    call->out[0]->dtype = t;
    call->out[0]->shape = s;
    return SL_OK;
}

sl_status sl_infer_bias_add(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 2, 2, 1));
    SL_TRY(sl_op_check_input(call, 0));
    SL_TRY(sl_op_check_input(call, 1));
    const sl_value *x = call->in[0], *bias = call->in[1];
    if (!is_arith_dtype(x->dtype)) {
        return bad_dtype(call, 0);
    }
    if (bias->dtype != x->dtype) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "bias dtype %s differs from input dtype %s",
                           sl_dtype_name(bias->dtype), sl_dtype_name(x->dtype));
    }
    if (x->shape.rank < 2) {
        return sl_op_error(call, SL_ERR_SHAPE, "input must have rank >= 2, not %d",
                           x->shape.rank);
    }
    if (call->p->bias_add.format != 0 && call->p->bias_add.format != 1) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "unknown format %lld",
                           (long long)call->p->bias_add.format);
    }
    int axis = call->p->bias_add.format == 0 ? 1 : x->shape.rank - 1;
    if (bias->shape.rank != 1 || bias->shape.dims[0] != x->shape.dims[axis]) {
        char bb[160];
        return sl_op_error(call, SL_ERR_SHAPE, "bias shape %s does not match %lld channels",
                           sl_shape_str(&bias->shape, bb, sizeof bb),
                           (long long)x->shape.dims[axis]);
    }
    call->out[0]->dtype = x->dtype;
    call->out[0]->shape = x->shape;
    return SL_OK;
}

sl_status sl_infer_scalar(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 2, 2, 1));
    sl_dtype t = SL_DTYPE_INT64;
    for (int i = 0; i < 2; i++) {
        SL_TRY(sl_op_check_input(call, i));
        const sl_value *v = call->in[i];
        if (sl_shape_numel(&v->shape) != 1) {
            return sl_op_error(call, SL_ERR_SHAPE, "input %d must be a scalar", i);
        }
        if (!sl_dtype_is_numeric(v->dtype)) {
            return bad_dtype(call, i);
        }
        if (v->dtype == SL_DTYPE_FLOAT64 ||
            (sl_dtype_is_float(v->dtype) && t != SL_DTYPE_FLOAT64)) {
            t = v->dtype == SL_DTYPE_FLOAT64 ? SL_DTYPE_FLOAT64 : SL_DTYPE_FLOAT32;
        }
    }
    call->out[0]->dtype = call->node->op == SL_OP_SCALAR_DIV ? SL_DTYPE_FLOAT32 : t;
    call->out[0]->shape = (sl_shape){.rank = 0};
    return SL_OK;
}

sl_status sl_infer_softmax(sl_op_call *call)
{
    SL_TRY(sl_op_check_arity(call, 1, 2, 1));
    SL_TRY(sl_op_check_input(call, 0));
    const sl_value *x = call->in[0];
    if (x->dtype != SL_DTYPE_FLOAT32 && x->dtype != SL_DTYPE_FLOAT64) {
        return bad_dtype(call, 0);
    }
    const sl_params_axes *p = &call->p->axes;
    if (p->n_axis > 1) {
        return sl_op_error(call, SL_ERR_UNSUPPORTED, "only one axis is supported, got %lld",
                           (long long)p->n_axis);
    }
    int axis;
    if (!sl_axis_normalize(p->n_axis ? p->axis[0] : -1, x->shape.rank, &axis)) {
        return sl_op_error(call, SL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)(p->n_axis ? p->axis[0] : -1), x->shape.rank);
    }
    call->out[0]->dtype = x->dtype;
    call->out[0]->shape = x->shape;
    return SL_OK;
}
