/* The MPI backend (a plugin: libshardlite_mpi.so, loaded by comm.c on first use), for ranks on
 * several hosts. Errors come back as statuses (MPI_ERRORS_RETURN), never as an abort; each
 * collective's fingerprint is compared across ranks first, so a mismatch fails with both ops
 * named.
 *
 * Every wait for ranks that may not come has the communicator deadline and ends on an interrupt
 * (both checked every 10 ms): MPI_Init, which waits for every rank of the job, runs on a thread of
 * its own (which also calls MPI_Finalize at exit: the thread that initialised MPI must); the
 * backend's private copy of the world communicator is made with MPI_Comm_idup; a group's
 * rendezvous, the fingerprint exchange before each collective and Send/Receive are nonblocking
 * point-to-point calls; all are polled with MPI_Test*. The collective itself is MPI's blocking
 * call, started only once every member has sent its fingerprint and a second, empty message
 * (see check_fingerprints), so it waits for no late rank (Open MPI's nonblocking collectives
 * measured 2-6x slower than its blocking ones); so are MPI_Comm_create_group and MPI_Comm_dup,
 * once every member has come to the rendezvous. With SHARDLITE_COMM_CHECK=0 the collectives
 * are MPI's alone: no deadline. MPI cannot take back a started call, so a wait
 * that gives up leaves it pending: the backend then makes no further MPI call in the process (a
 * call would progress the abandoned one, which could still write into memory its caller has
 * since freed; a blocking collective already under way on another thread is the exception),
 * and the process leaves without MPI_Finalize (which would wait for the absent ranks), so that
 * mpirun ends the job; so does a process exiting with a nonzero status (an uncaught Python
 * exception, say). The exception: MPI_Finalize's own wait for the buffered Sends (at_finalize),
 * which gives up within MPI_Finalize and lets it go on (the Sends read only copies that are never
 * freed; MPI_Finalize then waits for the other ranks to finalize, as any MPI program's does).
 * MPI must provide MPI_THREAD_MULTIPLE: the models of a process may run their groups'
 * collectives on several threads at once. */
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"

typedef struct fingerprint { /* compared with memcmp: no padding */
    uint64_t seq, count;
    uint32_t kind, dtype, reduce;
    int32_t root, model, zero;
} fingerprint;
_Static_assert(sizeof(fingerprint) == 2 * 8 + 6 * 4, "a fingerprint has no padding");

typedef struct mpi_state {
    uint64_t id; /* unique in the process: its pending sends' (pending_send.group) */
    MPI_Comm comm;
    MPI_Comm check_comm; /* a duplicate of comm for fingerprints: apart from Send/Receive tags */
    int n, me;
    int ranks[SL_COMM_MAX_RANKS];
    uint64_t seq; /* collectives run (Send/Receive are not: only two members take part) */
    double timeout;
    int check; /* compare fingerprints (SHARDLITE_COMM_CHECK=0 turns it off) */
    /* the fingerprint exchange's buffers: here, not on the stack, since an abandoned exchange
     * may still be written into (the state of an abandoned process is never freed) */
    fingerprint mine, all[SL_COMM_MAX_RANKS];
} mpi_state;

/* A group's rendezvous message: its member count and world ranks. */
typedef struct group_list {
    int n;
    int ranks[SL_COMM_MAX_RANKS];
} group_list;

/* Guards the fields below that are not atomic. */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finalize_cv = PTHREAD_COND_INITIALIZER;
static int init_started, finalize_now;
static pid_t init_pid; /* the process that registered finalize_at_exit (not a forked child) */
static pthread_t init_thread;
static MPI_Comm world = MPI_COMM_NULL; /* the backend's copy of MPI_COMM_WORLD */
static _Atomic int world_ready;        /* set once world (and sum8, prod8) are made */
/* set by the init thread: init_done once it returned init_rc with thread level init_level */
static _Atomic int init_done;
static int init_rc, init_level;
/* the message of the first wait that gave up, set once, before gave_up */
static char abandoned[1024];
static _Atomic int gave_up;
static _Atomic int exiting; /* MPI_Finalize waits (at_finalize): no interrupt check (Python may
                               have ended) */

/* Sends are buffered as the shm backend's mailboxes buffer them: a Send of up to SEND_SLOTS
 * pieces of SEND_PIECE bytes is copied, started (MPI_Isend) and returns, unless its peer has yet
 * to receive so many earlier pieces from this rank in the group that the new ones would not fit
 * in SEND_SLOTS: then it waits for that first. (MPI itself returns at once only up to its eager
 * limit, 4 KiB on one host: without this, two ranks that each Send 64 KiB before they Receive
 * would wait until the deadline where shm runs.) Larger messages wait for their receiver. The
 * sends started and not yet complete are listed here (any thread tests them, under sends_mu).
 * MPI moves a message beyond its eager limit only while the sender calls into it (across hosts,
 * or without single-copy shared memory), so a thread of the backend's (progress_main) calls
 * MPI_Test on them until they complete; MPI_Finalize (ours at exit, or the program's own) first
 * waits for them within the deadline (at_finalize), then drops those never received, with a
 * warning (as a shm mailbox that no one empties goes with its segment). */
