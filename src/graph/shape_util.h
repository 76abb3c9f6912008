/* Helpers shared by infer functions and CPU kernels: error messages that name the node, input
 * checks, overflow-checked sizes, axis normalisation, broadcasting and the StridedSlice plan. */
#ifndef SL_GRAPH_SHAPE_UTIL_H
#define SL_GRAPH_SHAPE_UTIL_H

#include <stdint.h>

#include "graph/ir.h"

/* Largest element count accepted for any tensor: keeps numel * 16 bytes within int64. */
#define SL_MAX_NUMEL (INT64_MAX / 16)

/* Records "<node> (<op>): <message>" and returns status. */
sl_status sl_op_error(const sl_op_call *call, sl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks the node has min_in..max_in inputs (the first min_in present) and exactly n_out
 * outputs. */
sl_status sl_op_check_arity(const sl_op_call *call, int min_in, int max_in, int n_out);
/* Checks input i has a shape of known, non-negative dims whose element count is bounded. */
sl_status sl_op_check_input(const sl_op_call *call, int i);
/* Reads the known integer input i (any rank, at most max_n elements) into vals; *n gets the
 * count. Errors when the input is absent, not an integer tensor or not constant. */
sl_status sl_op_read_ints(const sl_op_call *call, int i, const char *what, int64_t *vals,
                          int max_n, int *n);

/* numel of s in *out; 0 when a dim is negative or the count exceeds SL_MAX_NUMEL. */
int sl_shape_numel_checked(const sl_shape *s, int64_t *out);
/* Product of dims [begin, end). */
int64_t sl_shape_prod(const sl_shape *s, int begin, int end);
/* Maps axis in [-rank, rank) to [0, rank); returns 0 when out of range. */
int sl_axis_normalize(int64_t axis, int rank, int *out);

int sl_dtype_is_float(sl_dtype t);   /* float16/bfloat16/float32/float64 */
int sl_dtype_is_int(sl_dtype t);     /* signed or unsigned integers, not bool */
int sl_dtype_is_numeric(sl_dtype t); /* bool, integers or floats */

/* numpy broadcasting of a and b into out; returns 0 when the shapes are incompatible. */
int sl_shape_broadcast(const sl_shape *a, const sl_shape *b, sl_shape *out);

/* StridedSlice resolved against an input shape: per input dim, where the slice starts, its
 * step and its length; plus the output shape (new axes added, shrunk axes removed). */
typedef struct sl_slice_plan {
    int64_t begin[SL_MAX_DIMS], step[SL_MAX_DIMS], len[SL_MAX_DIMS];
    sl_shape out;
} sl_slice_plan;

/* Resolves StridedSlice for call (inputs 1..3 must be known). */
sl_status sl_strided_slice_plan(const sl_op_call *call, sl_slice_plan *plan);

#endif
