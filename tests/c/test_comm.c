/* The shared-memory communicator with real processes (fork): every collective and reduction at
 * 2 and 4 ranks against plain loops (same member order, so bit-exact), bit-identical results
 * across ranks, sub-groups, point-to-point, two jobs at once, a collective mismatch, a dead
 * peer, one claimant at a time, a group opened again at once, segments of mode 0600, a
 * segment too big for /dev/shm, no /dev/shm entry left behind, a second job with a running
 * job's id, a segment left by a killed rank, ranks with different slot sizes, and the
 * deadline's setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"

#define MAX_N 4

static float value(int rank, int call, size_t i)
{
    uint64_t x = ((uint64_t)rank * 1000003u + (uint64_t)call * 7919u + i) * 0x9E3779B97F4A7C15ull;
    return (float)((x >> 40) % 2001) / 100.0f - 10.0f;
}

static void fill(float *v, size_t n, int rank, int call)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = value(rank, call, i);
    }
}

static uint64_t checksum(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    }
    return h;
}

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "rank %d: %s:%d: %s (%s)\n", rank, __FILE__, __LINE__, #cond,   \
                    sl_last_error());                                                      \
            _exit(1);                                                                      \
        }                                                                                  \
    } while (0)

static float apply(sl_reduce op, float a, float b)
{
    switch (op) {
    case SL_REDUCE_SUM: return a + b;
    case SL_REDUCE_PROD: return a * b;
    case SL_REDUCE_MAX: return b > a ? b : a;
    default: return b < a ? b : a;
    }
}

/* Runs every collective on the world communicator; returns a checksum of all results that
 * must be the same on every rank. */
