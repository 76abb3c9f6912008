/* Geometry shared by the infer functions of the neural-network layers (infer_nn.c) and their CPU
 * kernels: where a 2-D sliding window (Conv2D, MaxPool, AvgPool) lands on an NCHW input, and how
 * MatMul's operands are laid out. */
#ifndef SL_GRAPH_INFER_NN_H
#define SL_GRAPH_INFER_NN_H

#include <stdint.h>

#include "graph/ir.h"

typedef struct sl_window2d {
    int64_t kh, kw;         /* kernel extent, before dilation */
    int64_t sh, sw;         /* strides, >= 1 */
    int64_t dh, dw;         /* dilations, >= 1 */
    int64_t pt, pb, pl, pr; /* padding: top, bottom, left, right */
    int64_t oh, ow;         /* output extent; -1 while the input's is unknown */
} sl_window2d;

/* A 1x1, stride-1, unpadded window: the input is its own im2col matrix. */
static inline int sl_window2d_is_pointwise(const sl_window2d *w)
{
    return w->kh == 1 && w->kw == 1 && w->sh == 1 && w->sw == 1 &&
           (w->pt | w->pb | w->pl | w->pr) == 0;
}

/* Resolves the window of a Conv2D (kernel from the OIHW weight) or pool node from its params and
 * input shapes; validates them and reports errors naming the node. */
sl_status sl_window2d_conv(const sl_op_call *call, sl_window2d *w);
sl_status sl_window2d_pool(const sl_op_call *call, sl_window2d *w);

/* One batched matrix product out[..., m, n] = op(a)[..., m, k] x op(b)[..., k, n]. */
typedef struct sl_matmul_dims {
    int64_t m, n, k;
    int64_t batch;                  /* product of the output's batch dims */
    int batch_rank;                 /* output rank - 2 */
    int64_t out_batch[SL_MAX_DIMS]; /* [batch_rank] the broadcast batch dims */
    int64_t a_stride[SL_MAX_DIMS];  /* [batch_rank] element step of a per batch index, 0 when
                                        broadcast */
    int64_t b_stride[SL_MAX_DIMS];  /* [batch_rank] likewise for b */
} sl_matmul_dims;

/* Validates a MatMul/BatchMatMul node's operands and fills d (dims may be -1 while unknown). */
sl_status sl_matmul_resolve(const sl_op_call *call, sl_matmul_dims *d);

#endif
