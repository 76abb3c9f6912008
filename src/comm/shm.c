/* The shared-memory backend: all ranks of a group on one host share one segment per group.
 *
 * Each member has two data buffers (used alternately by consecutive collectives, so a rank can
 * publish the next one while others still read the last), two result buffers for the two-shot
 * all-reduce, and control lines: `ready` (its input for collective s is published, with the
 * fingerprint of s beside it) and `reduced` (its share of a two-shot reduction is done). Flags
 * are sequence numbers in separate cache lines: no barriers. A member publishes s only after it
 * has finished s - 1, and finishes s only after seeing every member publish s: so when a rank
 * starts s + 1, everyone is done with s - 1, whose buffers s + 1 reuses (no `done` flag).
 * Every reduction adds the members' data in member order, so every rank gets bit-identical
 * results. Messages larger than a buffer go in pieces.
 *
 * The segment is created by the group's first member (mode 0600, O_EXCL, space reserved with
 * posix_fallocate so a full /dev/shm fails at build time, not with SIGBUS), and unlinked as soon
 * as every member has mapped it: nothing is left in /dev/shm after the rendezvous, whatever
 * happens later. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/futex.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/cpus.h"
#include "comm/tuner.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_STREAMING_STORES 1
#else
#define HAVE_STREAMING_STORES 0
#endif

#define SHM_MAGIC 0x32305445494c4853ull /* "SHLITE02" */
/* A segment still named this long after its rendezvous deadline (shm_header.expires) was left
 * by a rank 0 that died at its rendezvous (see remove_stale_segments). */
#define STALE_AFTER_S 5.0
#define UNWRITTEN_STALE_S 60.0
#define LINE 64
#define DEFAULT_SLOT_BYTES (1u << 20)
/* Send/Receive: each (sender, receiver) pair has a mailbox of P2P_SLOTS slots of
 * P2P_SLOT_BYTES; a message larger than a slot goes in pieces, one per slot. */
#define P2P_SLOTS 4
#define P2P_SLOT_BYTES (64u << 10)
/* All-reduces up to this size go one-shot (every rank reads and reduces everything), larger ones
 * two-shot (each reduces a share, then all copy the shares: more waits, less work). Each rank
 * copies and reads 2x the message one-shot and 2x two-shot at 2 ranks, but 4x against 2.5x at
 * 4, so two-shot pays off sooner with more ranks. (Measured: at 2 ranks two-shot from 32 KiB
 * took 0.45-0.65x MPI at 64 KiB against 0.54-0.65x one-shot; at 4 ranks on 2 cores two-shot from
 * 8 KiB took 0.22-0.30x at 16-32 KiB against 0.29-0.52x, 0.55x at 256 KiB against 1.3-1.6x.) */
#define ONE_SHOT_MAX_2 (32u << 10)
#define ONE_SHOT_MAX_N (8u << 10)
/* Buffers lie this far apart beyond their size: the same offset in two buffers (a reduction
 * reads and writes several at once) falls in different cache sets. (Measured: without it a
 * 512 KiB two-shot all-reduce took 3x as long.) */
#define STAGGER (4096u + 256u)

/* How a rank writes the buffers the others read (SHARDLITE_SHM_STORES): through its cache, or
 * with streaming stores that go to memory and leave the line in no cache. Between cores that
 * share a cache the first is faster (4 KiB: 0.8 us against 1.4 us here); between cores far
 * apart (a VM's vCPUs the host moves to different dies) every line read from another core's
 * cache is slow and reading memory is faster (64 KiB: 13 us against 27 us). `auto` measures:
 * member 0 times its collectives per power-of-two message size (see comm/tuner.h) and
 * publishes the choice to the others. */
enum { STORES_AUTO, STORES_CACHED, STORES_STREAMING };
#define TUNE_SAMPLE 4
#define TUNE_SAMPLE_BELOW (64u << 10)


typedef struct fingerprint {
    uint64_t seq, count;
    uint32_t kind, dtype, reduce;
    int32_t root, peer, tag, model;
} fingerprint;

/* "my input for collective `seq` is published", with its fingerprint in the same cache line
 * (one miss per peer to learn both) */
typedef struct ready_line {
    _Alignas(LINE) _Atomic uint64_t seq;
    fingerprint fp;
} ready_line;

typedef struct member_ctl {
    ready_line ready[2]; /* by parity of the sequence number */
    _Alignas(LINE) _Atomic uint64_t reduced;
    _Alignas(LINE) _Atomic uint32_t sleepers; /* ranks asleep on one of this member's flags */
} member_ctl;

typedef struct p2p_ctl {
    _Alignas(LINE) _Atomic uint64_t sent; /* pieces sent; slot k % P2P_SLOTS holds piece k + 1 */
    uint64_t bytes[P2P_SLOTS];            /* by slot: the size of the piece's message... */
    int32_t tag[P2P_SLOTS];               /* ... and its tag */
    _Alignas(LINE) _Atomic uint64_t acked; /* pieces received */
} p2p_ctl;

typedef struct shm_header {
    _Atomic uint64_t magic; /* set last by the creator */
    uint32_t n, pad;
    uint64_t slot_bytes, total_bytes;
    uid_t uid;
    double expires; /* the end of the rendezvous: creation + deadline (CLOCK_REALTIME seconds) */
    _Atomic uint32_t attached;
    _Atomic int32_t abort_claim; /* the first failing member claims abort_msg ... */
    _Atomic int32_t aborted;     /* ... then sets this: 0, or 1 + the member that failed */
    char abort_msg[512];
    _Atomic int32_t pids[SL_COMM_MAX_RANKS];
    _Atomic uint32_t streaming; /* bit b: write messages of [2^b, 2^(b+1)) bytes streaming */
    cpu_set_t cpus[SL_COMM_MAX_RANKS]; /* the CPUs each member may run on */
} shm_header;

typedef struct shm_comm {
    char name[128];
    uint64_t name_hash;   /* of the job id and the group's ranks */
    struct place *place;  /* this member's place in the group, held (see claim_place) */
    int n, me;
    int world_ranks[SL_COMM_MAX_RANKS];
    double timeout;
    size_t slot, total;
    uint8_t *base;
    shm_header *hdr;
    member_ctl *ctl;   /* [n] */
    p2p_ctl *p2p;      /* [n * n]: src * n + dst */
    uint8_t *data;     /* [n] x (2 buffers + 2 results) x slot */
    uint8_t *p2p_data; /* [n * n] x P2P_SLOTS x P2P_SLOT_BYTES */
    uint64_t seq;      /* collectives run so far */
    unsigned spins;    /* a wait spins this many times before it yields */
    int stores;        /* STORES_* */
    sl_tuner tune[32]; /* member 0, STORES_AUTO: per message size (floor of log2) */
    uint32_t seen[32]; /* calls per message size, timed or not */
    uint64_t sent[SL_COMM_MAX_RANKS], received[SL_COMM_MAX_RANKS]; /* p2p pieces per peer */
} shm_comm;

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static uint8_t *buffer(shm_comm *c, int member, int which, uint64_t seq)
{
    /* which: 0 = data, 1 = result; two of each, by parity */
    return c->data + ((size_t)member * 4 + (size_t)which * 2 + (seq & 1)) * (c->slot + STAGGER);
}

