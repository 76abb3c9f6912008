/* Communicators: collectives between the ranks of a job (one process per rank), used by the
 * communication ops in the graph. A communicator serves one group of ranks; backends (shared
 * memory on one host, MPI across hosts) are small vtables chosen at run time.
 *
 * Every collective carries a sequence number and a fingerprint (op, dtype, count, root/peer)
 * that the ranks compare: a mismatch fails on every rank with both ranks' ops named instead of
 * hanging or producing garbage; every wait has a deadline and notices dead peers. */
#ifndef SL_COMM_COMM_H
#define SL_COMM_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define SL_COMM_MAX_RANKS 64

typedef enum sl_coll {
    SL_COLL_ALLREDUCE,
    SL_COLL_ALLGATHER,      /* each rank's `bytes` concatenated in rank order */
    SL_COLL_REDUCE_SCATTER, /* `count` elements per rank: rank i gets the reduction of chunk i */
    SL_COLL_BROADCAST,      /* root's buffer to every rank (in place) */
    SL_COLL_ALLTOALL,       /* chunk j of rank i's input becomes chunk i of rank j's output */
    SL_COLL_SEND,
    SL_COLL_RECV,
    SL_COLL_BARRIER,
} sl_coll;

typedef enum sl_reduce { SL_REDUCE_SUM, SL_REDUCE_MAX, SL_REDUCE_MIN, SL_REDUCE_PROD } sl_reduce;

/* One collective as every rank must call it. */
typedef struct sl_coll_desc {
    sl_coll kind;
    sl_dtype dtype;
    size_t count;     /* elements: of the whole vector (ALLREDUCE, BROADCAST, SEND/RECV), of
                       * each rank's contribution (ALLGATHER), or per chunk (REDUCE_SCATTER,
                       * ALLTOALL) */
    sl_reduce reduce; /* ALLREDUCE, REDUCE_SCATTER */
    int root;         /* BROADCAST: group rank of the source */
    int peer;         /* SEND: destination, RECV: source (group ranks) */
    int tag;          /* SEND/RECV */
    int model;        /* the running model's number in the group (sl_comm_claim), or 0 */
} sl_coll_desc;

/* Where this process stands in the job. */
typedef struct sl_rank_info {
    int rank, size;        /* in the world */
    int local_size;        /* ranks on this host (-1: unknown) */
    char job[64];          /* unique per job on a host: names shared-memory segments */
    char source[32];       /* where it came from: "config", "launcher", "openmpi", ... */
    char backend[16];      /* "shm", "mpi" (chosen or configured) */
} sl_rank_info;

/* A backend: opens its state for one group (ranks: world ranks in group order; me: this
 * process's index in it) and runs collectives on it. */
typedef struct sl_comm_backend {
    const char *name;
    sl_status (*open)(const sl_rank_info *world, const int *ranks, int n, int me, double timeout,
                      void **state);
    void (*close)(void *state);
    /* in/out per the desc (see sl_coll); for BROADCAST and SEND/RECV only `out`/`in` is used */
    sl_status (*run)(void *state, const sl_coll_desc *d, const void *in, void *out);
    /* optional: whether the group has failed (every later collective fails too), so that
     * sl_comm_get makes a new one rather than hand it out again */
    int (*failed)(void *state);
} sl_comm_backend;

typedef struct sl_comm sl_comm;

/* The process's rank, size and job (explicit configuration wins, else the launcher's
 * environment: shardlite's launcher, Open MPI, MPICH/Hydra, Slurm; else rank 0 of 1). */
sl_status sl_comm_world(sl_rank_info *out);
/* Explicit configuration (the rank-table flow); size 0 clears it. */
sl_status sl_comm_configure(int rank, int size, const char *job, const char *backend);

/* The communicator of a group (world ranks, strictly increasing; n == 0: the world), shared by
 * every model of the process: the first call rendezvouses with the group's other ranks. */
sl_status sl_comm_get(const int *ranks, int n, sl_comm **out);
void sl_comm_release(sl_comm *c);
int sl_comm_rank(const sl_comm *c); /* this process's rank in the group */
int sl_comm_size(const sl_comm *c);
/* Claims c for `user` (a model, for the length of a predict) until sl_comm_unclaim. Every rank
 * must run its collectives in the same order, so a rank runs one model's at a time: a claim
 * while another user holds c fails (SL_ERR_STATE) instead of mixing the two models' data. A
 * user may claim again what it holds; unclaiming what another user holds does nothing.
 * *model is the user's number in c: 0 before its first claim, which gives it the next number
 * (1 for the first model to predict in the group, 2 for the next...: the same on every rank
 * that predicts with its models in the same order). Collectives carry it in their
 * fingerprints (sl_coll_desc.model), so ranks running different models of a group fail. */
sl_status sl_comm_claim(sl_comm *c, const void *user, int *model);
void sl_comm_unclaim(sl_comm *c, const void *user);
/* Runs one collective (serialised per communicator). */
sl_status sl_comm_run(sl_comm *c, const sl_coll_desc *d, const void *in, void *out);

/* "AllReduce" for SL_COLL_ALLREDUCE... */
const char *sl_coll_name(sl_coll kind);
/* "AllReduce(sum, float32, 1024)" into buf: for error messages. */
SL_API const char *sl_coll_str(const sl_coll_desc *d, char *buf, size_t n);
/* The seconds a wait may last: SHARDLITE_COMM_TIMEOUT (default 60), above 0 and at most
 * SL_COMM_MAX_TIMEOUT; anything else fails, naming the variable. */
#define SL_COMM_MAX_TIMEOUT 1000000
sl_status sl_comm_timeout(double *out);
/* Whether a wait should end (the check of sl_set_interrupt_check says so): waits ask every
 * ~10 ms. */
SL_API int sl_comm_interrupted(void);

/* The seconds a wait has waited, not counting time its process was stopped (Ctrl-Z, SIGSTOP:
 * a job stopped longer than its deadline and continued goes on): called at each look at the
 * clock (every few milliseconds), with `now` in seconds; a gap of more than a second since the
 * last look is a stop, and is taken off. Zero-initialise before the first look. */
typedef struct sl_wait_clock {
    double start, last;
} sl_wait_clock;

static inline double sl_waited(sl_wait_clock *w, double now)
{
    if (w->start == 0) {
        w->start = w->last = now;
    } else if (now - w->last > 1.0) {
        w->start += now - w->last;
    }
    w->last = now;
    return now - w->start;
}

extern const sl_comm_backend sl_comm_shm;

#endif