#define SEND_SLOTS 4
#define SEND_PIECE (64u << 10)

typedef struct pending_send {
    uint64_t group; /* its mpi_state's id */
    int peer;       /* group rank */
    int to;         /* world rank */
    int pieces;
    MPI_Request req;
    void *copy;
} pending_send;

static pthread_mutex_t sends_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sends_cv = PTHREAD_COND_INITIALIZER; /* a send was started, or stop */
static pending_send *sends;
static int n_sends, cap_sends;
static pthread_t progress_thread;
static pid_t progress_pid; /* the process that started progress_thread (0: none) */
static int progress_stop;
static uint64_t last_id;    /* (under sends_mu) */
static double exit_timeout; /* the longest deadline of the process's groups (under sends_mu) */
static int my_rank;         /* in the world */

static sl_status mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return sl_error(SL_ERR_STATE, "%s failed: %.*s", what, len, msg);
}

/* Fails once a wait of this process gave up. */
static sl_status usable(void)
{
    if (!atomic_load(&gave_up)) {
        return SL_OK;
    }
    return sl_error(SL_ERR_STATE,
                    "MPI cannot be used again in this process after an earlier wait failed (%s)",
                    abandoned);
}

/* Marks the process's MPI abandoned (the first reason stays) and fails with msg. */
static sl_status give_up(sl_status code, const char *msg)
{
    pthread_mutex_lock(&state_mu);
    if (!atomic_load(&gave_up)) {
        snprintf(abandoned, sizeof abandoned, "%s", msg);
        atomic_store(&gave_up, 1);
    }
    pthread_mutex_unlock(&state_mu);
    return sl_error(code, "%s", msg);
}

/* An MPI call that fails after others were started: they stay pending, so MPI is abandoned. */
static sl_status give_up_on(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING], text[sizeof abandoned];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    snprintf(text, sizeof text, "%s failed: %.*s", what, len, msg);
    return give_up(SL_ERR_STATE, text);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One look at what a wait waits for: 1 done, 0 not yet, -1 MPI abandoned (by another thread's
 * wait); *rc an MPI error. */
typedef int (*poll_fn)(void *arg, int *rc);

typedef struct requests {
    int n;
    MPI_Request *reqs;
    const int *from; /* [n]: the world rank whose message request i receives, or -1 */
} requests;

static int poll_requests(void *arg, int *rc)
{
    requests *r = arg;
    MPI_Status statuses[2 * SL_COMM_MAX_RANKS];
    int done = 0;
    if (atomic_load(&gave_up)) {
        return -1;
    }
    *rc = MPI_Testall(r->n, r->reqs, &done, statuses);
    for (int i = 0; *rc == MPI_ERR_IN_STATUS && i < r->n; i++) { /* the request's own error */
        int e = statuses[i].MPI_ERROR;
        *rc = e != MPI_SUCCESS && e != MPI_ERR_PENDING ? e : *rc;
    }
    return done;
}

/* "0,1,3" into buf. */
static const char *ranks_str(const int *ranks, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", ranks[i]);
    }
    return buf;
}

/* Whom a wait that gives up waited for, into buf: "rank 1", "ranks 1,3" (the senders of its
 * receives still pending) or "the other ranks". */
typedef void (*who_fn)(void *arg, char *buf, size_t size);

static void senders_pending(void *arg, char *buf, size_t size)
{
    requests *r = arg;
    int ranks[2 * SL_COMM_MAX_RANKS], k = 0;
    for (int i = 0; r->from && i < r->n; i++) {
        int done = 1;
        MPI_Status status;
        if (r->from[i] >= 0 && MPI_Request_get_status(r->reqs[i], &done, &status) == MPI_SUCCESS &&
            !done) {
            ranks[k++] = r->from[i];
        }
    }
    if (k == 0) {
        snprintf(buf, size, "the other ranks");
        return;
    }
    char list[256];
    snprintf(buf, size, "rank%s %s", k > 1 ? "s" : "", ranks_str(ranks, k, list, sizeof list));
}

/* Waits until poll says done; checks the interrupt check and the deadline every 10 ms. rank and
 * what say who waits for what, who (NULL: "the other ranks") for whom. On giving up, marks the
 * process's MPI abandoned. */
