/* Shapes of the communication ops (MindSpore semantics; axis 0 for AllGather/ReduceScatter). */
#include "comm/comm.h"
#include "graph/op_impl.h"
#include "graph/shape_util.h"

static int reducible(sl_dtype t)
{
    switch (t) {
    case SL_DTYPE_FLOAT32:
    case SL_DTYPE_FLOAT64:
    case SL_DTYPE_FLOAT16:
    case SL_DTYPE_BFLOAT16:
    case SL_DTYPE_INT32:
    case SL_DTYPE_INT64:
    case SL_DTYPE_INT8:
    case SL_DTYPE_UINT8:
    case SL_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

sl_status sl_infer_collective(sl_op_call *call)
{
    const sl_params_coll *p = &call->p->coll;
    if (!call->comm) {
        return sl_op_error(call, SL_ERR_INTERNAL, "no communicator was set up");
    }
    int n = sl_comm_size(call->comm), me = sl_comm_rank(call->comm);
    sl_op op = call->node->op;
    if (op == SL_OP_RECEIVE) {
        SL_TRY(sl_op_check_arity(call, 0, 1, 1));
        sl_shape s = {.rank = (int32_t)p->n_shape};
        for (int i = 0; i < s.rank; i++) {
            s.dims[i] = p->shape[i];
        }
        int64_t numel;
        if (!sl_shape_numel_checked(&s, &numel) || sl_dtype_size((sl_dtype)p->dtype) == 0) {
            return sl_op_error(call, SL_ERR_FORMAT, "invalid shape or dtype attributes");
        }
        call->out[0]->dtype = (sl_dtype)p->dtype;
        call->out[0]->shape = s;
    } else if (op == SL_OP_BROADCAST) {
        SL_TRY(sl_op_check_arity(call, 1, call->n_in, call->n_in));
        for (int i = 0; i < call->n_in; i++) {
            SL_TRY(sl_op_check_input(call, i));
            call->out[i]->dtype = call->in[i]->dtype;
            call->out[i]->shape = call->in[i]->shape;
        }
    } else {
        SL_TRY(sl_op_check_arity(call, 1, 1, 1));
        SL_TRY(sl_op_check_input(call, 0));
        call->out[0]->dtype = call->in[0]->dtype;
        call->out[0]->shape = call->in[0]->shape;
    }
    sl_shape *o = &call->out[0]->shape;
    switch (op) {
    case SL_OP_ALL_REDUCE:
    case SL_OP_REDUCE_SCATTER:
        if (!reducible(call->in[0]->dtype) || p->op < 0 || p->op > SL_REDUCE_PROD) {
            return sl_op_error(call, SL_ERR_UNSUPPORTED, "cannot reduce %s",
                               sl_dtype_name(call->in[0]->dtype));
        }
        if (op == SL_OP_REDUCE_SCATTER) {
            if (o->rank < 1 || o->dims[0] % n != 0) {
                return sl_op_error(call, SL_ERR_SHAPE,
                                   "dim 0 of the input must divide by the %d ranks", n);
            }
            o->dims[0] /= n;
        }
        break;
    case SL_OP_ALL_GATHER:
        if (o->rank < 1) {
            return sl_op_error(call, SL_ERR_SHAPE, "the input needs at least one dim");
        }
        o->dims[0] *= n;
        break;
    case SL_OP_BROADCAST:
        if (p->root_rank < 0 || p->root_rank >= n) {
            return sl_op_error(call, SL_ERR_FORMAT, "root_rank %lld is not in [0, %d)",
                               (long long)p->root_rank, n);
        }
        break;
    case SL_OP_ALL_TO_ALL: {
        int sd, cd;
        if ((p->split_count != 0 && p->split_count != n) ||
            !sl_axis_normalize(p->split_dim, o->rank, &sd) ||
            !sl_axis_normalize(p->concat_dim, o->rank, &cd) || o->dims[sd] % n != 0) {
            return sl_op_error(call, SL_ERR_SHAPE,
                               "split_count %lld, split_dim %lld, concat_dim %lld do not fit "
                               "%d ranks and a rank-%d input",
                               (long long)p->split_count, (long long)p->split_dim,
                               (long long)p->concat_dim, n, o->rank);
        }
        o->dims[sd] /= n;
        o->dims[cd] *= n;
        /* packing and unpacking around the exchange */
        call->scratch_bytes = 2 * sl_value_bytes(call->in[0]);
        break;
    }
    case SL_OP_SEND:
    case SL_OP_RECEIVE:
        if (p->peer < 0 || p->peer >= n || p->peer == me) {
            return sl_op_error(call, SL_ERR_FORMAT, "peer rank %lld is not another rank of %d",
                               (long long)p->peer, n);
        }
        break;
    default: break;
    }
    return SL_OK;
}