static uint64_t run_all(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    CHECK(sl_comm_size(c) == n && sl_comm_rank(c) == rank);
    uint64_t sum = 0;
    int call = 0;
    const size_t counts[] = {1, 1000, 70000, 300001};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        size_t count = counts[ci];
        float *in = malloc(count * sizeof *in * MAX_N), *out = malloc(count * sizeof *out * MAX_N);
        float *want = malloc(count * sizeof *want * MAX_N), *other = malloc(count * sizeof *other);
        CHECK(in && out && want && other);
        for (int op = SL_REDUCE_SUM; op <= SL_REDUCE_PROD; op++) {
            call++;
            fill(in, count, rank, call);
            sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32,
                              .count = count, .reduce = (sl_reduce)op};
            CHECK(sl_comm_run(c, &d, in, out) == SL_OK);
            fill(want, count, 0, call);
            for (int m = 1; m < n; m++) {
                fill(other, count, m, call);
                for (size_t i = 0; i < count; i++) {
                    want[i] = apply((sl_reduce)op, want[i], other[i]);
                }
            }
            CHECK(memcmp(out, want, count * sizeof *out) == 0);
            sum ^= checksum(out, count * sizeof *out);
            /* in place: the same result */
            fill(out, count, rank, call);
            CHECK(sl_comm_run(c, &d, out, out) == SL_OK);
            CHECK(memcmp(out, want, count * sizeof *out) == 0);
        }
        /* AllGather: rank order */
        call++;
        fill(in, count, rank, call);
        sl_coll_desc g = {.kind = SL_COLL_ALLGATHER, .dtype = SL_DTYPE_FLOAT32, .count = count};
        CHECK(sl_comm_run(c, &g, in, out) == SL_OK);
        for (int m = 0; m < n; m++) {
            fill(want + (size_t)m * count, count, m, call);
        }
        CHECK(memcmp(out, want, (size_t)n * count * sizeof *out) == 0);
        sum ^= checksum(out, (size_t)n * count * sizeof *out);
        /* ReduceScatter: chunk `rank` of the sum of everyone's n chunks */
        call++;
        for (int m = 0; m < n; m++) {
            fill(in + (size_t)m * count, count, rank * 16 + m, call);
        }
        sl_coll_desc rs = {.kind = SL_COLL_REDUCE_SCATTER, .dtype = SL_DTYPE_FLOAT32,
                           .count = count, .reduce = SL_REDUCE_SUM};
        CHECK(sl_comm_run(c, &rs, in, out) == SL_OK);
        fill(want, count, 0 * 16 + rank, call);
        for (int m = 1; m < n; m++) {
            fill(other, count, m * 16 + rank, call);
            for (size_t i = 0; i < count; i++) {
                want[i] += other[i];
            }
        }
        CHECK(memcmp(out, want, count * sizeof *out) == 0);
        /* AlltoAll: chunk j of rank i -> chunk i of rank j */
        call++;
        for (int m = 0; m < n; m++) {
            fill(in + (size_t)m * count, count, rank * 16 + m, call);
        }
        sl_coll_desc a2a = {.kind = SL_COLL_ALLTOALL, .dtype = SL_DTYPE_FLOAT32, .count = count};
        CHECK(sl_comm_run(c, &a2a, in, out) == SL_OK);
        for (int m = 0; m < n; m++) {
            fill(want + (size_t)m * count, count, m * 16 + rank, call);
        }
        CHECK(memcmp(out, want, (size_t)n * count * sizeof *out) == 0);
        /* Broadcast from the last rank, in place */
        call++;
        fill(out, count, rank, call);
        sl_coll_desc b = {.kind = SL_COLL_BROADCAST, .dtype = SL_DTYPE_FLOAT32, .count = count,
                          .root = n - 1};
        CHECK(sl_comm_run(c, &b, NULL, out) == SL_OK);
        fill(want, count, n - 1, call);
        CHECK(memcmp(out, want, count * sizeof *out) == 0);
        /* Send/Receive around the ring */
        call++;
        fill(in, count, rank, call);
        sl_coll_desc s = {.kind = SL_COLL_SEND, .dtype = SL_DTYPE_FLOAT32, .count = count,
                          .peer = (rank + 1) % n, .tag = 7};
        sl_coll_desc r = {.kind = SL_COLL_RECV, .dtype = SL_DTYPE_FLOAT32, .count = count,
                          .peer = (rank + n - 1) % n, .tag = 7};
        if (rank % 2 == 0) {
            CHECK(sl_comm_run(c, &s, in, NULL) == SL_OK);
            CHECK(sl_comm_run(c, &r, NULL, out) == SL_OK);
        } else {
            CHECK(sl_comm_run(c, &r, NULL, out) == SL_OK);
            CHECK(sl_comm_run(c, &s, in, NULL) == SL_OK);
        }
        fill(want, count, (rank + n - 1) % n, call);
        CHECK(memcmp(out, want, count * sizeof *out) == 0);
        /* every rank sends two messages (of up to a mailbox slot, 64 KiB) before it receives
         * any: the second Send must not wait for the peer's first Receive */
        if (count * sizeof(float) <= (64u << 10)) {
            call++;
            fill(in, count, rank, call);
            fill(in + count, count, rank + 100, call);
            s.tag = r.tag = 8;
            CHECK(sl_comm_run(c, &s, in, NULL) == SL_OK);
            s.tag = r.tag = 9;
            CHECK(sl_comm_run(c, &s, in + count, NULL) == SL_OK);
            r.tag = 8;
            CHECK(sl_comm_run(c, &r, NULL, out) == SL_OK);
            r.tag = 9;
            CHECK(sl_comm_run(c, &r, NULL, out + count) == SL_OK);
            fill(want, count, (rank + n - 1) % n, call);
            fill(want + count, count, (rank + n - 1) % n + 100, call);
            CHECK(memcmp(out, want, 2 * count * sizeof *out) == 0);
        }
        free(in);
        free(out);
        free(want);
        free(other);
    }
    /* integer and double sums */
    int64_t iv[3] = {rank, -rank * 1000, (int64_t)1 << 40}, iout[3];
    sl_coll_desc di = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_INT64, .count = 3};
    CHECK(sl_comm_run(c, &di, iv, iout) == SL_OK);
    CHECK(iout[0] == (int64_t)n * (n - 1) / 2 && iout[1] == -1000 * iout[0] &&
          iout[2] == ((int64_t)n << 40));
    double dv = 0.1 * rank, dout;
    sl_coll_desc dd = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT64, .count = 1,
                       .reduce = SL_REDUCE_MAX};
    CHECK(sl_comm_run(c, &dd, &dv, &dout) == SL_OK);
    CHECK(dout == 0.1 * (n - 1));
    /* bools: a sum is an OR, a product an AND (bytes 0 or 1, never a count) */
    uint8_t bv[8], bout[8];
    for (int i = 0; i < 8; i++) {
        bv[i] = i % n == rank || i == 7;
    }
    sl_coll_desc db = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_BOOL, .count = 8};
    CHECK(sl_comm_run(c, &db, bv, bout) == SL_OK);
    for (int i = 0; i < 8; i++) {
        CHECK(bout[i] == 1);
    }
    db.reduce = SL_REDUCE_PROD;
    CHECK(sl_comm_run(c, &db, bv, bout) == SL_OK);
    for (int i = 0; i < 8; i++) {
        CHECK(bout[i] == (i == 7));
    }
    /* a sub-group of the even ranks */
    if (n == 4) {
        int evens[2] = {0, 2};
        if (rank % 2 == 0) {
            sl_comm *e;
            CHECK(sl_comm_get(evens, 2, &e) == SL_OK);
            CHECK(sl_comm_size(e) == 2 && sl_comm_rank(e) == rank / 2);
            float x = (float)rank + 1, y;
            sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 1};
            CHECK(sl_comm_run(e, &d, &x, &y) == SL_OK);
            CHECK(y == 4.0f);
            sl_comm_release(e);
        }
    }
    sl_comm_release(c);
    return sum;
}

/* Waits for the n ranks of job, started by run_job(..., wait_now = 0) (sums: their pipes):
 * returns how many exited 0 and replaces each pipe by the sum read from it. */