static sl_status wait_for(poll_fn poll, void *arg, who_fn who, int rank, double timeout,
                          const char *what)
{
    sl_wait_clock clock = {0};
    double last = now_s();
    sl_waited(&clock, last);
    for (unsigned i = 1;; i++) {
        int rc = MPI_SUCCESS, done = poll(arg, &rc);
        if (done < 0) {
            return usable();
        }
        if (rc != MPI_SUCCESS) {
            return give_up_on(rc, what);
        }
        if (done) {
            return SL_OK;
        }
        if (i % 64) {
            continue;
        }
        double t = now_s(), waited = sl_waited(&clock, t);
        if (t - last <= 0.01) {
            continue;
        }
        last = t;
        int interrupted = !atomic_load(&exiting) && sl_comm_interrupted();
        if (!interrupted && waited <= timeout) {
            continue;
        }
        char msg[sizeof abandoned], whom[300] = "the other ranks";
        if (who) {
            who(arg, whom, sizeof whom);
        }
        if (interrupted) {
            snprintf(msg, sizeof msg, "rank %d was interrupted while waiting for %s (%s)", rank,
                     whom, what);
        } else {
            snprintf(msg, sizeof msg,
                     "rank %d waited %g s for %s (%s): deadline passed (SHARDLITE_COMM_TIMEOUT)",
                     rank, timeout, whom, what);
        }
        return give_up(interrupted ? SL_ERR_INTERRUPTED : SL_ERR_STATE, msg);
    }
}

/* A look for the next message from a peer, whatever its tag. */
typedef struct probe {
    int peer, flag;
    int from; /* the peer's world rank */
    MPI_Comm comm;
    MPI_Status status;
} probe;

static void probed_sender(void *arg, char *buf, size_t size)
{
    snprintf(buf, size, "rank %d", ((probe *)arg)->from);
}

static int poll_probe(void *arg, int *rc)
{
    probe *p = arg;
    if (atomic_load(&gave_up)) {
        return -1;
    }
    *rc = MPI_Iprobe(p->peer, MPI_ANY_TAG, p->comm, &p->flag, &p->status);
    return p->flag;
}

/* from: see requests (NULL: none known) */
static sl_status wait_requests(int n, MPI_Request *reqs, const int *from, int rank,
                               double timeout, const char *what)
{
    requests r = {n, reqs, from};
    return wait_for(poll_requests, &r, senders_pending, rank, timeout, what);
}

/* A wait for sends to complete: those to one peer of one group until `pieces` more fit in its
 * SEND_SLOTS (group != 0), or all of the process's (group == 0). */
typedef struct send_wait {
    uint64_t group;
    int peer, pieces;
} send_wait;

static int is_waited(const send_wait *w, const pending_send *p)
{
    return w->group == 0 || (p->group == w->group && p->peer == w->peer);
}

/* Tests the pending sends (under sends_mu), freeing those that completed; counts the pieces and
 * the sends that w waits for still pending. Returns an MPI error, or MPI_SUCCESS. */
static int test_sends(const send_wait *w, int *pieces, int *left)
{
    int rc = MPI_SUCCESS;
    *pieces = *left = 0;
    for (int i = 0; i < n_sends && rc == MPI_SUCCESS;) {
        int done = 0;
        rc = MPI_Test(&sends[i].req, &done, MPI_STATUS_IGNORE);
        if (done && rc == MPI_SUCCESS) {
            free(sends[i].copy);
            sends[i] = sends[--n_sends];
        } else {
            *pieces += is_waited(w, &sends[i]) ? sends[i].pieces : 0;
            *left += is_waited(w, &sends[i]);
            i++;
        }
    }
    return rc;
}

/* Done once w's wait is over. */
static int poll_sends(void *arg, int *rc)
{
    const send_wait *w = arg;
    int pieces, left;
    if (atomic_load(&gave_up)) {
        return -1;
    }
    pthread_mutex_lock(&sends_mu);
    *rc = test_sends(w, &pieces, &left);
    pthread_mutex_unlock(&sends_mu);
    if (atomic_load(&exiting) && left) { /* (the receiver may need this CPU) */
        struct timespec nap = {0, 200000};
        nanosleep(&nap, NULL);
    }
    return w->group ? pieces + w->pieces <= SEND_SLOTS : left == 0;
}

/* Tests the pending sends while there are any (after a nap that grows from 20 us to 1 ms while
 * none completes), so that MPI moves them, until stop_progress. */
static void *progress_main(void *arg)
{
    (void)arg;
    const send_wait all = {0};
    long nap_ns = 20000;
    pthread_mutex_lock(&sends_mu);
    while (!progress_stop) {
        if (n_sends == 0 || atomic_load(&gave_up)) {
            pthread_cond_wait(&sends_cv, &sends_mu);
            nap_ns = 20000;
            continue;
        }
        int pieces, left, before = n_sends;
        int rc = test_sends(&all, &pieces, &left);
        pthread_mutex_unlock(&sends_mu);
        if (rc != MPI_SUCCESS) {
            give_up_on(rc, "a Send, in MPI_Test"); /* (its waiters fail with this message) */
        }
        nap_ns = left < before ? 20000 : nap_ns < 1000000 ? 2 * nap_ns : nap_ns;
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        pthread_mutex_lock(&sends_mu);
    }
    pthread_mutex_unlock(&sends_mu);
    return NULL;
}

