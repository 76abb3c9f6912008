/* Communication ops: each becomes one collective on the node's communicator. */
#include <string.h>

#include "comm/comm.h"
#include "graph/op_impl.h"
#include "graph/shape_util.h"

/* Copies `chunks` slices along an axis: src viewed as [outer, chunks * len, inner] -> dst as
 * [chunks][outer, len, inner] (pack), or back (unpack). */
static void reslice(uint8_t *dst, const uint8_t *src, int64_t outer, int64_t chunks, int64_t len,
                    size_t inner_bytes, int pack)
{
    size_t row = (size_t)len * inner_bytes;
    for (int64_t c = 0; c < chunks; c++) {
        for (int64_t o = 0; o < outer; o++) {
            size_t whole = ((size_t)o * (size_t)chunks + (size_t)c) * row;
            size_t piece = ((size_t)c * (size_t)outer + (size_t)o) * row;
            memcpy(dst + (pack ? piece : whole), src + (pack ? whole : piece), row);
        }
    }
}

static sl_status all_to_all(sl_op_call *call, int n)
{
    const sl_params_coll *p = &call->p->coll;
    const sl_value *x = call->in[0];
    sl_value *y = call->out[0];
    size_t esz = sl_dtype_size(x->dtype), bytes = sl_value_bytes(x);
    int sd, cd;
    sl_axis_normalize(p->split_dim, x->shape.rank, &sd);
    sl_axis_normalize(p->concat_dim, y->shape.rank, &cd);
    uint8_t *packed = call->scratch, *received = packed + bytes;
    /* chunk j = slice j of the split axis, made contiguous */
    int64_t s_outer = sl_shape_prod(&x->shape, 0, sd);
    size_t s_inner = (size_t)sl_shape_prod(&x->shape, sd + 1, x->shape.rank) * esz;
    reslice(packed, x->data, s_outer, n, x->shape.dims[sd] / n, s_inner, 1);
    sl_coll_desc d = {.kind = SL_COLL_ALLTOALL, .dtype = x->dtype,
                      .count = bytes / esz / (size_t)n, .model = call->comm_model};
    SL_TRY(sl_comm_run(call->comm, &d, packed, received));
    /* chunk m (from rank m) = slice m of the concat axis */
    int64_t c_outer = sl_shape_prod(&y->shape, 0, cd);
    size_t c_inner = (size_t)sl_shape_prod(&y->shape, cd + 1, y->shape.rank) * esz;
    reslice(y->data, received, c_outer, n, y->shape.dims[cd] / n, c_inner, 0);
    return SL_OK;
}

sl_status sl_kernel_collective(sl_op_call *call)
{
    const sl_params_coll *p = &call->p->coll;
    int n = sl_comm_size(call->comm);
    const sl_value *x = call->n_in ? call->in[0] : NULL;
    sl_value *y = call->out[0];
    sl_coll_desc d = {.dtype = y->dtype, .reduce = (sl_reduce)p->op, .root = (int)p->root_rank,
                      .peer = (int)p->peer, .tag = (int)p->sr_tag, .model = call->comm_model};
    size_t count = (size_t)sl_shape_numel(&y->shape);
    switch (call->node->op) {
    case SL_OP_ALL_REDUCE:
        d.kind = SL_COLL_ALLREDUCE;
        d.count = count;
        return sl_comm_run(call->comm, &d, x->data, y->data);
    case SL_OP_ALL_GATHER:
        d.kind = SL_COLL_ALLGATHER;
        d.count = (size_t)sl_shape_numel(&x->shape);
        return sl_comm_run(call->comm, &d, x->data, y->data);
    case SL_OP_REDUCE_SCATTER:
        d.kind = SL_COLL_REDUCE_SCATTER;
        d.count = count;
        return sl_comm_run(call->comm, &d, x->data, y->data);
    case SL_OP_BROADCAST:
        d.kind = SL_COLL_BROADCAST;
        for (int i = 0; i < call->n_in; i++) {
            if (call->out[i]->data != call->in[i]->data) {
                memcpy(call->out[i]->data, call->in[i]->data, sl_value_bytes(call->in[i]));
            }
            d.dtype = call->out[i]->dtype;
            d.count = (size_t)sl_shape_numel(&call->out[i]->shape);
            SL_TRY(sl_comm_run(call->comm, &d, NULL, call->out[i]->data));
        }
        return SL_OK;
    case SL_OP_ALL_TO_ALL: return all_to_all(call, n);
    case SL_OP_SEND:
        d.kind = SL_COLL_SEND;
        d.count = count;
        SL_TRY(sl_comm_run(call->comm, &d, x->data, NULL));
        if (y->data != x->data) {
            memcpy(y->data, x->data, sl_value_bytes(x));
        }
        return SL_OK;
    case SL_OP_RECEIVE:
        d.kind = SL_COLL_RECV;
        d.count = count;
        return sl_comm_run(call->comm, &d, NULL, y->data);
    default: return sl_op_error(call, SL_ERR_INTERNAL, "not a communication op");
    }
}
