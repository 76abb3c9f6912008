/* Rank discovery, the per-process registry of group communicators, backend choice. */
#include "comm/comm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_comm {
    const sl_comm_backend *backend;
    void *state;
    int ranks[SL_COMM_MAX_RANKS]; /* world ranks, increasing */
    int n, me;
    int refs;
    pthread_mutex_t run_mu; /* one collective at a time per communicator */
    _Atomic(const void *) user; /* sl_comm_claim's holder, or NULL */
    int models;                 /* numbers given by sl_comm_claim (by holders only) */
    struct sl_comm *next;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sl_comm *registry;
static sl_rank_info configured; /* size 0: not configured */
static _Atomic(sl_interrupt_check) interrupt_check;

void sl_set_interrupt_check(sl_interrupt_check check)
{
    atomic_store(&interrupt_check, check);
}

int sl_comm_interrupted(void)
{
    sl_interrupt_check check = atomic_load(&interrupt_check);
    return check && check();
}

sl_status sl_comm_timeout(double *out)
{
    const char *s = getenv("SHARDLITE_COMM_TIMEOUT");
    *out = 60.0;
    if (!s || !*s) {
        return SL_OK;
    }
    char *end;
    double t = strtod(s, &end);
    if (end == s || *end || !(t > 0 && t <= SL_COMM_MAX_TIMEOUT)) { /* (NaN fails too) */
        return sl_error(SL_ERR_INVALID_ARG,
                        "SHARDLITE_COMM_TIMEOUT='%s': expected seconds, a number above 0 and at "
                        "most %d",
                        s, SL_COMM_MAX_TIMEOUT);
    }
    *out = t;
    return SL_OK;
}

/* getenv(name) as an integer in [0, 2^20]: 1 read, 0 unset or empty, -1 malformed (with the
 * error in *st). */
static int env_int(const char *name, int *out, sl_status *st)
{
    const char *s = getenv(name);
    if (!s || !*s) {
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || v > 1 << 20) { /* digits only: no sign, no spaces */
        *st = sl_error(SL_ERR_INVALID_ARG, "%s='%s' is not a rank or a size", name, s);
        return -1;
    }
    *out = (int)v;
    return 1;
}

/* Whether a source's rank and size variables are both set (into w). A malformed value fails
 * (*st); so does one set without the other where `paired` (the launcher's own variables). */
static int env_pair(const char *rank, const char *size, int paired, sl_rank_info *w,
                    sl_status *st)
{
    if (*st != SL_OK) {
        return 0;
    }
    int r = env_int(rank, &w->rank, st), s = r < 0 ? -1 : env_int(size, &w->size, st);
    if (r >= 0 && s >= 0 && r != s && paired) {
        *st = sl_error(SL_ERR_INVALID_ARG, "%s is set without %s", r ? rank : size,
                       r ? size : rank);
    }
    return *st == SL_OK && r > 0 && s > 0;
}

static void set_job(sl_rank_info *w, const char *a, const char *b)
{
    snprintf(w->job, sizeof w->job, "%s%s%s", a ? a : "", b ? "." : "", b ? b : "");
}

sl_status sl_comm_configure(int rank, int size, const char *job, const char *backend)
{
    if (size == 0) {
        memset(&configured, 0, sizeof configured);
        return SL_OK;
    }
    if (size < 1 || size > SL_COMM_MAX_RANKS || rank < 0 || rank >= size) {
        return sl_error(SL_ERR_INVALID_ARG, "rank %d of %d: need 0 <= rank < size <= %d", rank,
                        size, SL_COMM_MAX_RANKS);
    }
    if (backend && *backend && strcmp(backend, "shm") != 0 && strcmp(backend, "mpi") != 0) {
        return sl_error(SL_ERR_INVALID_ARG, "communication backend '%s' (shm or mpi)", backend);
    }
    memset(&configured, 0, sizeof configured);
    configured.rank = rank;
    configured.size = size;
    configured.local_size = -1;
    set_job(&configured, job && *job ? job : "configured", NULL);
    snprintf(configured.source, sizeof configured.source, "config");
    snprintf(configured.backend, sizeof configured.backend, "%s", backend ? backend : "");
    return SL_OK;
}