/* Ends progress_main for good (this process's: not a forked child's copy of the state). */
static void stop_progress(void)
{
    pthread_mutex_lock(&sends_mu);
    int mine = progress_pid == getpid();
    progress_pid = 0;
    progress_stop = 1;
    pthread_cond_signal(&sends_cv);
    pthread_mutex_unlock(&sends_mu);
    if (mine) {
        pthread_join(progress_thread, NULL);
    }
}

/* Whom a wait for sends waits for: "rank 1", "ranks 1,3". */
static void receivers_pending(void *arg, char *buf, size_t size)
{
    const send_wait *w = arg;
    int ranks[SL_COMM_MAX_RANKS], k = 0;
    pthread_mutex_lock(&sends_mu);
    for (int i = 0; i < n_sends; i++) {
        int j = 0;
        while (j < k && ranks[j] != sends[i].to) {
            j++;
        }
        if (j == k && k < SL_COMM_MAX_RANKS && is_waited(w, &sends[i])) {
            ranks[k++] = sends[i].to;
        }
    }
    pthread_mutex_unlock(&sends_mu);
    char list[256];
    snprintf(buf, size, "rank%s %s", k > 1 ? "s" : "", ranks_str(ranks, k, list, sizeof list));
}

/* Sends d's message at in to its peer (see SEND_SLOTS). */
static sl_status send_message(mpi_state *s, const sl_coll_desc *d, const void *in, size_t bytes,
                              const char *what)
{
    MPI_Request req;
    int rc;
    if (bytes > (size_t)SEND_SLOTS * SEND_PIECE) {
        rc = MPI_Isend(in, (int)bytes, MPI_BYTE, d->peer, d->tag, s->comm, &req);
        return rc != MPI_SUCCESS ? mpi_fail(rc, what)
                                 : wait_requests(1, &req, NULL, s->ranks[s->me], s->timeout, what);
    }
    send_wait w = {s->id, d->peer, bytes ? (int)((bytes + SEND_PIECE - 1) / SEND_PIECE) : 1};
    SL_TRY(wait_for(poll_sends, &w, receivers_pending, s->ranks[s->me], s->timeout, what));
    void *copy = malloc(bytes ? bytes : 1);
    pthread_mutex_lock(&sends_mu);
    if (copy && n_sends == cap_sends) {
        int cap = cap_sends ? 2 * cap_sends : 16;
        pending_send *more = realloc(sends, (size_t)cap * sizeof *more);
        if (more) {
            sends = more;
            cap_sends = cap;
        }
    }
    if (!copy || n_sends == cap_sends) {
        pthread_mutex_unlock(&sends_mu);
        free(copy);
        return sl_error(SL_ERR_NOMEM, "%s: out of memory", what);
    }
    memcpy(copy, in, bytes);
    rc = MPI_Isend(copy, (int)bytes, MPI_BYTE, d->peer, d->tag, s->comm, &req);
    if (rc == MPI_SUCCESS) {
        sends[n_sends++] = (pending_send){.group = s->id, .peer = d->peer, .to = s->ranks[d->peer],
                                          .pieces = w.pieces, .req = req, .copy = copy};
        if (progress_pid != getpid() && !progress_stop &&
            pthread_create(&progress_thread, NULL, progress_main, NULL) == 0) {
            progress_pid = getpid(); /* (without it, the sends move when this rank next calls
                                        MPI: later, not never) */
        }
        pthread_cond_signal(&sends_cv);
    }
    pthread_mutex_unlock(&sends_mu);
    if (rc != MPI_SUCCESS) {
        free(copy);
        return mpi_fail(rc, what);
    }
    return SL_OK;
}

/* Receives d's message from its peer into out: the peer's next message must be this one. */
static sl_status receive_message(mpi_state *s, const sl_coll_desc *d, void *out, size_t bytes,
                                 const char *what)
{
    probe p = {.peer = d->peer, .from = s->ranks[d->peer], .comm = s->comm};
    SL_TRY(wait_for(poll_probe, &p, probed_sender, s->ranks[s->me], s->timeout, what));
    int sent = 0;
    MPI_Get_count(&p.status, MPI_BYTE, &sent);
    if ((size_t)sent != bytes || p.status.MPI_TAG != d->tag) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Receive from rank %d expects %zu bytes with tag %d, rank %d sent %d bytes with "
                 "tag %d",
                 s->ranks[d->peer], bytes, d->tag, s->ranks[d->peer], sent, p.status.MPI_TAG);
        return give_up(SL_ERR_STATE, msg); /* (the message stays unreceived) */
    }
    MPI_Request req;
    int rc = MPI_Irecv(out, (int)bytes, MPI_BYTE, d->peer, d->tag, s->comm, &req);
    if (rc != MPI_SUCCESS) {
        return mpi_fail(rc, what);
    }
    return wait_requests(1, &req, &s->ranks[d->peer], s->ranks[s->me], s->timeout, what);
}

