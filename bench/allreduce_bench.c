/* All-reduce latency: shardlite's shared-memory communicator against the MPI library's
 * MPI_Allreduce, timed in the same processes (run under `mpirun -n N`; see bench/README.md).
 *
 *     allreduce_bench [-r ROUNDS] [-t SECONDS_PER_ROUND] BYTES...
 *
 * Per size: checks that both give the same (exact) sums, then runs ROUNDS rounds; each round
 * times a block of calls of each (the order flips every round), every block starting on a
 * barrier. A block's time per call is the slowest rank's. Float32 sums, in place, as a model's
 * AllReduce runs them. Rank 0 prints one JSON object per size with the seconds per call of
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

static void run_shm(sl_comm *c, float *buf, size_t count)
{
    sl_coll_desc d = {.kind = SL_COLL_ALLREDUCE, .dtype = SL_DTYPE_FLOAT32, .count = count,
                      .reduce = SL_REDUCE_SUM};
    check(sl_comm_run(c, &d, buf, buf) == SL_OK, "sl_comm_run");
}

static void run_mpi(float *buf, size_t count)
{
    check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) ==
              MPI_SUCCESS,
          "MPI_Allreduce");
}

/* Seconds per call of `iters` calls, the slowest rank's. */
static double time_block(int shm, sl_comm *c, float *buf, size_t count, int iters)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        if (shm) {
            run_shm(c, buf, count);
        } else {
            run_mpi(buf, count);
        }
    }
    double mine = (now_s() - t0) / iters, slowest;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

/* Both must give the exact sums (small multiples of 1/2: exact in any order). */
static void check_sums(sl_comm *c, float *buf, size_t count, int rank, int size)
{
    for (int shm = 0; shm < 2; shm++) {
        for (size_t i = 0; i < count; i++) {
            buf[i] = (float)(rank + 1) * 0.5f + (float)(i % 7);
        }
        if (shm) {
            run_shm(c, buf, count);
        } else {
            run_mpi(buf, count);
        }
        for (size_t i = 0; i < count; i++) {
            float want = (float)(size * (size + 1)) * 0.25f + (float)size * (float)(i % 7);
            check(buf[i] == want, shm ? "shardlite's sum is wrong" : "MPI's sum is wrong");
        }
    }
    memset(buf, 0, count * sizeof *buf); /* zeros while timing: sums stay zeros */
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
        /* calls per block: what takes ~round_s/2 per side, from rank 0's warm-up estimate */
        for (int i = 0; i < 3; i++) { /* every rank makes the same calls */
            run_mpi(buf, count);
            run_shm(c, buf, count);
        }
        double t0 = now_s();
        for (int i = 0; i < 10; i++) {
            run_mpi(buf, count);
            run_shm(c, buf, count);
        }
        double per_call = (now_s() - t0) / 20.0;
        int iters = (int)(round_s / 2 / per_call);
        iters = iters < 1 ? 1 : iters > 100000 ? 100000 : iters;
        MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
        double *shm_s = malloc(sizeof(double) * (size_t)rounds);
        double *mpi_s = malloc(sizeof(double) * (size_t)rounds);
        check(shm_s && mpi_s, "out of memory");
        for (int r = 0; r < rounds; r++) {
            int shm_first = r % 2 == 0;
            double first = time_block(shm_first, c, buf, count, iters);
            double second = time_block(!shm_first, c, buf, count, iters);
            shm_s[r] = shm_first ? first : second;
            mpi_s[r] = shm_first ? second : first;
        }
        if (rank == 0) {
            printf("{\"ranks\": %d, \"bytes\": %zu, \"iters\": %d, \"shm_s\": [", size,
                   count * sizeof(float), iters);
            for (int r = 0; r < rounds; r++) {
                printf("%s%.9g", r ? ", " : "", shm_s[r]);
            }
            printf("], \"mpi_s\": [");
            for (int r = 0; r < rounds; r++) {
                printf("%s%.9g", r ? ", " : "", mpi_s[r]);
            }
            printf("]}\n");
            fflush(stdout);
        }
        free(shm_s);
        free(mpi_s);
        free(buf);
    }
    sl_comm_release(c);
    MPI_Finalize();
    return 0;
}