static double clock_s(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* Whether process pid still runs (a zombie, exited but not yet reaped, does not). */
static int alive(int32_t pid)
{
    if (pid <= 0) {
        return 1; /* not attached yet: nothing to say */
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return 0;
    }
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return !(close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X'));
}

/* Marks the segment failed (the others stop waiting) and returns the error. */
static sl_status fail(shm_comm *c, sl_status st)
{
    int32_t zero = 0;
    if (c->hdr && atomic_compare_exchange_strong(&c->hdr->abort_claim, &zero, c->me + 1)) {
        snprintf(c->hdr->abort_msg, sizeof c->hdr->abort_msg, "%s", sl_last_error());
        atomic_store(&c->hdr->aborted, c->me + 1);
    }
    return st;
}

/* The error of the member that failed the group (this one too: a failed group stays failed),
 * or SL_OK. */
static sl_status group_failed(shm_comm *c)
{
    int32_t ab = atomic_load(&c->hdr->aborted);
    return ab ? sl_error(SL_ERR_STATE, "rank %d failed: %s", c->world_ranks[ab - 1],
                         c->hdr->abort_msg)
              : SL_OK;
}

/* Whether a wait is due to check its peers and the interrupt check again (every 10 ms): when
 * so, moves *last to t. */
static int check_due(double t, double *last)
{
    if (t - *last <= 0.01) {
        return 0;
    }
    *last = t;
    return 1;
}

/* A spin-wait hint: lets the other hardware thread of the core run (x86 `pause`). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long futex(_Atomic uint64_t *flag, int op, uint32_t val, const struct timespec *timeout)
{
    /* the low half of the 64-bit flag (x86-64 is little-endian); shared, not private */
    return syscall(SYS_futex, (uint32_t *)flag, op, val, timeout, NULL, 0);
}

/* Sets one of this rank's flags and wakes the ranks asleep on it. (Sequentially consistent, so
 * a waiter that announced itself in `sleepers` before its last look is seen here.) */
static void set_flag(shm_comm *c, _Atomic uint64_t *flag, uint64_t v)
{
    atomic_store(flag, v);
    if (atomic_load(&c->ctl[c->me].sleepers)) {
        futex(flag, FUTEX_WAKE, INT32_MAX, NULL);
    }
}

/* Waits until *flag >= target, member m writing the flag, and returns its value in *value.
 * Spins (c->spins times), then yields for up to a millisecond, then sleeps on a futex (a
 * millisecond at a time, woken by set_flag): long waits give the core away. (Sleeping sooner
 * measured slower: waking a sleeping rank costs tens to hundreds of microseconds on a VM.)
 * Checks the abort flag, the deadline and that m is alive. */
static sl_status wait_flag(shm_comm *c, _Atomic uint64_t *flag, uint64_t target, int m,
                          const char *what, uint64_t *value)
{
    uint64_t v;
    double last_check = 0;
    sl_wait_clock clock = {0};
    for (unsigned spins = 0; (v = atomic_load_explicit(flag, memory_order_acquire)) < target;
         spins++) {
        if (spins < c->spins) {
            cpu_relax();
            continue;
        }
        double t = now_s(), waited = sl_waited(&clock, t);
        if (last_check == 0) {
            last_check = t;
        }
        SL_TRY(group_failed(c));
        if (check_due(t, &last_check)) {
            if (sl_comm_interrupted()) {
                return fail(c, sl_error(SL_ERR_INTERRUPTED,
                                        "rank %d was interrupted while waiting for rank %d (%s, "
                                        "collective #%llu)",
                                        c->world_ranks[c->me], c->world_ranks[m], what,
                                        (unsigned long long)c->seq));
            }
            int32_t pid = atomic_load(&c->hdr->pids[m]);
            if (!alive(pid)) {
                return fail(c, sl_error(SL_ERR_STATE,
                                        "rank %d (pid %d) died while rank %d waited for it (%s, "
                                        "collective #%llu)",
                                        c->world_ranks[m], pid, c->world_ranks[c->me], what,
                                        (unsigned long long)c->seq));
            }
        }
        if (waited > c->timeout) {
            return fail(c, sl_error(SL_ERR_STATE,
                                    "rank %d waited %.0f s for rank %d (%s, collective #%llu): "
                                    "deadline passed (SHARDLITE_COMM_TIMEOUT)",
                                    c->world_ranks[c->me], c->timeout, c->world_ranks[m], what,
                                    (unsigned long long)c->seq));
        }
        if (waited < 1e-3) {
            sched_yield();
            continue;
        }
        atomic_fetch_add(&c->ctl[m].sleepers, 1);
        v = atomic_load(flag);
        if (v < target) {
            struct timespec ms = {0, 1000000};
            futex(flag, FUTEX_WAIT, (uint32_t)v, &ms);
        }
        atomic_fetch_sub(&c->ctl[m].sleepers, 1);
    }
    *value = v;
    return SL_OK;
}

/* Waits until the flag at `field` of every member is >= target. */
static sl_status wait_all(shm_comm *c, size_t field, uint64_t target, const char *what)
{
    for (int m = 0; m < c->n; m++) {
        uint64_t v;
        SL_TRY(wait_flag(c, (_Atomic uint64_t *)((char *)&c->ctl[m] + field), target, m, what,
                         &v));
    }
    return SL_OK;
}

/* ---- rendezvous ---- */

/* One step of FNV-1a over 64-bit values (FNV_START: the offset basis). */
#define FNV_START 1469598103934665603ull
static uint64_t fnv(uint64_t h, uint64_t v)
{
    return (h ^ v) * 1099511628211ull;
}

/* The segment's name: the job id (what fits of it, other characters than letters and digits as
 * '_'), the group's size and a hash of the whole job id and the group's ranks, so that two jobs
 * or groups never share a name. */
static void segment_name(shm_comm *c, const sl_rank_info *w, const int *ranks, int count)
{
    uint64_t h = FNV_START;
    for (const char *p = w->job; *p; p++) {
        h = fnv(h, (uint8_t)*p);
    }
    for (int i = 0; i < count; i++) {
        h = fnv(h, (uint64_t)(uint32_t)ranks[i] ^ 0x100);
    }
    char job[41];
    size_t k = 0;
    for (const char *p = w->job; *p && k + 1 < sizeof job; p++) {
        char ch = *p;
        job[k++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                       ? ch
                       : '_';
    }
    job[k] = '\0';
    c->name_hash = h;
    snprintf(c->name, sizeof c->name, "/shardlite-%s-%d-%016llx", job, count,
             (unsigned long long)h);
}

/* This member's place in the group, held for as long as one of the process's communicators
 * of the group lives (a failed one may live beside its replacement): a listening Unix socket in
 * the abstract namespace, named after the segment and the member. It goes when the process
 * goes, however it ends, and leaves nothing in the file system. Another process taking the
 * same place (a second job with the same job id, or a rank started twice) fails at once,
 * naming the holder, instead of pairing with the wrong job's ranks. */
typedef struct place {
    uint64_t hash;
    int me, refs;
    int fd; /* -1: a forked child's copy of its parent's place, not held */
    struct place *next;
} place;

static pthread_mutex_t places_mu = PTHREAD_MUTEX_INITIALIZER;
static place *places;
static pthread_once_t places_once = PTHREAD_ONCE_INIT;
static uint64_t places_scope; /* this /dev/shm and user: the names' scope is the network's */

static void places_lock(void)
{
    pthread_mutex_lock(&places_mu);
}

static void places_unlock(void)
{
    pthread_mutex_unlock(&places_mu);
}

/* A forked child holds none of its parent's places: its copies of the sockets would keep them
 * taken after the parent ends. */
static void places_in_child(void)
{
    for (place *p = places; p; p = p->next) {
        if (p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
    }
    pthread_mutex_unlock(&places_mu);
}

static void places_init(void)
{
    struct stat sb = {0};
    stat("/dev/shm", &sb);
    places_scope = fnv(fnv(fnv(FNV_START, (uint64_t)sb.st_dev), (uint64_t)sb.st_ino), getuid());
    pthread_atfork(places_lock, places_unlock, places_in_child);
}

static sl_status claim_place(shm_comm *c, const sl_rank_info *w)
{
    if (c->n == 1) { /* no other member to pair with the wrong job's */
        return SL_OK;
    }
    pthread_once(&places_once, places_init);
    pthread_mutex_lock(&places_mu);
    for (place *p = places; p; p = p->next) {
        if (p->hash == c->name_hash && p->me == c->me && p->fd >= 0) {
            p->refs++;
            c->place = p;
            pthread_mutex_unlock(&places_mu);
            return SL_OK;
        }
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "shardlite-%016llx-%016llx-%d",
                       (unsigned long long)places_scope, (unsigned long long)c->name_hash, c->me);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    place *p = calloc(1, sizeof *p);
    if (fd >= 0 && p && bind(fd, (struct sockaddr *)&a, alen) == 0 &&
        listen(fd, SOMAXCONN) == 0) { /* (never accepted: a refused claimant's query waits) */
        *p = (place){c->name_hash, c->me, 1, fd, places};
        places = c->place = p;
        pthread_mutex_unlock(&places_mu);
        return SL_OK;
    }
    pthread_mutex_unlock(&places_mu);
    int err = p ? errno : ENOMEM;
    free(p);
    if (fd >= 0) {
        close(fd);
    }
    if (err != EADDRINUSE) {
        return sl_error(SL_ERR_IO, "rank %d cannot claim its place in %s: %s",
                        c->world_ranks[c->me], c->name, strerror(err));
    }
    struct ucred holder = {0}; /* the listener's process, as a client sees it */
    socklen_t hlen = sizeof holder;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &holder, &hlen) != 0) {
        holder.pid = 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    char who[32] = "";
    if (holder.pid > 0) {
        snprintf(who, sizeof who, " (pid %d)", (int)holder.pid);
    }
    return sl_error(SL_ERR_STATE,
                    "rank %d of job '%s' (group of %d ranks) is already running on this host%s: "
                    "two jobs with the same job id, or one rank started twice?",
                    c->world_ranks[c->me], w->job, c->n, who);
}

static void release_place(place *p)
{
    pthread_mutex_lock(&places_mu);
    if (--p->refs == 0) {
        for (place **q = &places; *q; q = &(*q)->next) {
            if (*q == p) {
                *q = p->next;
                break;
            }
        }
        if (p->fd >= 0) {
            close(p->fd);
        }
        free(p);
    }
    pthread_mutex_unlock(&places_mu);
}

/* The segment's size (base == NULL, before mapping) or its parts' addresses (after). */
static void layout(shm_comm *c)
{
    size_t ctl = align_up(sizeof(shm_header), 4096);
    size_t p2p = ctl + align_up(sizeof(member_ctl) * (size_t)c->n, 4096);
    size_t data = p2p + align_up(sizeof(p2p_ctl) * (size_t)(c->n * c->n), 4096);
    size_t p2p_data = data + (size_t)c->n * 4 * (c->slot + STAGGER);
    c->total = p2p_data + (size_t)(c->n * c->n) * P2P_SLOTS * P2P_SLOT_BYTES;
    if (c->base) {
        c->ctl = (member_ctl *)(c->base + ctl);
        c->p2p = (p2p_ctl *)(c->base + p2p);
        c->data = c->base + data;
        c->p2p_data = c->base + p2p_data;
    }
}

/* SHARDLITE_SHM_SLOT_BYTES (unset or empty: the default), within [4 KiB, 1 GiB] */
static sl_status slot_bytes(size_t *out)
{
    const char *s = getenv("SHARDLITE_SHM_SLOT_BYTES");
    *out = DEFAULT_SLOT_BYTES;
    if (!s || !*s) {
        return SL_OK;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < 4096 || v > (1ll << 30)) {
        return sl_error(SL_ERR_INVALID_ARG,
                        "SHARDLITE_SHM_SLOT_BYTES='%s': expected bytes, from 4096 to 1073741824",
                        s);
    }
    *out = align_up((size_t)v, LINE);
    return SL_OK;
}

/* The header of the segment open at fd (size bytes) mapped with prot, or NULL when there is
 * no room for one yet or it cannot be mapped; munmap(h, sizeof *h) when done. */
static shm_header *map_header(int fd, size_t size, int prot)
{
    if (size < sizeof(shm_header)) {
        return NULL;
    }
    shm_header *h = mmap(NULL, sizeof *h, prot, MAP_SHARED, fd, 0);
    return h == MAP_FAILED ? NULL : h;
}

/* Removes the segments in /dev/shm that jobs of this user left when their rank 0 died at the
 * rendezvous (mpirun ends a job's ranks with SIGKILL, say, and no launcher cleans up after it):
 * a segment's name goes when its rendezvous ends, however it ends, unless rank 0 is dead, so
 * a segment still named STALE_AFTER_S past its rendezvous deadline is such a one. (Not by
 * rank 0's pid: a container with another PID namespace may share /dev/shm.) */
static void remove_stale_segments(void)
{
    DIR *dir = opendir("/dev/shm");
    if (!dir) {
        return;
    }
    double now = clock_s(CLOCK_REALTIME);
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        char name[sizeof e->d_name + 1];
        if (strncmp(e->d_name, "shardlite-", 10) != 0) {
            continue;
        }
        snprintf(name, sizeof name, "/%s", e->d_name);
        int fd = shm_open(name, O_RDONLY, 0);
        struct stat sb, again;
        int stale = 0;
        if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_uid == getuid()) {
            /* (a header never written, or no room for one yet: rank 0 died while making it,
             * within milliseconds of the segment's last change; another version's segment is
             * left alone) */
            int unwritten_long = now > (double)sb.st_mtime + UNWRITTEN_STALE_S;
            shm_header *h = map_header(fd, (size_t)sb.st_size, PROT_READ);
            if (h) {
                uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
                stale = magic == SHM_MAGIC ? now > h->expires + STALE_AFTER_S
                        : magic == 0       ? unwritten_long
                                           : 0;
                munmap(h, sizeof *h);
            } else {
                stale = (size_t)sb.st_size < sizeof(shm_header) && unwritten_long;
            }
        }
        if (fd >= 0) {
            close(fd);
        }
        /* (the name may have been made anew since: a job with the same id) */
        int fd2 = stale ? shm_open(name, O_RDONLY, 0) : -1;
        if (fd2 >= 0) {
            if (fstat(fd2, &again) == 0 && again.st_ino == sb.st_ino) {
                shm_unlink(name);
            }
            close(fd2);
        }
    }
    closedir(dir);
}