/* MPI_Finalize's first step, whoever calls it (MPI deletes MPI_COMM_SELF's attributes first):
 * waits for the pending sends within the deadline, then lets MPI drop those never received. */
static int at_finalize(MPI_Comm comm, int keyval, void *value, void *extra)
{
    (void)comm, (void)keyval, (void)value, (void)extra;
    stop_progress();
    const send_wait all = {0};
    atomic_store(&exiting, 1);
    if (!atomic_load(&gave_up) && wait_for(poll_sends, (void *)&all, receivers_pending, my_rank,
                                           exit_timeout, "its Sends, at MPI_Finalize") != SL_OK) {
        fprintf(stderr, "shardlite: %s; the messages not received are dropped\n",
                sl_last_error());
    }
    return MPI_SUCCESS;
}

/* MPI_Init, then, at the process's exit (finalize_at_exit), MPI_Finalize. */
static void *init_main(void *arg)
{
    (void)arg;
    int provided = MPI_THREAD_SINGLE;
    init_rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
    init_level = provided;
    atomic_store(&init_done, 1);
    if (init_rc != MPI_SUCCESS) {
        return NULL;
    }
    pthread_mutex_lock(&state_mu);
    while (!finalize_now) {
        pthread_cond_wait(&finalize_cv, &state_mu);
    }
    pthread_mutex_unlock(&state_mu);
    int finalized = 0;
    MPI_Finalized(&finalized); /* (the program may have: mpi4py's MPI.Finalize(), say) */
    if (!finalized) {
        MPI_Finalize();
    }
    return NULL;
}

/* At exit (on_exit): the init thread finalizes MPI, unless the process exits with an error
 * (Python's status for an uncaught exception, say) or a wait gave up (MPI_Init's included):
 * MPI_Finalize would wait for the other ranks, which may be waiting for this one, while without
 * it mpirun ends the job at once. */
static void finalize_at_exit(int status, void *arg)
{
    (void)arg;
    if (getpid() != init_pid) {
        return; /* a forked child: nothing here is its own (sends_mu may be held for good) */
    }
    stop_progress(); /* whether MPI is finalized or not: no MPI call while the process ends */
    if (status != 0 || !atomic_load(&init_done) || init_rc != MPI_SUCCESS ||
        atomic_load(&gave_up)) {
        return;
    }
    pthread_mutex_lock(&state_mu);
    finalize_now = 1;
    pthread_cond_signal(&finalize_cv);
    pthread_mutex_unlock(&state_mu);
    pthread_join(init_thread, NULL);
}

/* Whether the flag at arg (init_done, world_ready) is set, napping if not. */
static int poll_set(void *arg, int *rc)
{
    (void)rc;
    if (atomic_load((_Atomic int *)arg)) {
        return 1;
    }
    if (atomic_load(&gave_up)) {
        return -1;
    }
    struct timespec nap = {0, 200000}; /* the ranks MPI_Init waits for may need this CPU */
    nanosleep(&nap, NULL);
    return 0;
}

static const char *level_name(int level)
{
    switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    default: return "MPI_THREAD_MULTIPLE";
    }
}

/* Sums and products of 8-bit integers that wrap around, as the shm backend's and numpy's do:
 * Open MPI's AVX reductions saturate them (100 + 100 = 127 in int8) from 32 elements up. */
static void wrapping_sum8(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    for (int i = 0; i < *len; i++) {
        ((uint8_t *)inout)[i] = (uint8_t)(((uint8_t *)in)[i] + ((uint8_t *)inout)[i]);
    }
}

static void wrapping_prod8(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    for (int i = 0; i < *len; i++) {
        ((uint8_t *)inout)[i] = (uint8_t)(((uint8_t *)in)[i] * ((uint8_t *)inout)[i]);
    }
}

static MPI_Op sum8 = MPI_OP_NULL, prod8 = MPI_OP_NULL; /* made by init_mpi */

/* Initialises MPI on first use (unless the program did) and makes the backend's copy of the
 * world communicator, within the deadline; checks that MPI agrees with the job. */
