/* Tensor-parallel splitting of a full model into N rank models (Megatron layout). The public
 * entry point is sl_split_model (shardlite.h); this header shares the slicing rule with tests. */
#ifndef SL_GRAPH_SPLIT_H
#define SL_GRAPH_SPLIT_H

#include <stdint.h>

/* The slice [*lo, *hi) of `full` elements that rank r of n holds when slices are whole multiples
 * of `unit` (full % unit == 0): the units are dealt as evenly as possible, the first ranks
 * getting one more when they do not divide. */
void sl_split_range(int64_t full, int64_t unit, int n, int r, int64_t *lo, int64_t *hi);

#endif