static sl_status create_segment(shm_comm *c)
{
    remove_stale_segments();
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = shm_open(c->name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd < 0 && errno == EEXIST && attempt == 0) {
            /* left by a job that died before its rendezvous ended? */
            int old = shm_open(c->name, O_RDWR, 0600);
            int stale = 1;
            if (old >= 0) {
                struct stat sb;
                shm_header *h =
                    fstat(old, &sb) == 0 ? map_header(old, (size_t)sb.st_size, PROT_READ) : NULL;
                if (h) {
                    int32_t pid = atomic_load(&h->pids[0]);
                    stale = pid <= 0 || !alive(pid);
                    munmap(h, sizeof *h);
                }
                close(old);
            }
            if (!stale) {
                return sl_error(SL_ERR_STATE,
                                "shared-memory segment %s is in use by a live job: two jobs with "
                                "the same job id (SHARDLITE_JOB_ID)?",
                                c->name);
            }
            shm_unlink(c->name);
            continue;
        }
        if (fd < 0) {
            return sl_error(SL_ERR_IO, "cannot create shared memory %s: %s", c->name,
                            strerror(errno));
        }
        struct statvfs vfs; /* (a tmpfs without a size limit says 0 blocks) */
        if (fstatvfs(fd, &vfs) == 0 && vfs.f_blocks > 0 &&
            (uint64_t)vfs.f_bavail * vfs.f_frsize < c->total) {
            close(fd);
            shm_unlink(c->name);
            return sl_error(SL_ERR_NOMEM,
                            "/dev/shm has %llu MiB free, the %d-rank group needs %zu MiB: enlarge "
                            "it (e.g. docker --shm-size) or lower SHARDLITE_SHM_SLOT_BYTES",
                            (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20, c->n,
                            c->total >> 20);
        }
        int err = posix_fallocate(fd, 0, (off_t)c->total);
        if (err != 0) {
            close(fd);
            shm_unlink(c->name);
            return sl_error(SL_ERR_NOMEM, "cannot reserve %zu MiB of /dev/shm for %s: %s",
                            c->total >> 20, c->name, strerror(err));
        }
        c->base = mmap(NULL, c->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (c->base == MAP_FAILED) {
            c->base = NULL;
            shm_unlink(c->name);
            return sl_error(SL_ERR_IO, "cannot map %s: %s", c->name, strerror(errno));
        }
        c->hdr = (shm_header *)c->base;
        c->hdr->n = (uint32_t)c->n;
        c->hdr->slot_bytes = c->slot;
        c->hdr->total_bytes = c->total;
        c->hdr->uid = getuid();
        c->hdr->expires = clock_s(CLOCK_REALTIME) + c->timeout;
        atomic_store(&c->hdr->pids[0], (int32_t)getpid());
        sl_cpus_allowed(&c->hdr->cpus[0]);
        atomic_store(&c->hdr->attached, 1);
        atomic_store_explicit(&c->hdr->magic, SHM_MAGIC, memory_order_release);
        return SL_OK;
    }
    return sl_error(SL_ERR_IO, "cannot create shared memory %s", c->name);
}

/* Whether fd holds a segment made by a live rank 0 with other settings than this member's
 * (else it is being set up: look again); if so, says how. */
static sl_status settings_differ(shm_comm *c, int fd, size_t size)
{
    shm_header *h = map_header(fd, size, PROT_READ | PROT_WRITE);
    if (!h) {
        return SL_OK;
    }
    sl_status st = SL_OK;
    if (atomic_load_explicit(&h->magic, memory_order_acquire) == SHM_MAGIC &&
        alive(atomic_load(&h->pids[0]))) {
        st = sl_error(SL_ERR_STATE,
                      "rank %d made %s for %u ranks and %llu-byte slots, rank %d expects %d and "
                      "%zu (SHARDLITE_SHM_SLOT_BYTES differs between the ranks?)",
                      c->world_ranks[0], c->name, h->n, (unsigned long long)h->slot_bytes,
                      c->world_ranks[c->me], c->n, c->slot);
        c->hdr = h; /* rank 0, waiting at its rendezvous, stops with this message too */
        fail(c, st);
        c->hdr = NULL;
    }
    munmap(h, sizeof *h);
    return st;
}

static sl_status attach_segment(shm_comm *c)
{
    double start = now_s(), last_check = start;
    for (;;) {
        int fd = shm_open(c->name, O_RDWR, 0600);
        struct stat sb;
        if (fd >= 0 && (fstat(fd, &sb) != 0 || sb.st_uid != getuid())) {
            close(fd);
        } else if (fd >= 0 && (size_t)sb.st_size != c->total) {
            sl_status st = settings_differ(c, fd, (size_t)sb.st_size);
            close(fd);
            SL_TRY(st);
        } else if (fd >= 0) {
            c->base = mmap(NULL, c->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (c->base == MAP_FAILED) {
                c->base = NULL;
                return sl_error(SL_ERR_IO, "cannot map %s: %s", c->name, strerror(errno));
            }
            c->hdr = (shm_header *)c->base;
            double seen = now_s();
            while (atomic_load_explicit(&c->hdr->magic, memory_order_acquire) != SHM_MAGIC &&
                   now_s() - seen < 0.1) {
                sched_yield();
            }
            /* (not set up within 0.1 s, or its rank 0 is dead: left by a job that died at its
             * rendezvous, which this job's rank 0 replaces; look at the name again) */
            if (atomic_load_explicit(&c->hdr->magic, memory_order_acquire) == SHM_MAGIC &&
                alive(atomic_load(&c->hdr->pids[0]))) {
                atomic_store(&c->hdr->pids[c->me], (int32_t)getpid());
                sl_cpus_allowed(&c->hdr->cpus[c->me]);
                uint32_t seen = atomic_load(&c->hdr->attached);
                while (seen < (uint32_t)c->n &&
                       !atomic_compare_exchange_weak(&c->hdr->attached, &seen, seen + 1)) {
                }
                if (seen < (uint32_t)c->n) {
                    return SL_OK;
                }
                /* a finished rendezvous of this group (this process's previous communicator,
                 * closed while member 0 had yet to unlink the name): wait for the new one */
            }
            munmap(c->base, c->total);
            c->base = NULL;
            c->hdr = NULL;
        }
        double t = now_s();
        if (t - start > c->timeout) {
            return sl_error(SL_ERR_STATE,
                            "rank %d waited %.0f s for rank %d to create %s: is every rank of "
                            "the job running on this host?",
                            c->world_ranks[c->me], c->timeout, c->world_ranks[0], c->name);
        }
        if (check_due(t, &last_check) && sl_comm_interrupted()) {
            return sl_error(SL_ERR_INTERRUPTED,
                            "rank %d was interrupted while waiting for rank %d to create %s",
                            c->world_ranks[c->me], c->world_ranks[0], c->name);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void shm_close(void *state)
{
    shm_comm *c = state;
    if (!c) {
        return;
    }
    if (c->base) {
        munmap(c->base, c->total);
    }
    if (c->place) {
        release_place(c->place);
    }
    free(c);
}

static sl_status shm_open_group(const sl_rank_info *w, const int *ranks, int n, int me,
                                double timeout, void **state)
{
    *state = NULL;
    if (n < 1 || n > SL_COMM_MAX_RANKS) {
        return sl_error(SL_ERR_INVALID_ARG, "a group of %d ranks (1..%d supported)", n,
                        SL_COMM_MAX_RANKS);
    }
    shm_comm *c = calloc(1, sizeof *c);
    if (!c) {
        return sl_error(SL_ERR_NOMEM, "communicator: out of memory");
    }
    c->n = n;
    c->me = me;
    c->timeout = timeout;
    sl_status st = slot_bytes(&c->slot);
    if (st != SL_OK) {
        free(c);
        return st;
    }
    const char *stores = getenv("SHARDLITE_SHM_STORES");
    if (!stores || !*stores || strcmp(stores, "auto") == 0) {
        c->stores = HAVE_STREAMING_STORES ? STORES_AUTO : STORES_CACHED;
    } else if (strcmp(stores, "cached") == 0) {
        c->stores = STORES_CACHED;
    } else if (strcmp(stores, "streaming") == 0 && HAVE_STREAMING_STORES) {
        c->stores = STORES_STREAMING;
    } else {
        free(c);
        return sl_error(SL_ERR_INVALID_ARG,
                        "SHARDLITE_SHM_STORES=%s: expected auto, cached%s", stores,
                        HAVE_STREAMING_STORES ? " or streaming" : " (no streaming stores here)");
    }
    memcpy(c->world_ranks, ranks, sizeof(int) * (size_t)n);
    segment_name(c, w, ranks, n);
    layout(c); /* the size, for creating or checking the segment */
    st = claim_place(c, w);
    if (st == SL_OK) {
        st = me == 0 ? create_segment(c) : attach_segment(c);
    }
    if (st == SL_OK) {
        layout(c); /* the pointers, now that the segment is mapped */
        /* every member maps the segment before its name goes away */
        double start = now_s(), last_check = start;
        while (atomic_load(&c->hdr->attached) < (uint32_t)n && st == SL_OK) {
            st = group_failed(c);
            double t = now_s();
            if (st == SL_OK && t - start > timeout) {
                st = fail(c, sl_error(SL_ERR_STATE,
                                      "rendezvous of %d ranks on %s: only %u arrived within %.0f s",
                                      n, c->name, atomic_load(&c->hdr->attached), timeout));
            }
            if (st == SL_OK && check_due(t, &last_check) && sl_comm_interrupted()) {
                st = fail(c, sl_error(SL_ERR_INTERRUPTED,
                                      "rank %d was interrupted at the rendezvous of %d ranks on "
                                      "%s (%u arrived)",
                                      c->world_ranks[c->me], n, c->name,
                                      atomic_load(&c->hdr->attached)));
            }
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        if (me == 0) {
            shm_unlink(c->name);
        }
    }
    if (st == SL_OK) {
        /* With a CPU each, a waiting rank spins (the flag comes within microseconds); when
         * ranks share CPUs (fewer in all the members' masks, or in the cgroup's quota, than
         * ranks), the one awaited may need this CPU: yield almost at once (4 ranks on 2 cores,
         * 4 KiB all-reduce: 14 us with 256 spins, 7.5 us with 16). */
        cpu_set_t all;
        CPU_ZERO(&all);
        for (int m = 0; m < n; m++) {
            CPU_OR(&all, &all, &c->hdr->cpus[m]);
        }
        c->spins = n > sl_cpus_usable(&all) ? 16 : 256;
    }
    if (st != SL_OK) {
        shm_close(c);
        return st;
    }
    *state = c;
    return SL_OK;
}

/* Before a flag: the streaming stores before it are seen before it. */
static void stores_visible(void)
{
#if HAVE_STREAMING_STORES
    _mm_sfence();
#endif
}

/* Copies into this rank's buffer, with streaming stores or not (see STORES_AUTO); the flag set
 * after stores_visible() publishes them. */
static void copy_in(void *dst, const void *src, size_t bytes, int streaming)
{
#if HAVE_STREAMING_STORES
    if (streaming) {
        uint8_t *d = dst;
        const uint8_t *s = src;
        size_t i = 0;
        for (; ((uintptr_t)(d + i) & 15) && i < bytes; i++) {
            d[i] = s[i];
        }
        for (; i + 16 <= bytes; i += 16) {
            _mm_stream_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
        }
        memcpy(d + i, s + i, bytes - i);
        return;
    }
#endif
    (void)streaming;
    memcpy(dst, src, bytes);
}

/* ---- reductions: member order, so every rank computes the same bits ---- */

static float half_to_float(uint16_t h, int bf16)
{
    if (bf16) {
        union { uint32_t u; float f; } v = {(uint32_t)h << 16};
        return v.f;
    }
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    v.u = sign | (exp == 31 ? 0x7f800000u | man << 13 : (exp + 112) << 23 | man << 13);
    return v.f;
}

static uint16_t float_to_half(float f, int bf16)
{
    union { float f; uint32_t u; } v = {f};
    if (bf16) {
        if ((v.u & 0x7fffffffu) > 0x7f800000u) {
            return (uint16_t)(v.u >> 16 | 0x40);
        }
        return (uint16_t)((v.u + 0x7fff + (v.u >> 16 & 1)) >> 16);
    }
    uint32_t sign = v.u >> 16 & 0x8000;
    float a = fabsf(f);
    if (a != a) {
        return (uint16_t)(sign | 0x7e00);
    }
    if (a >= 65520.0f) {
        return (uint16_t)(sign | 0x7c00);
    }
    if (a < 6.103515625e-05f) {
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    union { float f; uint32_t u; } m = {a};
    uint32_t r = m.u + 0xfff + (m.u >> 13 & 1);
    return (uint16_t)(sign | (((r >> 23) - 112) << 10 | (r >> 13 & 1023)));
}

/* One pass over the output, REDUCE_CHUNK elements at a time: every source of a chunk is read
 * before the chunk is written, so `out` may be one of the sources (an in-place all-reduce reads
 * its own input where it lies). Fixed-size chunks in registers let the compiler vectorise
 * whatever the member count, and keep the reads of the other members' lines flowing (4 KiB at
 * 2 ranks, interleaved in one process: 1.28 us against 1.52 us reducing 256-element blocks into
 * a buffer copied out after each). A block at a time (REDUCE_BLOCK), `also` gets a copy of what
 * was just written. */
#define REDUCE_CHUNK 8
#define REDUCE_BLOCK 256
#define REDUCE_LOOP(T, OP)                                                                    \
    do {                                                                                      \
        T *o = out;                                                                           \
        size_t i0 = 0;                                                                        \
        for (; i0 + REDUCE_CHUNK <= count; i0 += REDUCE_CHUNK) {                              \
            T t[REDUCE_CHUNK];                                                                \
            for (int i = 0; i < REDUCE_CHUNK; i++) {                                          \
                t[i] = ((const T *)src[0])[i0 + i];                                           \
            }                                                                                 \
            for (int m = 1; m < n; m++) {                                                     \
                const T *s = (const T *)src[m] + i0;                                          \
                for (int i = 0; i < REDUCE_CHUNK; i++) {                                      \
                    T a = t[i], b = s[i];                                                     \
                    t[i] = OP;                                                                \
                }                                                                             \
            }                                                                                 \
            for (int i = 0; i < REDUCE_CHUNK; i++) {                                          \
                o[i0 + i] = t[i];                                                             \
            }                                                                                 \
            if (also && (i0 + REDUCE_CHUNK) % REDUCE_BLOCK == 0) {                            \
                copy_in((T *)also + i0 + REDUCE_CHUNK - REDUCE_BLOCK,                         \
                        o + i0 + REDUCE_CHUNK - REDUCE_BLOCK, REDUCE_BLOCK * sizeof(T),       \
                        streaming);                                                           \
            }                                                                                 \
        }                                                                                     \
        size_t copied = i0 / REDUCE_BLOCK * REDUCE_BLOCK; /* by `also`, so far */             \
        for (; i0 < count; i0++) {                                                            \
            T a = ((const T *)src[0])[i0];                                                    \
            for (int m = 1; m < n; m++) {                                                     \
                T b = ((const T *)src[m])[i0];                                                \
                a = OP;                                                                       \
            }                                                                                 \
            o[i0] = a;                                                                        \
        }                                                                                     \
        if (also && copied < count) {                                                         \
            copy_in((T *)also + copied, o + copied, (count - copied) * sizeof(T), streaming); \
        }                                                                                     \
    } while (0)

#define REDUCE_TYPED(T)                                                                       \
    switch (op) {                                                                             \
    case SL_REDUCE_SUM: REDUCE_LOOP(T, a + b); break;                                         \
    case SL_REDUCE_PROD: REDUCE_LOOP(T, a * b); break;                                        \
    case SL_REDUCE_MAX: REDUCE_LOOP(T, b > a ? b : a); break;                                 \
    case SL_REDUCE_MIN: REDUCE_LOOP(T, b < a ? b : a); break;                                 \
    }

/* Unsigned arithmetic for integer sums and products: overflow wraps instead of being UB. */
#define REDUCE_INT(T, U)                                                                      \
    switch (op) {                                                                             \
    case SL_REDUCE_SUM: REDUCE_LOOP(T, (T)((U)a + (U)b)); break;                              \
    case SL_REDUCE_PROD: REDUCE_LOOP(T, (T)((U)a * (U)b)); break;                             \
    case SL_REDUCE_MAX: REDUCE_LOOP(T, b > a ? b : a); break;                                 \
    case SL_REDUCE_MIN: REDUCE_LOOP(T, b < a ? b : a); break;                                 \
    }

/* out = the reduction of src[0..n) in member order; also (when not NULL) gets a copy, written
 * as copy_in writes. */
static void reduce(void *out, void *also, int streaming, const void *const *src, int n,
                   size_t count, sl_dtype dt, sl_reduce op)
{
    switch (dt) {
    case SL_DTYPE_FLOAT32: REDUCE_TYPED(float); break;
    case SL_DTYPE_FLOAT64: REDUCE_TYPED(double); break;
    case SL_DTYPE_INT32: REDUCE_INT(int32_t, uint32_t); break;
    case SL_DTYPE_INT64: REDUCE_INT(int64_t, uint64_t); break;
    case SL_DTYPE_INT8: REDUCE_INT(int8_t, uint8_t); break;
    case SL_DTYPE_UINT8: REDUCE_INT(uint8_t, uint8_t); break;
    case SL_DTYPE_BOOL: /* a sum is an OR, a product an AND */
        op = op == SL_REDUCE_SUM ? SL_REDUCE_MAX : op == SL_REDUCE_PROD ? SL_REDUCE_MIN : op;
        REDUCE_INT(uint8_t, uint8_t);
        break;
    case SL_DTYPE_FLOAT16:
    case SL_DTYPE_BFLOAT16: {
        /* accumulate in fp32 in member order, round once */
        int bf = dt == SL_DTYPE_BFLOAT16;
        uint16_t *o = out;
        for (size_t i = 0; i < count; i++) {
            float acc = half_to_float(((const uint16_t *)src[0])[i], bf);
            for (int m = 1; m < n; m++) {
                float b = half_to_float(((const uint16_t *)src[m])[i], bf);
                acc = op == SL_REDUCE_SUM    ? acc + b
                      : op == SL_REDUCE_PROD ? acc * b
                      : op == SL_REDUCE_MAX  ? (b > acc ? b : acc)
                                             : (b < acc ? b : acc);
            }
            o[i] = float_to_half(acc, bf);
        }
        if (also) {
            copy_in(also, out, count * sizeof(uint16_t), streaming);
        }
        break;
    }
    default: break;
    }
}

/* ---- collectives ---- */

/* Publishes this rank's input for collective seq (already in its buffer) with its
 * fingerprint, waits for every member's, and checks that they all run the same collective. */
static sl_status publish(shm_comm *c, const sl_coll_desc *d, uint64_t seq)
{
    ready_line *line = &c->ctl[c->me].ready[seq & 1];
    fingerprint *fp = &line->fp;
    *fp = (fingerprint){.seq = seq, .count = d->count, .kind = (uint32_t)d->kind,
                        .dtype = (uint32_t)d->dtype, .reduce = (uint32_t)d->reduce,
                        .root = d->root, .model = d->model};
    stores_visible();
    set_flag(c, &line->seq, seq);
    SL_TRY(wait_all(c, offsetof(member_ctl, ready) + (seq & 1) * sizeof(ready_line), seq,
                    sl_coll_name(d->kind)));
    for (int m = 0; m < c->n; m++) {
        const fingerprint *o = &c->ctl[m].ready[seq & 1].fp;
        if (o->seq != seq || o->kind != fp->kind || o->dtype != fp->dtype ||
            o->count != fp->count || o->reduce != fp->reduce || o->root != fp->root ||
            o->model != fp->model) {
            char mine[128], theirs[128];
            sl_coll_desc od = {.kind = (sl_coll)o->kind, .dtype = (sl_dtype)o->dtype,
                               .count = o->count, .reduce = (sl_reduce)o->reduce,
                               .root = o->root, .model = o->model};
            return fail(c, sl_error(SL_ERR_STATE,
                                    "collective mismatch at #%llu: rank %d runs %s but rank %d "
                                    "runs %s (#%llu): the ranks' models differ",
                                    (unsigned long long)seq, c->world_ranks[c->me],
                                    sl_coll_str(d, mine, sizeof mine), c->world_ranks[m],
                                    sl_coll_str(&od, theirs, sizeof theirs),
                                    (unsigned long long)o->seq));
        }
    }
    return SL_OK;
}

static size_t one_shot_max(const shm_comm *c)
{
    return c->n == 2 ? ONE_SHOT_MAX_2 : ONE_SHOT_MAX_N;
}

/* Member m's share [lo, hi) of n elements in a two-shot all-reduce (may be empty). */
static void share_of(const shm_comm *c, size_t n, int m, size_t *lo, size_t *hi)
{
    size_t share = (n + (size_t)c->n - 1) / (size_t)c->n;
    *lo = share * (size_t)m < n ? share * (size_t)m : n;
    *hi = *lo + share < n ? *lo + share : n;
}

/* The other members read this rank's input from its buffer; it reads its own from `in`
 * (private memory: no copy). Two-shot pieces publish only the shares the others reduce. */
static sl_status run_allreduce(shm_comm *c, const sl_coll_desc *d, const void *in, void *out,
                               int streaming)
{
    size_t esz = sl_dtype_size(d->dtype);
    size_t per_piece = c->slot / esz;
    const void *src[SL_COMM_MAX_RANKS];
    for (size_t off = 0; off < d->count || off == 0; off += per_piece) {
        size_t n = d->count - off < per_piece ? d->count - off : per_piece;
        uint64_t seq = ++c->seq;
        const char *mine = (const char *)in + off * esz;
        char *dst = (char *)out + off * esz;
        if (n * esz <= one_shot_max(c) || n < (size_t)c->n) {
            copy_in(buffer(c, c->me, 0, seq), mine, n * esz, streaming);
            SL_TRY(publish(c, d, seq));
            for (int m = 0; m < c->n; m++) {
                src[m] = buffer(c, m, 0, seq);
            }
            src[c->me] = mine;
            reduce(dst, NULL, 0, src, c->n, n, d->dtype, d->reduce);
        } else {
            /* two-shot: member i reduces share i, then everyone gathers the shares */
            size_t lo, hi;
            share_of(c, n, c->me, &lo, &hi);
            uint8_t *buf = buffer(c, c->me, 0, seq);
            copy_in(buf, mine, lo * esz, streaming);
            copy_in(buf + hi * esz, mine + hi * esz, (n - hi) * esz, streaming);
            SL_TRY(publish(c, d, seq));
            for (int m = 0; m < c->n; m++) {
                src[m] = buffer(c, m, 0, seq) + lo * esz;
            }
            src[c->me] = mine + lo * esz;
            if (hi > lo) { /* the share into the output, and for the others into the segment */
                reduce(dst + lo * esz, buffer(c, c->me, 1, seq) + lo * esz, streaming, src, c->n,
                       hi - lo, d->dtype, d->reduce);
            }
            stores_visible();
            set_flag(c, &c->ctl[c->me].reduced, seq);
            SL_TRY(wait_all(c, offsetof(member_ctl, reduced), seq, "its share of a reduction"));
            for (int m = 0; m < c->n; m++) {
                size_t mlo, mhi;
                share_of(c, n, m, &mlo, &mhi);
                if (m != c->me && mhi > mlo) {
                    memcpy(dst + mlo * esz, buffer(c, m, 1, seq) + mlo * esz, (mhi - mlo) * esz);
                }
            }
        }
        if (d->count == 0) {
            break;
        }
    }
    return SL_OK;
}

/* ALLGATHER, ALLTOALL, REDUCE_SCATTER, BROADCAST: each member publishes `chunks` chunks of
 * `chunk` bytes; pieces take `piece` bytes of every chunk at a time. */
static sl_status run_chunked(shm_comm *c, const sl_coll_desc *d, const void *in, void *out,
                             int streaming)
{
    size_t esz = sl_dtype_size(d->dtype);
    int chunks = d->kind == SL_COLL_ALLTOALL || d->kind == SL_COLL_REDUCE_SCATTER ? c->n : 1;
    size_t chunk = d->count * esz;
    size_t piece = c->slot / (size_t)chunks / esz * esz;
    const void *src[SL_COMM_MAX_RANKS];
    for (size_t off = 0; off < chunk || off == 0; off += piece) {
        size_t len = chunk - off < piece ? chunk - off : piece;
        uint64_t seq = ++c->seq;
        int publishing = d->kind != SL_COLL_BROADCAST || c->me == d->root;
        /* gather this piece of each chunk contiguously into the buffer */
        if (publishing) {
            uint8_t *buf = buffer(c, c->me, 0, seq);
            const uint8_t *src_in = d->kind == SL_COLL_BROADCAST ? out : in;
            for (int k = 0; k < chunks; k++) {
                copy_in(buf + (size_t)k * len, src_in + (size_t)k * chunk + off, len, streaming);
            }
        }
        SL_TRY(publish(c, d, seq));
        uint8_t *o = out;
        switch (d->kind) {
        case SL_COLL_ALLGATHER:
            for (int m = 0; m < c->n; m++) {
                memcpy(o + (size_t)m * chunk + off, buffer(c, m, 0, seq), len);
            }
            break;
        case SL_COLL_ALLTOALL:
            for (int m = 0; m < c->n; m++) {
                memcpy(o + (size_t)m * chunk + off, buffer(c, m, 0, seq) + (size_t)c->me * len,
                       len);
            }
            break;
        case SL_COLL_REDUCE_SCATTER:
            for (int m = 0; m < c->n; m++) {
                src[m] = buffer(c, m, 0, seq) + (size_t)c->me * len;
            }
            reduce(o + off, NULL, 0, src, c->n, len / esz, d->dtype, d->reduce);
            break;
        default: /* BROADCAST */
            if (c->me != d->root) {
                memcpy(o + off, buffer(c, d->root, 0, seq), len);
            }
            break;
        }
        if (chunk == 0) {
            break;
        }
    }
    return SL_OK;
}

/* A Send waits only while its peer has P2P_SLOTS pieces still to receive: a rank may send
 * several small messages before its peer receives the first (as MPI's buffered sends let it). */
static sl_status run_p2p(shm_comm *c, const sl_coll_desc *d, const void *in, void *out)
{
    size_t bytes = d->count * sl_dtype_size(d->dtype);
    int send = d->kind == SL_COLL_SEND;
    size_t pair = (size_t)(send ? c->me * c->n + d->peer : d->peer * c->n + c->me);
    p2p_ctl *pc = &c->p2p[pair];
    for (size_t off = 0; off < bytes || off == 0; off += P2P_SLOT_BYTES) {
        size_t len = bytes - off < P2P_SLOT_BYTES ? bytes - off : P2P_SLOT_BYTES;
        uint64_t k = send ? ++c->sent[d->peer] : ++c->received[d->peer], v;
        size_t slot = (size_t)((k - 1) % P2P_SLOTS);
        uint8_t *box = c->p2p_data + (pair * P2P_SLOTS + slot) * P2P_SLOT_BYTES;
        if (send) {
            SL_TRY(wait_flag(c, &pc->acked, k > P2P_SLOTS ? k - P2P_SLOTS : 0, d->peer, "Send",
                             &v));
            memcpy(box, (const uint8_t *)in + off, len);
            pc->bytes[slot] = bytes;
            pc->tag[slot] = d->tag;
            set_flag(c, &pc->sent, k);
        } else {
            SL_TRY(wait_flag(c, &pc->sent, k, d->peer, "Receive", &v));
            if (pc->bytes[slot] != bytes || pc->tag[slot] != d->tag) {
                return fail(c, sl_error(SL_ERR_STATE,
                                        "Receive from rank %d expects %zu bytes with tag %d, "
                                        "rank %d sent %llu bytes with tag %d",
                                        c->world_ranks[d->peer], bytes, d->tag,
                                        c->world_ranks[d->peer],
                                        (unsigned long long)pc->bytes[slot], pc->tag[slot]));
            }
            memcpy((uint8_t *)out + off, box, len);
            set_flag(c, &pc->acked, k);
        }
        if (bytes == 0) {
            break;
        }
    }
    return SL_OK;
}

typedef sl_status (*copying_fn)(shm_comm *c, const sl_coll_desc *d, const void *in, void *out,
                                int streaming);

/* Runs a collective that copies into the buffers, written the way chosen for its size. */
static sl_status run_copying(shm_comm *c, const sl_coll_desc *d, const void *in, void *out,
                             copying_fn run)
{
    size_t bytes = d->count * sl_dtype_size(d->dtype);
    int b = 0;
    while (b < 31 && ((size_t)2 << b) <= bytes) {
        b++;
    }
    uint32_t chosen = atomic_load_explicit(&c->hdr->streaming, memory_order_relaxed);
    int streaming = c->stores == STORES_AUTO ? (int)(chosen >> b & 1)
                                             : c->stores == STORES_STREAMING;
    /* member 0 times one small call in TUNE_SAMPLE (reading the clock costs ~30 ns, 3% of a
     * 4 KiB all-reduce), every large one */
    uint32_t sample = bytes < TUNE_SAMPLE_BELOW ? TUNE_SAMPLE : 1;
    if (c->me != 0 || c->stores != STORES_AUTO || c->seen[b]++ % sample != 0) {
        return run(c, d, in, out, streaming);
    }
    double t0 = now_s();
    SL_TRY(run(c, d, in, out, streaming));
    if (sl_tuner_add(&c->tune[b], streaming, now_s() - t0) != streaming) {
        if (streaming) {
            atomic_fetch_and(&c->hdr->streaming, ~(1u << b));
        } else {
            atomic_fetch_or(&c->hdr->streaming, 1u << b);
        }
    }
    return SL_OK;
}

static int shm_failed(void *state)
{
    shm_comm *c = state;
    return atomic_load(&c->hdr->aborted) != 0;
}

static sl_status shm_run(void *state, const sl_coll_desc *d, const void *in, void *out)
{
    shm_comm *c = state;
    SL_TRY(group_failed(c));
    switch (d->kind) {
    case SL_COLL_ALLREDUCE: return run_copying(c, d, in, out, run_allreduce);
    case SL_COLL_SEND:
    case SL_COLL_RECV: return run_p2p(c, d, in, out);
    case SL_COLL_BARRIER: return publish(c, d, ++c->seq);
    default: return run_copying(c, d, in, out, run_chunked);
    }
}

const sl_comm_backend sl_comm_shm = {
    .name = "shm",
    .open = shm_open_group,
    .close = shm_close,
    .run = shm_run,
    .failed = shm_failed,
};