static sl_status init_mpi(const sl_rank_info *w, double timeout)
{
    SL_TRY(usable());
    sl_status st = SL_OK;
    int first = 0;
    pthread_mutex_lock(&state_mu);
    if (!init_started) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (inited) { /* by the program (mpi4py, say): it finalizes too */
            MPI_Query_thread(&init_level);
            atomic_store(&init_done, 1);
        } else if (pthread_create(&init_thread, NULL, init_main, NULL) != 0) {
            st = sl_error(SL_ERR_STATE, "MPI_Init: could not start its thread");
        } else {
            init_pid = getpid();
            on_exit(finalize_at_exit, NULL); /* fails only past 32 handlers: then MPI_Finalize
                                                is not called and mpirun reports it */
        }
        init_started = first = st == SL_OK;
    }
    pthread_mutex_unlock(&state_mu);
    SL_TRY(st);
    SL_TRY(wait_for(poll_set, &init_done, NULL, w->rank, timeout, "MPI_Init"));
    if (init_rc != MPI_SUCCESS) {
        return mpi_fail(init_rc, "MPI_Init_thread");
    }
    if (init_level < MPI_THREAD_MULTIPLE) {
        return sl_error(SL_ERR_UNSUPPORTED,
                        "the MPI backend needs MPI_THREAD_MULTIPLE, but MPI provides %s (with "
                        "mpi4py, keep its default thread level, 'multiple')",
                        level_name(init_level));
    }
    if (first) { /* the first open of the process: every rank's first open calls it */
        MPI_Request req;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        int keyval, rc = MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, at_finalize, &keyval, NULL);
        rc = rc == MPI_SUCCESS ? MPI_Comm_set_attr(MPI_COMM_SELF, keyval, NULL) : rc;
        rc = rc == MPI_SUCCESS ? MPI_Op_create(wrapping_sum8, 1, &sum8) : rc;
        rc = rc == MPI_SUCCESS ? MPI_Op_create(wrapping_prod8, 1, &prod8) : rc;
        if (rc != MPI_SUCCESS) {
            return give_up_on(rc, "MPI_Comm_create_keyval, MPI_Op_create");
        }
        rc = MPI_Comm_idup(MPI_COMM_WORLD, &world, &req);
        if (rc != MPI_SUCCESS) {
            return give_up_on(rc, "MPI_Comm_idup");
        }
        SL_TRY(wait_requests(1, &req, NULL, w->rank, timeout, "MPI_Comm_idup of the world"));
        atomic_store(&world_ready, 1);
    } else { /* another thread's first open makes them */
        SL_TRY(wait_for(poll_set, &world_ready, NULL, w->rank, timeout,
                        "MPI_Comm_idup of the world, on another thread"));
    }
    int wrank, wsize;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    if (wrank != w->rank || wsize != w->size) {
        return sl_error(SL_ERR_STATE, "MPI says rank %d of %d, the job says rank %d of %d",
                        wrank, wsize, w->rank, w->size);
    }
    return SL_OK;
}

/* Sends `bytes` at mine to every other member of s's group on comm (the backend's world, where
 * members are their world ranks, or a communicator of the group itself) with tag, and receives
 * theirs into all[member], within the deadline. */
static sl_status exchange(const mpi_state *s, MPI_Comm comm, const void *mine, void *all,
                          int bytes, int tag, const char *what)
{
    MPI_Request reqs[2 * SL_COMM_MAX_RANKS];
    int from[2 * SL_COMM_MAX_RANKS];
    int k = 0, rc = MPI_SUCCESS;
    for (int m = 0; m < s->n && rc == MPI_SUCCESS; m++) {
        if (m != s->me) {
            int peer = comm == world ? s->ranks[m] : m;
            from[k] = -1;
            rc = MPI_Isend(mine, bytes, MPI_BYTE, peer, tag, comm, &reqs[k++]);
            if (rc == MPI_SUCCESS) {
                void *theirs = bytes ? (char *)all + (size_t)m * (size_t)bytes : NULL;
                from[k] = s->ranks[m];
                rc = MPI_Irecv(theirs, bytes, MPI_BYTE, peer, tag, comm, &reqs[k++]);
            }
        }
    }
    if (rc != MPI_SUCCESS) {
        return give_up_on(rc, what);
    }
    return wait_requests(k, reqs, from, s->ranks[s->me], s->timeout, what);
}

/* Before the (blocking) MPI_Comm_create_group: every member of s's group sends every other the
 * group's ranks on the backend's world communicator and waits for theirs within the deadline; a
 * member opening another group there fails naming both. */