static int collect(const char *job, int n, uint64_t *sums, const pid_t *pids)
{
    int ok = 0;
    for (int r = 0; r < n; r++) {
        int status, fd = (int)sums[r];
        waitpid(pids[r], &status, 0);
        if (read(fd, &sums[r], sizeof sums[r]) != sizeof sums[r]) {
            sums[r] = 0;
        }
        close(fd);
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!WIFEXITED(status)) {
            print_message("rank %d of %s: killed by signal %d\n", r, job, WTERMSIG(status));
        }
    }
    return ok;
}

/* Forks n ranks of job `job`, each running body; returns how many exited 0 and fills sums
 * (wait_now = 0: returns at once, sums holding the pipes for collect). */
typedef uint64_t (*rank_body)(int rank, int n);

static int run_job(const char *job, int n, rank_body body, uint64_t *sums, pid_t *pids,
                   int wait_now)
{
    int fds[MAX_N][2];
    for (int r = 0; r < n; r++) {
        assert_int_equal(pipe(fds[r]), 0);
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            /* a crash must end the child, not land in cmocka's handler (and its test loop) */
            int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
            for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
                signal(sigs[k], SIG_DFL);
            }
            close(fds[r][0]);
            int rank = r;
            CHECK(sl_comm_configure(r, n, job, "shm") == SL_OK);
            uint64_t s = body(r, n);
            CHECK(write(fds[r][1], &s, sizeof s) == sizeof s);
            _exit(0);
        }
        close(fds[r][1]);
    }
    if (!wait_now) {
        for (int r = 0; r < n; r++) {
            sums[r] = (uint64_t)fds[r][0]; /* the caller collects later */
        }
        return 0;
    }
    for (int r = 0; r < n; r++) {
        sums[r] = (uint64_t)fds[r][0];
    }
    return collect(job, n, sums, pids);
}

static int shm_entries(const char *job)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "shardlite-%s-", job);
    DIR *d = opendir("/dev/shm");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_all_collectives(void **state)
{
    (void)state;
    /* buffers written through the cache, then with streaming stores */
    for (int k = 0; k < 4; k++) {
        int n = k % 2 ? 4 : 2, streaming = k / 2;
        setenv("SHARDLITE_SHM_STORES", streaming ? "streaming" : "cached", 1);
        char job[64];
        snprintf(job, sizeof job, "t%d_all%d_%d", (int)getpid(), n, streaming);
        uint64_t sums[MAX_N];
        pid_t pids[MAX_N];
        assert_int_equal(run_job(job, n, run_all, sums, pids, 1), n);
        for (int r = 1; r < n; r++) {
            assert_true(sums[r] == sums[0]); /* bit-identical on every rank */
        }
        assert_int_equal(shm_entries(job), 0);
    }
    unsetenv("SHARDLITE_SHM_STORES");
}

static uint64_t open_with_bad_stores(int rank, int n)
{
    (void)n;
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_INVALID_ARG);
    CHECK(strstr(sl_last_error(), "SHARDLITE_SHM_STORES=fast") != NULL);
    return 1;
}

/* Runs body on 2 ranks of a new job; whether both succeeded and left no segment behind. */
static int run_pair(const char *tag, rank_body body)
{
    char job[64];
    snprintf(job, sizeof job, "t%d_%s", (int)getpid(), tag);
    uint64_t sums[MAX_N];
    pid_t pids[MAX_N];
    return run_job(job, 2, body, sums, pids, 1) == 2 && shm_entries(job) == 0;
}

static void test_bad_stores_setting(void **state)
{
    (void)state;
    setenv("SHARDLITE_SHM_STORES", "fast", 1);
    assert_true(run_pair("stores", open_with_bad_stores));
    unsetenv("SHARDLITE_SHM_STORES");
}

/* A float32 sum of `count` values from every rank (this rank's filled in at `in`), checked
 * exactly (small multiples of 1/2: exact in any order). */
static void sum_and_check(sl_comm *c, float *in, float *out, size_t count, int rank, int n,
                          int call)
{
    for (size_t i = 0; i < count; i++) {
        in[i] = (float)(rank + 1) * 0.5f + (float)((i + (size_t)call) % 7);
    }
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = count,
                      .reduce = SL_REDUCE_SUM};
    CHECK(sl_comm_run(c, &d, in, out) == SL_OK);
    for (size_t i = 0; i < count; i++) {
        float want = (float)(n * (n + 1)) * 0.25f + (float)n * (float)((i + (size_t)call) % 7);
        CHECK(out[i] == want);
    }
}

/* Many small all-reduces with the stores chosen by measurement (the tuner switches ways
 * during them): every result exact. */
static uint64_t run_many(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    enum { COUNT = 1001, CALLS = 3000 };
    float in[COUNT], out[COUNT];
    for (int call = 0; call < CALLS; call++) {
        sum_and_check(c, in, out, COUNT, rank, n, call);
    }
    sl_comm_release(c);
    return 1;
}