sl_status sl_comm_world(sl_rank_info *w)
{
    memset(w, 0, sizeof *w);
    w->local_size = -1;
    char ppid[32];
    snprintf(ppid, sizeof ppid, "ppid%ld", (long)getppid());
    int local, nodes;
    sl_status st = SL_OK;
    if (configured.size) {
        *w = configured;
    } else if (env_pair("SHARDLITE_RANK", "SHARDLITE_WORLD_SIZE", 1, w, &st)) {
        snprintf(w->source, sizeof w->source, "launcher");
        w->local_size = w->size;
        const char *id = getenv("SHARDLITE_JOB_ID");
        set_job(w, id && *id ? id : ppid, NULL);
    } else if (env_pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", 1, w, &st)) {
        snprintf(w->source, sizeof w->source, "openmpi");
        if (env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &local, &st) > 0) {
            w->local_size = local;
        }
        const char *ns = getenv("PMIX_NAMESPACE");
        set_job(w, ns ? ns : getenv("OMPI_MCA_ess_base_jobid") ? getenv("OMPI_MCA_ess_base_jobid")
                                                                : ppid,
                NULL);
    } else if (env_pair("PMI_RANK", "PMI_SIZE", 0, w, &st)) {
        snprintf(w->source, sizeof w->source, "pmi");
        if (env_int("MPI_LOCALNRANKS", &local, &st) > 0) {
            w->local_size = local;
        }
        set_job(w, getenv("PMI_KVSNAME") ? getenv("PMI_KVSNAME") : ppid, NULL);
    } else if (env_pair("SLURM_PROCID", "SLURM_NTASKS", 0, w, &st)) {
        snprintf(w->source, sizeof w->source, "slurm");
        /* the step's nodes (an allocation may have more than the step uses) */
        if (env_int("SLURM_STEP_NUM_NODES", &nodes, &st) > 0 ||
            env_int("SLURM_NNODES", &nodes, &st) > 0) {
            w->local_size = nodes == 1 ? w->size : 0; /* 0: not every rank is here */
        }
        set_job(w, getenv("SLURM_JOB_ID"), getenv("SLURM_STEP_ID"));
    } else {
        w->rank = 0;
        w->size = 1;
        w->local_size = 1;
        snprintf(w->source, sizeof w->source, "single");
        snprintf(w->job, sizeof w->job, "pid%ld", (long)getpid());
    }
    SL_TRY(st);
    if (w->size < 1 || w->size > SL_COMM_MAX_RANKS) {
        return sl_error(SL_ERR_INVALID_ARG, "a world of %d ranks (from %s): 1 to %d are supported",
                        w->size, w->source, SL_COMM_MAX_RANKS);
    }
    if (w->rank >= w->size) {
        return sl_error(SL_ERR_INVALID_ARG, "rank %d (from %s) is not below the world size %d",
                        w->rank, w->source, w->size);
    }
    if (getenv("SHARDLITE_JOB_ID") && *getenv("SHARDLITE_JOB_ID") && !configured.size) {
        set_job(w, getenv("SHARDLITE_JOB_ID"), NULL);
    }
    const char *backend = getenv("SHARDLITE_COMM_BACKEND");
    if (!w->backend[0]) {
        if (backend && *backend) {
            snprintf(w->backend, sizeof w->backend, "%s", backend);
        } else {
            /* every rank on this host (or unknown: assume so) -> shared memory */
            snprintf(w->backend, sizeof w->backend, "%s",
                     w->local_size >= 0 && w->local_size < w->size ? "mpi" : "shm");
        }
    }
    return SL_OK;
}

/* The MPI backend lives in a plugin beside the library, loaded on first use, so that
 * shardlite runs on one host without libmpi installed. */
static sl_status load_mpi(const sl_comm_backend **out)
{
    static const sl_comm_backend *mpi;
    if (mpi) {
        *out = mpi;
        return SL_OK;
    }
    Dl_info info;
    char path[4096] = "libshardlite_mpi.so";
    if (dladdr((void *)load_mpi, &info) && info.dli_fname) {
        snprintf(path, sizeof path, "%s", info.dli_fname);
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
                 "libshardlite_mpi.so");
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        return sl_error(SL_ERR_UNSUPPORTED,
                        "the MPI backend is not available (%s): install Open MPI "
                        "(libopenmpi3) and a shardlite built with it, or use the shm backend on "
                        "one host",
                        dlerror());
    }
    const sl_comm_backend *(*get)(void) =
        (const sl_comm_backend *(*)(void))dlsym(h, "sl_comm_mpi_backend");
    if (!get) {
        return sl_error(SL_ERR_UNSUPPORTED, "%s has no sl_comm_mpi_backend", path);
    }
    mpi = get();
    *out = mpi;
    return SL_OK;
}

