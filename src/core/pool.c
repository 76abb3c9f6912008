#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Workers spin briefly on the job generation (kernels follow each other within microseconds),
 * then sleep on a condition variable. */
#define SL_POOL_SPIN 20000

struct sl_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic uint64_t generation; /* bumped per job */
    _Atomic int pending;         /* workers still running the current job */
    _Atomic int stop;
    /* the current job */
    sl_pool_fn fn;
    void *arg;
    int64_t n, chunk;
    int n_chunks;
};

static void run_chunk(sl_pool *p, int idx)
{
    int64_t begin = (int64_t)idx * p->chunk;
    int64_t end = begin + p->chunk;
    if (end > p->n) {
        end = p->n;
    }
    if (begin < end) {
        p->fn(p->arg, begin, end);
    }
}

typedef struct worker_arg {
    sl_pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *varg)
{
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    sl_pool *p = wa.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins > SL_POOL_SPIN) {
                pthread_mutex_lock(&p->mu);
                while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) {
                    pthread_cond_wait(&p->wake, &p->mu);
                }
                pthread_mutex_unlock(&p->mu);
                spins = 0;
            }
        }
        if (atomic_load(&p->stop)) {
            return NULL;
        }
        seen = gen;
        if (wa.index < p->n_chunks) {
            run_chunk(p, wa.index);
        }
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

sl_status sl_pool_create(int n_threads, sl_pool **out)
{
    *out = NULL;
    if (n_threads < 1) {
        return sl_error(SL_ERR_INVALID_ARG, "thread pool: thread count %d < 1", n_threads);
    }
    sl_pool *p = calloc(1, sizeof *p);
    if (!p) {
        return sl_error(SL_ERR_NOMEM, "thread pool: out of memory");
    }
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            sl_pool_destroy(p);
            return sl_error(SL_ERR_NOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            p->n_threads = i;
            sl_pool_destroy(p);
            return sl_error(SL_ERR_NOMEM, "thread pool: out of memory");
        }
        wa->pool = p;
        wa->index = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i;
            sl_pool_destroy(p);
            return sl_error(SL_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i,
                            n_threads);
        }
    }
    *out = p;
    return SL_OK;
}

void sl_pool_destroy(sl_pool *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) {
        pthread_join(p->threads[i - 1], NULL);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p);
}

int sl_pool_size(const sl_pool *p)
{
    return p ? p->n_threads : 1;
}

void sl_pool_for(sl_pool *p, int64_t n, int64_t grain, sl_pool_fn fn, void *arg)
{
    if (n <= 0) {
        return;
    }
    if (grain < 1) {
        grain = 1;
    }
    int64_t max_chunks = (n + grain - 1) / grain;
    int threads = p ? p->n_threads : 1;
    if (threads == 1 || max_chunks == 1) {
        fn(arg, 0, n);
        return;
    }
    int n_chunks = max_chunks < threads ? (int)max_chunks : threads;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = (n + n_chunks - 1) / n_chunks;
    p->n_chunks = n_chunks;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        /* the other chunks are short: spin */
    }
}