static void test_measured_stores(void **state)
{
    (void)state;
    assert_true(run_pair("auto", run_many));
}

static void test_two_jobs_at_once(void **state)
{
    (void)state;
    char a[64], b[64];
    snprintf(a, sizeof a, "t%d_jobA", (int)getpid());
    snprintf(b, sizeof b, "t%d_jobB", (int)getpid());
    uint64_t fa[MAX_N], fb[MAX_N];
    pid_t pa[MAX_N], pb[MAX_N];
    run_job(a, 2, run_all, fa, pa, 0);
    run_job(b, 2, run_all, fb, pb, 0);
    assert_int_equal(collect(a, 2, fa, pa) + collect(b, 2, fb, pb), 4);
    assert_int_equal(fa[0], fa[1]);
    assert_int_equal(fb[0], fb[1]);
    assert_int_equal(shm_entries(a) + shm_entries(b), 0);
}

static uint64_t mismatched(int rank, int n)
{
    (void)n;
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    float x[11] = {0}, y[22];
    sl_coll_desc d = {.kind = rank == 0 ? SL_COLL_ALLREDUCE : SL_COLL_ALLGATHER,
                      .dtype = SL_DTYPE_FLOAT32, .count = rank == 0 ? 10 : 11};
    sl_status st = sl_comm_run(c, &d, x, y);
    CHECK(st == SL_ERR_STATE);
    CHECK(strstr(sl_last_error(), "mismatch") || strstr(sl_last_error(), "failed"));
    CHECK(strstr(sl_last_error(), "AllReduce(sum, float32, 10)") &&
          strstr(sl_last_error(), "AllGather(float32, 11)"));
    /* the group stays failed: a matching collective after it fails too */
    sl_coll_desc same = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 10};
    CHECK(sl_comm_run(c, &same, x, y) == SL_ERR_STATE);
    /* asked for again (a model built after the failure), the group is a new one: a new
     * rendezvous, working collectives */
    sl_comm *fresh;
    CHECK(sl_comm_get(NULL, 0, &fresh) == SL_OK && fresh != c);
    float one[10];
    for (int i = 0; i < 10; i++) {
        one[i] = (float)(rank + 1);
    }
    CHECK(sl_comm_run(fresh, &same, one, y) == SL_OK && y[0] == 3.0f && y[9] == 3.0f);
    sl_comm_release(fresh);
    sl_comm_release(c);
    return 1;
}

static void test_mismatch_names_both_ops(void **state)
{
    (void)state;
    assert_true(run_pair("mismatch", mismatched));
}

/* A communicator serves one claimant at a time: a second fails until the first lets go, and
 * letting go of what another holds does nothing. */
static uint64_t claims(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    int a, b, na = 0, nb = 0;
    CHECK(sl_comm_claim(c, &a, &na) == SL_OK && na == 1); /* numbered at its first claim */
    CHECK(sl_comm_claim(c, &a, &na) == SL_OK && na == 1);
    CHECK(sl_comm_claim(c, &b, &nb) == SL_ERR_STATE && nb == 0);
    char want[128];
    snprintf(want, sizeof want, "rank %d: another model", rank);
    CHECK(strstr(sl_last_error(), want) && strstr(sl_last_error(), "one distributed model"));
    sl_comm_unclaim(c, &b);
    CHECK(sl_comm_claim(c, &b, &nb) == SL_ERR_STATE);
    float x[8], y[8];
    sum_and_check(c, x, y, 8, rank, n, 0); /* the claimant's collectives run */
    sl_comm_unclaim(c, &a);
    CHECK(sl_comm_claim(c, &b, &nb) == SL_OK && nb == 2);
    sl_comm_unclaim(c, &b);
    /* ranks running different models: the fingerprints tell model 1 from model 2 */
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 8,
                      .model = rank + 1};
    CHECK(sl_comm_run(c, &d, x, y) == SL_ERR_STATE);
    /* this rank's message, or the other's when it found the mismatch first ("rank 1 failed:
     * ..."): both name each rank's model */
    CHECK(strstr(sl_last_error(), "collective mismatch"));
    for (int r = 0; r < n; r++) {
        snprintf(want, sizeof want, "rank %d runs AllReduce(sum, float32, 8) of model #%d", r,
                 r + 1);
        CHECK(strstr(sl_last_error(), want));
    }
    sl_comm_release(c);
    return 1;
}

static void test_one_claimant_at_a_time(void **state)
{
    (void)state;
    assert_true(run_pair("claims", claims));
}

/* A group closed and opened again at once, 200 times, member 0 sharing its CPU with a busy
 * process: a member back before member 0 has unlinked the last segment's name must not join
 * that finished rendezvous; every rendezvous pairs the members and every sum is exact. */