sl_status sl_comm_get(const int *ranks, int n, sl_comm **out)
{
    *out = NULL;
    sl_rank_info w;
    SL_TRY(sl_comm_world(&w));
    int all[SL_COMM_MAX_RANKS];
    if (n == 0) {
        for (int i = 0; i < w.size; i++) {
            all[i] = i;
        }
        ranks = all;
        n = w.size;
    }
    int me = -1;
    for (int i = 0; i < n; i++) {
        if (ranks[i] < 0 || ranks[i] >= w.size || (i && ranks[i] <= ranks[i - 1])) {
            return sl_error(SL_ERR_INVALID_ARG,
                            "group ranks must increase within [0, %d) (the world size)", w.size);
        }
        if (ranks[i] == w.rank) {
            me = i;
        }
    }
    if (me < 0) {
        return sl_error(SL_ERR_INVALID_ARG, "rank %d is not in the group it communicates in",
                        w.rank);
    }
    pthread_mutex_lock(&registry_mu);
    for (sl_comm *c = registry; c; c = c->next) {
        if (c->n == n && memcmp(c->ranks, ranks, sizeof(int) * (size_t)n) == 0 &&
            !(c->backend->failed && c->backend->failed(c->state))) {
            c->refs++;
            pthread_mutex_unlock(&registry_mu);
            *out = c;
            return SL_OK;
        }
    }
    sl_status st = SL_OK;
    sl_comm *c = calloc(1, sizeof *c);
    if (!c) {
        st = sl_error(SL_ERR_NOMEM, "communicator: out of memory");
    } else if (strcmp(w.backend, "mpi") == 0) {
        st = load_mpi(&c->backend);
    } else if (strcmp(w.backend, "shm") == 0) {
        c->backend = &sl_comm_shm;
    } else {
        st = sl_error(SL_ERR_INVALID_ARG, "communication backend '%s' (shm or mpi)", w.backend);
    }
    double timeout;
    if (st == SL_OK) {
        st = sl_comm_timeout(&timeout);
    }
    if (st == SL_OK) {
        /* the rendezvous runs under the lock: models of one process join groups in turn */
        st = c->backend->open(&w, ranks, n, me, timeout, &c->state);
        if (st != SL_OK) {
            st = sl_error_wrap(st, "%s communicator of %d ranks (rank %d, job %s, from %s)",
                               c->backend->name, n, w.rank, w.job, w.source);
        }
    }
    if (st != SL_OK) {
        free(c);
        pthread_mutex_unlock(&registry_mu);
        return st;
    }
    memcpy(c->ranks, ranks, sizeof(int) * (size_t)n);
    c->n = n;
    c->me = me;
    c->refs = 1;
    pthread_mutex_init(&c->run_mu, NULL);
    c->next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_mu);
    *out = c;
    return SL_OK;
}

void sl_comm_release(sl_comm *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&registry_mu);
    if (--c->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (sl_comm **p = &registry; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    c->backend->close(c->state);
    pthread_mutex_destroy(&c->run_mu);
    free(c);
}

int sl_comm_rank(const sl_comm *c)
{
    return c->me;
}

int sl_comm_size(const sl_comm *c)
{
    return c->n;
}

sl_status sl_comm_claim(sl_comm *c, const void *user, int *model)
{
    const void *held = NULL;
    if (atomic_compare_exchange_strong(&c->user, &held, user) || held == user) {
        if (*model == 0) {
            *model = ++c->models;
        }
        return SL_OK;
    }
    return sl_error(SL_ERR_STATE,
                    "rank %d: another model of this process is predicting in this group of %d "
                    "ranks; a rank predicts with one distributed model at a time, so that every "
                    "rank runs the collectives in the same order",
                    c->ranks[c->me], c->n);
}

void sl_comm_unclaim(sl_comm *c, const void *user)
{
    atomic_compare_exchange_strong(&c->user, &user, NULL);
}

sl_status sl_comm_run(sl_comm *c, const sl_coll_desc *d, const void *in, void *out)
{
    int p2p = d->kind == SL_COLL_SEND || d->kind == SL_COLL_RECV;
    if (p2p && (d->peer < 0 || d->peer >= c->n || d->peer == c->me)) {
        return sl_error(SL_ERR_INVALID_ARG, "%s peer %d is not another rank of a %d-rank group",
                        sl_coll_name(d->kind), d->peer, c->n);
    }
    pthread_mutex_lock(&c->run_mu);
    sl_status st = c->backend->run(c->state, d, in, out);
    pthread_mutex_unlock(&c->run_mu);
    return st;
}

const char *sl_coll_name(sl_coll kind)
{
    static const char *const kinds[] = {"AllReduce", "AllGather", "ReduceScatter", "Broadcast",
                                        "AlltoAll",  "Send",      "Receive",       "Barrier"};
    return (unsigned)kind < sizeof kinds / sizeof kinds[0] ? kinds[kind] : "?";
}

const char *sl_coll_str(const sl_coll_desc *d, char *buf, size_t n)
{
    static const char *const reduces[] = {"sum", "max", "min", "prod"};
    const char *kind = sl_coll_name(d->kind);
    switch (d->kind) {
    case SL_COLL_ALLREDUCE:
    case SL_COLL_REDUCE_SCATTER:
        snprintf(buf, n, "%s(%s, %s, %zu)", kind, (unsigned)d->reduce < 4 ? reduces[d->reduce] : "?",
                 sl_dtype_name(d->dtype), d->count);
        break;
    case SL_COLL_BROADCAST:
        snprintf(buf, n, "%s(root %d, %s, %zu)", kind, d->root, sl_dtype_name(d->dtype), d->count);
        break;
    case SL_COLL_BARRIER: snprintf(buf, n, "%s", kind); break;
    default: snprintf(buf, n, "%s(%s, %zu)", kind, sl_dtype_name(d->dtype), d->count); break;
    }
    if (d->model > 0) {
        size_t used = strlen(buf);
        snprintf(buf + used, n > used ? n - used : 0, " of model #%d", d->model);
    }
    return buf;
}