static sl_status rendezvous(const mpi_state *s)
{
    /* on the heap: an abandoned rendezvous may still be written into (then never freed) */
    group_list *lists = calloc((size_t)s->n, sizeof *lists);
    if (!lists) {
        return sl_error(SL_ERR_NOMEM, "MPI rendezvous: out of memory");
    }
    lists[s->me].n = s->n;
    memcpy(lists[s->me].ranks, s->ranks, sizeof(int) * (size_t)s->n);
    char mine[256], what[320];
    snprintf(what, sizeof what, "MPI rendezvous of ranks %s",
             ranks_str(s->ranks, s->n, mine, sizeof mine));
    SL_TRY(exchange(s, world, &lists[s->me], lists, (int)sizeof *lists, 0, what));
    sl_status st = SL_OK;
    for (int m = 0; m < s->n && st == SL_OK; m++) {
        const group_list *o = &lists[m];
        if (o->n != s->n || memcmp(o->ranks, s->ranks, sizeof(int) * (size_t)s->n) != 0) {
            /* the ranks' messages are paired wrongly from here on: MPI is abandoned */
            char theirs[256], msg[sizeof abandoned];
            int on = o->n > 0 && o->n <= SL_COMM_MAX_RANKS ? o->n : 0;
            snprintf(msg, sizeof msg,
                     "rank %d opens the group of ranks %s but rank %d opens ranks %s there: the "
                     "ranks build their models' groups in different orders",
                     s->ranks[s->me], mine, s->ranks[m],
                     ranks_str(o->ranks, on, theirs, sizeof theirs));
            st = give_up(SL_ERR_STATE, msg);
        }
    }
    free(lists);
    return st;
}

static sl_status mpi_open(const sl_rank_info *w, const int *ranks, int n, int me, double timeout,
                          void **state)
{
    *state = NULL;
    mpi_state *s = calloc(1, sizeof *s); /* before the rendezvous: after it, the others wait */
    if (!s) {
        return sl_error(SL_ERR_NOMEM, "communicator: out of memory");
    }
    s->n = n;
    s->me = me;
    s->timeout = timeout;
    pthread_mutex_lock(&sends_mu);
    s->id = ++last_id;
    exit_timeout = timeout > exit_timeout ? timeout : exit_timeout;
    my_rank = w->rank;
    pthread_mutex_unlock(&sends_mu);
    memcpy(s->ranks, ranks, sizeof(int) * (size_t)n);
    sl_status st = init_mpi(w, timeout);
    if (st == SL_OK) {
        st = rendezvous(s);
    }
    if (st != SL_OK) {
        free(s);
        return st;
    }
    /* every member has come: the blocking calls below wait for no late one */
    MPI_Group world_group, group;
    MPI_Comm_group(world, &world_group);
    MPI_Group_incl(world_group, n, ranks, &group);
    int rc = MPI_Comm_create_group(world, group, 0, &s->comm);
    const char *call = "MPI_Comm_create_group";
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    if (rc == MPI_SUCCESS) {
        MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
        rc = MPI_Comm_dup(s->comm, &s->check_comm);
        call = "MPI_Comm_dup";
        if (rc != MPI_SUCCESS) {
            MPI_Comm_free(&s->comm);
        }
    }
    if (rc != MPI_SUCCESS) {
        free(s);
        return mpi_fail(rc, call);
    }
    const char *check = getenv("SHARDLITE_COMM_CHECK");
    s->check = !(check && strcmp(check, "0") == 0);
    *state = s;
    return SL_OK;
}

static void mpi_close(void *state)
{
    mpi_state *s = state;
    int finalized = 0;
    if (!s || atomic_load(&gave_up)) {
        return; /* an abandoned exchange may still write into s */
    }
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Comm_free(&s->check_comm);
        MPI_Comm_free(&s->comm);
    }
    free(s);
}

static MPI_Datatype mpi_type(sl_dtype t)
{
    switch (t) {
    case SL_DTYPE_FLOAT32: return MPI_FLOAT;
    case SL_DTYPE_FLOAT64: return MPI_DOUBLE;
    case SL_DTYPE_INT32: return MPI_INT32_T;
    case SL_DTYPE_INT64: return MPI_INT64_T;
    case SL_DTYPE_INT8: return MPI_INT8_T;
    case SL_DTYPE_UINT8:
    case SL_DTYPE_BOOL: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
    }
}

/* (bools: a sum is an OR, a product an AND) */
static MPI_Op mpi_op(sl_reduce r, sl_dtype t)
{
    int int8 = t == SL_DTYPE_INT8 || t == SL_DTYPE_UINT8;
    switch (r) {
    case SL_REDUCE_MAX: return MPI_MAX;
    case SL_REDUCE_MIN: return MPI_MIN;
    case SL_REDUCE_PROD: return t == SL_DTYPE_BOOL ? MPI_LAND : int8 ? prod8 : MPI_PROD;
    default: return t == SL_DTYPE_BOOL ? MPI_LOR : int8 ? sum8 : MPI_SUM;
    }
}

/* Sends this rank's fingerprint of d to every member and compares theirs with it (point to
 * point: as fast as MPI_Allgather at 2 ranks, and waited for within the deadline). Then a
 * second round of empty messages: a member that gave up waiting in the first never sends its
 * second, so no member enters the blocking collective to wait there, without a deadline, for
 * it. (A member giving up in the second round, between its peers' messages arriving and its
 * next look, which takes a deadline or an interrupt falling in that instant, can still leave
 * them waiting in the collective.) */
