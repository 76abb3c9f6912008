/* Declarations of every op's infer and CPU kernel function (see ops.def). Infer functions live in
 * src/graph/infer_*.c, kernels in src/backend/cpu/. */
#ifndef SL_GRAPH_OP_IMPL_H
#define SL_GRAPH_OP_IMPL_H

#include "graph/ir.h"

#define X(e, name, impl, attrs, flags)                                                                 \
    sl_status sl_infer_##impl(sl_op_call *call);                                           \
    sl_status sl_kernel_##impl(sl_op_call *call);
#include "graph/ops.def"
#undef X

#endif