static uint64_t reopened(int rank, int n)
{
    /* member 0 shares its CPU with a busy process, so it is often late to unlink */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(rank % 2 && sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0, &one);
    sched_setaffinity(0, sizeof one, &one);
    pid_t parent = getpid(), busy = rank == 0 ? fork() : -1;
    if (busy == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* ends with rank 0, even when a check fails */
        if (getppid() != parent) {
            _exit(0);
        }
        for (;;) {
        }
    }
    for (int call = 0; call < 200; call++) {
        sl_comm *c;
        CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
        float x[4], y[4];
        if (call % 2) { /* without a collective, member 1 may be back before the unlink */
            sum_and_check(c, x, y, 4, rank, n, call);
        }
        sl_comm_release(c);
    }
    if (busy > 0) {
        kill(busy, SIGKILL);
        waitpid(busy, NULL, 0);
    }
    return 1;
}

static void test_group_reopened_at_once(void **state)
{
    (void)state;
    setenv("SHARDLITE_COMM_TIMEOUT", "5", 1);
    assert_true(run_pair("reopen", reopened));
    unsetenv("SHARDLITE_COMM_TIMEOUT");
}

static uint64_t one_dies(int rank, int n)
{
    (void)n;
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    if (rank == 1) {
        _exit(3); /* dies before its first collective */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    float x = 1, y;
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 1};
    CHECK(sl_comm_run(c, &d, &x, &y) == SL_ERR_STATE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(strstr(sl_last_error(), "rank 1") && strstr(sl_last_error(), "died"));
    CHECK(t1.tv_sec - t0.tv_sec < 5); /* noticed at once, not at the deadline */
    sl_comm_release(c);
    return 1;
}

static void test_dead_peer_fails_fast(void **state)
{
    (void)state;
    char job[64];
    snprintf(job, sizeof job, "t%d_dead", (int)getpid());
    uint64_t sums[MAX_N];
    pid_t pids[MAX_N];
    assert_int_equal(run_job(job, 2, one_dies, sums, pids, 1), 1); /* rank 0 passed */
    assert_int_equal(shm_entries(job), 0);
}

/* The interrupt check says so after ~50 ms of waiting (5 calls, one per ~10 ms). */
static int calls_to_interrupt;
static int interrupt_soon(void)
{
    return ++calls_to_interrupt >= 5;
}

/* Rank 0 waits in an all-reduce for rank 1, which comes 1 s late: the interrupt check ends
 * rank 0's wait at once, and rank 1's all-reduce then fails naming the interruption. */
static uint64_t interrupted(int rank, int n)
{
    (void)n;
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    float x[4] = {0}, y[4];
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 4};
    if (rank == 0) {
        sl_set_interrupt_check(interrupt_soon);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK(sl_comm_run(c, &d, x, y) == SL_ERR_INTERRUPTED);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 < 0.5);
        CHECK(strstr(sl_last_error(), "rank 0 was interrupted while waiting for rank 1"));
        sl_set_interrupt_check(NULL);
    } else {
        sleep(1);
        CHECK(sl_comm_run(c, &d, x, y) == SL_ERR_STATE);
        CHECK(strstr(sl_last_error(), "rank 0 failed: rank 0 was interrupted"));
    }
    sl_comm_release(c);
    return 1;
}

static void test_interrupted_wait(void **state)
{
    (void)state;
    assert_true(run_pair("intr", interrupted));
}

static uint64_t alone(int rank, int n)
{
    (void)n;
    sl_comm *c;
    /* rank 1 never comes: rank 0 must give up at the deadline with a clear message */
    if (rank == 0) {
        CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_STATE);
        CHECK(strstr(sl_last_error(), "rendezvous") || strstr(sl_last_error(), "waited"));
    }
    return 1;
}

/* The first member's segment as stat sees it; 0 when job has none. */
static int segment_stat(const char *job, struct stat *sb)
{
    char prefix[128], path[512];
    snprintf(prefix, sizeof prefix, "shardlite-%s-", job);
    DIR *d = opendir("/dev/shm");
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
            found = stat(path, sb) == 0;
        }
    }
    if (d) {
        closedir(d);
    }
    return found;
}

/* While rank 0 waits at the rendezvous for a rank 1 that never comes, its segment can be read
 * and written by its user alone; at the deadline rank 0 gives up and removes it. */
static void test_missing_peer_times_out(void **state)
{
    (void)state;
    setenv("SHARDLITE_COMM_TIMEOUT", "1", 1);
    char job[64];
    snprintf(job, sizeof job, "t%d_alone", (int)getpid());
    uint64_t fds[MAX_N];
    pid_t pids[MAX_N];
    mode_t umask_was = umask(0); /* the mode is the library's own, not cut by the umask */
    run_job(job, 2, alone, fds, pids, 0);
    umask(umask_was);
    struct stat sb;
    int seen = 0; /* rank 0 waits for 1 s from its start; look for up to 10 s */
    for (int i = 0; i < 1000 && !(seen = segment_stat(job, &sb)); i++) {
        usleep(10000);
    }
    assert_int_equal(collect(job, 2, fds, pids), 2);
    assert_true(seen);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_uid, getuid());
    assert_int_equal(shm_entries(job), 0);
    unsetenv("SHARDLITE_COMM_TIMEOUT");
}

