/* All-reduce latency: shardlite's shared-memory communicator against the MPI library's
 * MPI_Allreduce, timed in the same processes (run under `mpirun -n N`; see bench/README.md).
 *
 *     allreduce_bench [-r ROUNDS] [-t SECONDS_PER_ROUND] BYTES...
 *
 * Per size: checks that all sides give the same (exact) sums, then runs ROUNDS rounds; each
 * round times a block of calls of each side (the order rotates every round), every block
 * starting on a barrier. A block's time per call is the slowest rank's. Float32 sums in place,
 * as a model's AllReduce runs them. The sides: "shm", shardlite's shared-memory communicator;
 * "mpi", MPI_Allreduce. Rank 0 prints one JSON object per size with the seconds per call of
 * every round: {"ranks", "bytes", "iters", "shm_s": [...], "mpi_s": [...]}. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "allreduce_bench: %s (%s)\n", what, sl_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

enum { SHM, MPI, SIDES };
static const char *const side_names[SIDES] = {"shm", "mpi"};

/* One all-reduce of count floats in place in buf. */
static void run(int side, sl_comm *c, float *buf, size_t count)
{
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = count,
                      .reduce = SL_REDUCE_SUM};
    if (side == SHM) {
        check(sl_comm_run(c, &d, buf, buf) == SL_OK, "sl_comm_run");
    } else {
        check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) ==
                  MPI_SUCCESS,
              "MPI_Allreduce");
    }
}

/* Seconds per call of `iters` calls, the slowest rank's. */
static double time_block(int side, sl_comm *c, float *buf, size_t count, int iters)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        run(side, c, buf, count);
    }
    double mine = (now_s() - t0) / iters, slowest;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

/* Both sides must give the exact sums (small multiples of 1/2: exact in any order). Leaves
 * zeros in buf: sums stay zeros while timing. */
static void check_sums(sl_comm *c, float *buf, size_t count, int rank, int size)
{
    for (int side = 0; side < SIDES; side++) {
        for (size_t i = 0; i < count; i++) {
            buf[i] = (float)(rank + 1) * 0.5f + (float)(i % 7);
        }
        run(side, c, buf, count);
        for (size_t i = 0; i < count; i++) {
            float want = (float)(size * (size + 1)) * 0.25f + (float)size * (float)(i % 7);
            check(buf[i] == want, "a sum is wrong");
        }
    }
    memset(buf, 0, count * sizeof *buf);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rounds = 15;
    double round_s = 0.04;
    int a = 1;
    for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
        if (strcmp(argv[a], "-r") == 0) {
            rounds = atoi(argv[a + 1]);
        } else if (strcmp(argv[a], "-t") == 0) {
            round_s = atof(argv[a + 1]);
        }
    }
    setenv("SHARDLITE_COMM_BACKEND", "shm", 1); /* the rank and job come from mpirun */
    sl_comm *c;
    check(sl_comm_get(NULL, 0, &c) == SL_OK, "sl_comm_get");
    for (; a < argc; a++) {
        size_t count = (size_t)atoll(argv[a]) / sizeof(float);
        float *buf = malloc(count * sizeof *buf);
        check(count > 0 && buf != NULL, "bad size or out of memory");
        check_sums(c, buf, count, rank, size);
        /* calls per block: what takes ~round_s / SIDES per side, from rank 0's warm-up */
        for (int i = 0; i < 3; i++) { /* every rank makes the same calls */
            for (int side = 0; side < SIDES; side++) {
                run(side, c, buf, count);
            }
        }
        double t0 = now_s();
        for (int i = 0; i < 10; i++) {
            for (int side = 0; side < SIDES; side++) {
                run(side, c, buf, count);
            }
        }
        double per_call = (now_s() - t0) / (10.0 * SIDES);
        int iters = (int)(round_s / SIDES / per_call);
        iters = iters < 1 ? 1 : iters > 100000 ? 100000 : iters;
        MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
        double *secs = malloc(sizeof(double) * (size_t)rounds * SIDES);
        check(secs != NULL, "out of memory");
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < SIDES; k++) { /* the order rotates */
                int side = (k + r) % SIDES;
                secs[side * rounds + r] = time_block(side, c, buf, count, iters);
            }
        }
        if (rank == 0) {
            printf("{\"ranks\": %d, \"bytes\": %zu, \"iters\": %d", size, count * sizeof(float),
                   iters);
            for (int side = 0; side < SIDES; side++) {
                printf(", \"%s_s\": [", side_names[side]);
                for (int r = 0; r < rounds; r++) {
                    printf("%s%.9g", r ? ", " : "", secs[side * rounds + r]);
                }
                printf("]");
            }
            printf("}\n");
            fflush(stdout);
        }
        free(secs);
        free(buf);
    }
    sl_comm_release(c);
    MPI_Finalize();
    return 0;
}
