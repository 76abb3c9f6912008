#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* Idle workers spin this long on the job word before sleeping on the condition variable:
 * kernels follow each other within microseconds and predict calls within tens of them, and a
 * sleeping worker takes far longer than that to wake. */
#define SPIN_NS 200000
/* The job word: generation (32 bits) | chunk count (16) | next unclaimed chunk (16). A thread
 * claims a chunk by a compare-and-swap on it, so the caller runs whatever chunks the workers have
 * not reached yet and never waits for a worker that is slow to wake. */
#define GEN_SHIFT 32
#define COUNT_SHIFT 16
#define FIELD_MASK 0xffffu

struct sl_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic uint64_t job;  /* see GEN_SHIFT */
    _Atomic int done;      /* chunks finished in the current job */
    _Atomic int sleepers;  /* workers waiting on `wake` */
    _Atomic int stop;
    /* the current job: written before `job` is published, read only by a chunk's owner */
    sl_pool_fn fn;
    void *arg;
    int64_t n, chunk;
};

static uint32_t job_gen(uint64_t job)
{
    return (uint32_t)(job >> GEN_SHIFT);
}

/* Claims and runs chunks of generation gen until none is left. */
static void run_chunks(sl_pool *p, uint32_t gen)
{
    uint64_t job = atomic_load_explicit(&p->job, memory_order_acquire);
    for (;;) {
        uint64_t next = job & FIELD_MASK, count = job >> COUNT_SHIFT & FIELD_MASK;
        if (job_gen(job) != gen || next >= count) {
            return;
        }
        if (!atomic_compare_exchange_weak_explicit(&p->job, &job, job + 1, memory_order_acq_rel,
                                                   memory_order_acquire)) {
            continue;
        }
        /* the job cannot change until this chunk is done */
        int64_t begin = (int64_t)next * p->chunk;
        int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        if (begin < end) {
            p->fn(p->arg, begin, end);
        }
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        job = atomic_load_explicit(&p->job, memory_order_acquire);
    }
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until the generation differs from seen (or the pool stops); returns the new one. */
static uint32_t wait_job(sl_pool *p, uint32_t seen)
{
    int64_t deadline = now_ns() + SPIN_NS;
    for (unsigned spins = 1;; spins++) {
        uint32_t gen = job_gen(atomic_load_explicit(&p->job, memory_order_acquire));
        if (gen != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            return gen;
        }
        cpu_relax();
        if (spins % 256 == 0 && now_ns() > deadline) {
            break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    uint32_t gen;
    while ((gen = job_gen(atomic_load(&p->job))) == seen && !atomic_load(&p->stop)) {
        pthread_cond_wait(&p->wake, &p->mu);
    }
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return gen;
}

static void *worker_main(void *arg)
{
    sl_pool *p = arg;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load(&p->stop)) {
            return NULL;
        }
        run_chunks(p, seen);
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
    p->n_threads = 1;
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
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, p) != 0) {
            sl_pool_destroy(p);
            return sl_error(SL_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i,
                            n_threads);
        }
        p->n_threads = i + 1;
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
    int64_t n_chunks = (n + grain - 1) / grain;
    int threads = p ? p->n_threads : 1;
    if (threads == 1 || n_chunks == 1) {
        fn(arg, 0, n);
        return;
    }
    n_chunks = n_chunks < threads ? n_chunks : threads;
    n_chunks = n_chunks < FIELD_MASK ? n_chunks : FIELD_MASK;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = (n + n_chunks - 1) / n_chunks;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t gen = job_gen(atomic_load_explicit(&p->job, memory_order_relaxed)) + 1;
    /* sequentially consistent with the sleepers count: a worker going to sleep either sees
     * this job or is counted (and then waits on the mutex this broadcast takes) */
    atomic_store(&p->job, (uint64_t)gen << GEN_SHIFT | (uint64_t)n_chunks << COUNT_SHIFT);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunks(p, gen);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
        cpu_relax();
    }
}