/* A group whose segment does not fit in /dev/shm's free space fails when it is opened (at
 * build), naming the sizes, instead of failing with SIGBUS later; nothing is left behind. */
static uint64_t too_big(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_NOMEM);
    char want[64];
    snprintf(want, sizeof want, "the %d-rank group needs", n);
    CHECK(strstr(sl_last_error(), "/dev/shm has") && strstr(sl_last_error(), want));
    return 1;
}

static void test_segment_too_big_for_dev_shm(void **state)
{
    (void)state;
    struct statvfs vfs;
    assert_int_equal(statvfs("/dev/shm", &vfs), 0);
    /* each member takes 4 buffers of 1 GiB: enough members to need more than is free */
    unsigned long long need = (unsigned long long)vfs.f_bavail * vfs.f_frsize / (4ull << 30) + 1;
    need = need < 2 ? 2 : need; /* a group of one rank has no segment */
    need = need + 1;
    if (need > SL_COMM_MAX_RANKS || vfs.f_blocks == 0) {
        skip(); /* /dev/shm has over 256 GiB free, or no size limit */
    }
    setenv("SHARDLITE_SHM_SLOT_BYTES", "1073741824", 1);
    setenv("SHARDLITE_COMM_TIMEOUT", "1", 1);
    char job[64];
    snprintf(job, sizeof job, "t%d_big", (int)getpid());
    /* rank 0 alone: it creates the segment, before waiting for anyone */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* should the free-space check fail, files over 64 MiB fail instead of filling RAM */
        struct rlimit cap = {64 << 20, 64 << 20};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &cap);
        int rank = 0; /* for CHECK */
        CHECK(sl_comm_configure(rank, (int)need, job, "shm") == SL_OK);
        _exit(too_big(rank, (int)need) == 1 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    unsetenv("SHARDLITE_SHM_SLOT_BYTES");
    unsetenv("SHARDLITE_COMM_TIMEOUT");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(shm_entries(job), 0);
}

static void test_world_from_environment(void **state)
{
    (void)state;
    sl_rank_info w;
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    assert_int_equal(sl_comm_world(&w), SL_OK);
    assert_int_equal(w.rank, 2);
    assert_int_equal(w.size, 4);
    assert_string_equal(w.source, "openmpi");
    assert_string_equal(w.backend, "mpi"); /* two hosts */
    setenv("SHARDLITE_RANK", "1", 1);
    setenv("SHARDLITE_WORLD_SIZE", "3", 1);
    setenv("SHARDLITE_JOB_ID", "abc", 1);
    assert_int_equal(sl_comm_world(&w), SL_OK); /* our launcher wins over mpirun */
    assert_int_equal(w.rank, 1);
    assert_string_equal(w.source, "launcher");
    assert_string_equal(w.job, "abc");
    assert_string_equal(w.backend, "shm");
    assert_int_equal(sl_comm_configure(0, 2, "cfg", "shm"), SL_OK);
    assert_int_equal(sl_comm_world(&w), SL_OK); /* explicit configuration wins over both */
    assert_string_equal(w.source, "config");
    assert_int_equal(sl_comm_configure(2, 2, "cfg", "shm"), SL_ERR_INVALID_ARG);
    assert_int_equal(sl_comm_configure(0, 0, NULL, NULL), SL_OK);
    setenv("SHARDLITE_RANK", "5", 1);
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG); /* rank >= size */
    assert_non_null(strstr(sl_last_error(), "rank 5 (from launcher) is not below the world "
                                            "size 3"));
    setenv("SHARDLITE_RANK", " 1", 1); /* digits only */
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG);
    setenv("SHARDLITE_RANK", "+1", 1);
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG);
    /* malformed or half-set variables fail, naming them, instead of running as rank 0 of 1 */
    setenv("SHARDLITE_RANK", "-1", 1);
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_last_error(), "SHARDLITE_RANK='-1' is not a rank or a size"));
    setenv("SHARDLITE_RANK", "1", 1);
    unsetenv("SHARDLITE_WORLD_SIZE");
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_last_error(), "SHARDLITE_RANK is set without SHARDLITE_WORLD_SIZE"));
    unsetenv("SHARDLITE_RANK");
    setenv("OMPI_COMM_WORLD_SIZE", "two", 1);
    assert_int_equal(sl_comm_world(&w), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_last_error(), "OMPI_COMM_WORLD_SIZE='two'"));
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                          "OMPI_COMM_WORLD_LOCAL_SIZE", "SHARDLITE_RANK", "SHARDLITE_WORLD_SIZE",
                          "SHARDLITE_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NNODES",
                          "SLURM_STEP_NUM_NODES", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
    /* Slurm: the step's nodes decide the backend (the allocation's when the step's are unset) */
    setenv("SLURM_PROCID", "1", 1);
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_NNODES", "2", 1);
    assert_int_equal(sl_comm_world(&w), SL_OK);
    assert_string_equal(w.source, "slurm");
    assert_string_equal(w.backend, "mpi");
    setenv("SLURM_STEP_NUM_NODES", "1", 1);
    assert_int_equal(sl_comm_world(&w), SL_OK);
    assert_string_equal(w.backend, "shm");
    setenv("SLURM_STEP_NUM_NODES", "2", 1);
    setenv("SLURM_NNODES", "1", 1);
    assert_int_equal(sl_comm_world(&w), SL_OK);
    assert_string_equal(w.backend, "mpi");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
    assert_int_equal(sl_comm_world(&w), SL_OK);
    assert_int_equal(w.rank, 0);
    assert_int_equal(w.size, 1);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* SHARDLITE_COMM_TIMEOUT: seconds above 0 (60 when unset); anything else, infinity included
 * (no deadline at all), fails naming the variable. */