static sl_status check_fingerprints(mpi_state *s, const sl_coll_desc *d, const char *what)
{
    s->mine = (fingerprint){.seq = s->seq, .count = d->count, .kind = (uint32_t)d->kind,
                            .dtype = (uint32_t)d->dtype, .reduce = (uint32_t)d->reduce,
                            .root = d->root, .model = d->model};
    SL_TRY(exchange(s, s->check_comm, &s->mine, s->all, (int)sizeof s->mine, 0, what));
    for (int m = 0; m < s->n; m++) {
        const fingerprint *o = &s->all[m];
        if (m != s->me && memcmp(o, &s->mine, sizeof *o) != 0) {
            char a[128], b[128];
            sl_coll_desc od = {.kind = (sl_coll)o->kind, .dtype = (sl_dtype)o->dtype,
                               .count = o->count, .reduce = (sl_reduce)o->reduce,
                               .root = o->root, .model = o->model};
            return sl_error(SL_ERR_STATE,
                            "collective mismatch at #%llu: rank %d runs %s but rank %d runs %s "
                            "(#%llu): the ranks' models differ",
                            (unsigned long long)s->seq, s->ranks[s->me],
                            sl_coll_str(d, a, sizeof a), s->ranks[m],
                            sl_coll_str(&od, b, sizeof b), (unsigned long long)o->seq);
        }
    }
    char second[256];
    snprintf(second, sizeof second, "%s, second round", what);
    return exchange(s, s->check_comm, NULL, NULL, 0, 1, second);
}

/* Runs d's collective with MPI's blocking call. */
static int blocking(mpi_state *s, const sl_coll_desc *d, const void *in, void *out)
{
    int c = (int)d->count, b = (int)(d->count * sl_dtype_size(d->dtype));
    MPI_Datatype t = mpi_type(d->dtype);
    switch (d->kind) {
    case SL_COLL_ALLREDUCE:
        return MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, c, t, mpi_op(d->reduce, d->dtype),
                             s->comm);
    case SL_COLL_ALLGATHER: return MPI_Allgather(in, b, MPI_BYTE, out, b, MPI_BYTE, s->comm);
    case SL_COLL_REDUCE_SCATTER:
        return MPI_Reduce_scatter_block(in, out, c, t, mpi_op(d->reduce, d->dtype), s->comm);
    case SL_COLL_BROADCAST: return MPI_Bcast(out, b, MPI_BYTE, d->root, s->comm);
    case SL_COLL_ALLTOALL: return MPI_Alltoall(in, b, MPI_BYTE, out, b, MPI_BYTE, s->comm);
    case SL_COLL_BARRIER: return MPI_Barrier(s->comm);
    default: return MPI_ERR_OP; /* Send/Receive: see mpi_run */
    }
}

static sl_status mpi_run(void *state, const sl_coll_desc *d, const void *in, void *out)
{
    mpi_state *s = state;
    size_t bytes = d->count * sl_dtype_size(d->dtype);
    if (bytes > (size_t)2147483647) {
        return sl_error(SL_ERR_UNSUPPORTED, "MPI messages over 2 GiB are not supported");
    }
    int reducing = d->kind == SL_COLL_ALLREDUCE || d->kind == SL_COLL_REDUCE_SCATTER;
    if (reducing && mpi_type(d->dtype) == MPI_DATATYPE_NULL) {
        return sl_error(SL_ERR_UNSUPPORTED, "MPI reductions of %s are not supported",
                        sl_dtype_name(d->dtype));
    }
    SL_TRY(usable());
    char op[128], what[200];
    sl_coll_str(d, op, sizeof op);
    if (d->kind == SL_COLL_SEND || d->kind == SL_COLL_RECV) {
        snprintf(what, sizeof what, "MPI %s %s rank %d", op,
                 d->kind == SL_COLL_SEND ? "to" : "from", s->ranks[d->peer]);
        return d->kind == SL_COLL_SEND ? send_message(s, d, in, bytes, what)
                                       : receive_message(s, d, out, bytes, what);
    }
    s->seq++;
    snprintf(what, sizeof what, "MPI %s, collective #%llu", op, (unsigned long long)s->seq);
    if (s->check) {
        SL_TRY(check_fingerprints(s, d, what));
    }
    int rc = blocking(s, d, in, out);
    return rc == MPI_SUCCESS ? SL_OK : mpi_fail(rc, what);
}

static int mpi_failed(void *state)
{
    (void)state;
    return atomic_load(&gave_up);
}

static const sl_comm_backend backend = {
    .name = "mpi",
    .open = mpi_open,
    .close = mpi_close,
    .run = mpi_run,
    .failed = mpi_failed,
};

__attribute__((visibility("default"))) const sl_comm_backend *sl_comm_mpi_backend(void)
{
    return &backend;
}
