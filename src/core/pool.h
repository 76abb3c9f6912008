/* A persistent thread pool: the model's threads, sized by thread_num, reused by every kernel. */
#ifndef SL_CORE_POOL_H
#define SL_CORE_POOL_H

#include <stdint.h>

#include "core/status.h"

typedef struct sl_pool sl_pool;

/* fn processes [begin, end) of a range split across the pool. */
typedef void (*sl_pool_fn)(void *arg, int64_t begin, int64_t end);

/* n_threads >= 1 counts the calling thread: a pool of 1 runs everything inline. */
sl_status sl_pool_create(int n_threads, sl_pool **out);
void sl_pool_destroy(sl_pool *pool);
int sl_pool_size(const sl_pool *pool);
/* Runs fn over [0, n) in contiguous chunks of at least `grain` items, one chunk per thread,
 * the caller included; returns when all are done. pool may be NULL (runs inline). Not
 * reentrant: a kernel must not call it from inside fn. */
void sl_pool_for(sl_pool *pool, int64_t n, int64_t grain, sl_pool_fn fn, void *arg);

#endif