static void test_timeout_setting(void **state)
{
    (void)state;
    const char *was = getenv("SHARDLITE_COMM_TIMEOUT");
    char *saved = was ? strdup(was) : NULL;
    double t = 0;
    unsetenv("SHARDLITE_COMM_TIMEOUT");
    assert_int_equal(sl_comm_timeout(&t), SL_OK);
    assert_true(t == 60.0);
    setenv("SHARDLITE_COMM_TIMEOUT", "2.5", 1);
    assert_int_equal(sl_comm_timeout(&t), SL_OK);
    assert_true(t == 2.5);
    const char *bad[] = {"inf", "1e999", "nan", "abc", "-5", "0", "2s", " ", "2000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SHARDLITE_COMM_TIMEOUT", bad[i], 1);
        assert_int_equal(sl_comm_timeout(&t), SL_ERR_INVALID_ARG);
        char want[64];
        snprintf(want, sizeof want, "SHARDLITE_COMM_TIMEOUT='%s'", bad[i]);
        assert_non_null(strstr(sl_last_error(), want));
    }
    if (saved) {
        setenv("SHARDLITE_COMM_TIMEOUT", saved, 1);
        free(saved);
    } else {
        unsetenv("SHARDLITE_COMM_TIMEOUT");
    }
}

/* A sum of every rank's (rank + 1), checked. */
static void sum_ranks(int rank, int n, sl_comm *c)
{
    float x = (float)(rank + 1), y = 0;
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = 1};
    CHECK(sl_comm_run(c, &d, &x, &y) == SL_OK);
    CHECK(y == (float)(n * (n + 1) / 2));
}

/* hold_then_sum's pipes: "joined" (ranks to the test), "go on" (the test to the ranks) */
static int joined[2], go_on[2];

/* Joins the world group, says so, waits for the test's word, then sums. */
static uint64_t hold_then_sum(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    char b = 1;
    CHECK(write(joined[1], &b, 1) == 1);
    CHECK(read(go_on[0], &b, 1) == 1);
    sum_ranks(rank, n, c);
    sl_comm_release(c);
    return 1;
}

/* A rank whose place in the group another process holds fails at once, naming it. */
static uint64_t refused(int rank, int n)
{
    (void)n;
    sl_comm *c;
    double t0 = now_s();
    CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_STATE);
    CHECK(strstr(sl_last_error(), "is already running on this host (pid ") != NULL);
    CHECK(now_s() - t0 < 0.5);
    return 1;
}

/* A second job with the id of a running one fails at once instead of pairing its ranks with
 * the first job's; the first job is not disturbed. */
static void test_same_job_id_twice(void **state)
{
    (void)state;
    char job[64];
    snprintf(job, sizeof job, "t%d_same", (int)getpid());
    uint64_t first[MAX_N], second[MAX_N];
    pid_t pa[MAX_N], pb[MAX_N];
    assert_int_equal(pipe(joined), 0);
    assert_int_equal(pipe(go_on), 0);
    run_job(job, 2, hold_then_sum, first, pa, 0);
    close(joined[1]); /* (a rank that fails before joining ends the read below) */
    close(go_on[0]);
    char b[2];
    ssize_t got = 0, k = 1;
    while (got < 2 && k > 0) {
        got += k = read(joined[0], b, (size_t)(2 - got));
    }
    int both = got == 2;
    int refusals = both ? run_job(job, 2, refused, second, pb, 1) : 0;
    assert_int_equal(write(go_on[1], "gg", 2), 2);
    close(go_on[1]);
    close(joined[0]);
    assert_int_equal(collect(job, 2, first, pa), 2);
    assert_true(both);
    assert_int_equal(refusals, 2);
    assert_int_equal(shm_entries(job), 0);
}

static uint64_t rank0_late_sum(int rank, int n);

/* Rank 0 leaves a forked child (no exec) running for 3 s, then both sum. */
static uint64_t fork_then_sum(int rank, int n)
{
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    if (rank == 0) {
        pid_t child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            usleep(3000000);
            _exit(0);
        }
    }
    sum_ranks(rank, n, c);
    sl_comm_release(c);
    return 1;
}

/* A forked child does not keep its parent's place: a job with the same id runs after the
 * parent has ended, while the child still lives. */
static void test_forked_child_holds_no_place(void **state)
{
    (void)state;
    char job[64];
    snprintf(job, sizeof job, "t%d_forked", (int)getpid());
    uint64_t sums[MAX_N];
    pid_t pids[MAX_N];
    assert_int_equal(run_job(job, 2, fork_then_sum, sums, pids, 1), 2);
    assert_int_equal(run_job(job, 2, rank0_late_sum, sums, pids, 1), 2);
    assert_int_equal(shm_entries(job), 0);
}

/* Rank 0 comes 0.3 s after rank 1, then both sum. */
static uint64_t rank0_late_sum(int rank, int n)
{
    if (rank == 0) {
        usleep(300000);
    }
    sl_comm *c;
    CHECK(sl_comm_get(NULL, 0, &c) == SL_OK);
    sum_ranks(rank, n, c);
    sl_comm_release(c);
    return 1;
}

/* A segment left by a rank 0 killed at its rendezvous: a later job with the same id (a fixed
 * job id, a rank table's) runs, even when its rank 1 finds the old segment first, and leaves
 * nothing behind. */
static void test_segment_of_a_killed_rank(void **state)
{
    (void)state;
    char job[64];
    snprintf(job, sizeof job, "t%d_stale", (int)getpid());
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        sl_comm *c;
        if (sl_comm_configure(0, 2, job, "shm") == SL_OK) {
            sl_comm_get(NULL, 0, &c); /* waits for rank 1 */
        }
        _exit(0);
    }
    struct stat sb;
    for (int i = 0; i < 1000 && !(segment_stat(job, &sb) && sb.st_size > 0); i++) {
        usleep(10000);
    }
    usleep(200000); /* its header is written at once after the size is set */
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    assert_int_equal(shm_entries(job), 1);
    uint64_t sums[MAX_N];
    pid_t pids[MAX_N];
    assert_int_equal(run_job(job, 2, rank0_late_sum, sums, pids, 1), 2);
    assert_int_equal(shm_entries(job), 0);
}

/* Ranks with different SHARDLITE_SHM_SLOT_BYTES: the one that finds the other's segment says
 * so at once (rank 0 then meets its deadline); a malformed value fails, naming it. */
static uint64_t slots_differ(int rank, int n)
{
    (void)n;
    sl_comm *c;
    setenv("SHARDLITE_COMM_TIMEOUT", "2", 1);
    if (rank == 0) { /* stopped by rank 1's finding, not by its deadline */
        setenv("SHARDLITE_SHM_SLOT_BYTES", "8192", 1);
        CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_STATE);
        CHECK(strstr(sl_last_error(), "SHARDLITE_SHM_SLOT_BYTES differs") != NULL);
        return 1;
    }
    setenv("SHARDLITE_SHM_SLOT_BYTES", "8k", 1);
    CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_INVALID_ARG);
    CHECK(strstr(sl_last_error(), "SHARDLITE_SHM_SLOT_BYTES='8k'") != NULL);
    unsetenv("SHARDLITE_SHM_SLOT_BYTES");
    usleep(300000); /* rank 0 has made its segment */
    double t0 = now_s();
    CHECK(sl_comm_get(NULL, 0, &c) == SL_ERR_STATE);
    CHECK(strstr(sl_last_error(), "for 2 ranks and 8192-byte slots") != NULL &&
          strstr(sl_last_error(), "SHARDLITE_SHM_SLOT_BYTES differs") != NULL);
    CHECK(now_s() - t0 < 1.0);
    return 1;
}

static void test_slot_settings_differ(void **state)
{
    (void)state;
    assert_true(run_pair("slots", slots_differ));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_from_environment),
        cmocka_unit_test(test_all_collectives),
        cmocka_unit_test(test_bad_stores_setting),
        cmocka_unit_test(test_measured_stores),
        cmocka_unit_test(test_two_jobs_at_once),
        cmocka_unit_test(test_mismatch_names_both_ops),
        cmocka_unit_test(test_interrupted_wait),
        cmocka_unit_test(test_one_claimant_at_a_time),
        cmocka_unit_test(test_group_reopened_at_once),
        cmocka_unit_test(test_dead_peer_fails_fast),
        cmocka_unit_test(test_missing_peer_times_out),
        cmocka_unit_test(test_segment_too_big_for_dev_shm),
        cmocka_unit_test(test_timeout_setting),
        cmocka_unit_test(test_same_job_id_twice),
        cmocka_unit_test(test_forked_child_holds_no_place),
        cmocka_unit_test(test_segment_of_a_killed_rank),
        cmocka_unit_test(test_slot_settings_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
