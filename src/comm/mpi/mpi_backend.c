/* The MPI backend (a plugin: libshardlite_mpi.so, loaded by comm.c on first use), for ranks on
 * several hosts. Errors come back as statuses (MPI_ERRORS_RETURN), never as an abort; each
 * collective's fingerprint is compared across ranks first (an all-gather of a few bytes), so a
 * mismatch fails with both ops named. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"

typedef struct fingerprint { /* compared with memcmp: no padding */
    uint64_t seq, count;
    uint32_t kind, dtype, reduce;
    int32_t root, model, zero;
} fingerprint;
_Static_assert(sizeof(fingerprint) == 2 * 8 + 6 * 4, "a fingerprint has no padding");

typedef struct mpi_state {
    MPI_Comm comm;
    int n, me;
    int ranks[SL_COMM_MAX_RANKS];
    uint64_t seq;
    int check; /* compare fingerprints (SHARDLITE_COMM_CHECK=0 turns it off) */
} mpi_state;

static sl_status mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return sl_error(SL_ERR_STATE, "MPI %s failed: %.*s", what, len, msg);
}

static void finalize_at_exit(void)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Finalize();
    }
}

static sl_status mpi_open(const sl_rank_info *w, const int *ranks, int n, int me, double timeout,
                          void **state)
{
    (void)timeout;
    *state = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) {
            return mpi_fail(rc, "MPI_Init_thread");
        }
        atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int wrank, wsize;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    if (wrank != w->rank || wsize != w->size) {
        return sl_error(SL_ERR_STATE, "MPI says rank %d of %d, the job says rank %d of %d",
                        wrank, wsize, w->rank, w->size);
    }
    mpi_state *s = calloc(1, sizeof *s);
    if (!s) {
        return sl_error(SL_ERR_NOMEM, "communicator: out of memory");
    }
    MPI_Group world_group, group;
    MPI_Comm_group(MPI_COMM_WORLD, &world_group);
    MPI_Group_incl(world_group, n, ranks, &group);
    int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, 0, &s->comm);
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    if (rc != MPI_SUCCESS) {
        free(s);
        return mpi_fail(rc, "MPI_Comm_create_group");
    }
    MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    s->n = n;
    s->me = me;
    memcpy(s->ranks, ranks, sizeof(int) * (size_t)n);
    const char *check = getenv("SHARDLITE_COMM_CHECK");
    s->check = !(check && strcmp(check, "0") == 0);
    *state = s;
    return SL_OK;
}

static void mpi_close(void *state)
{
    mpi_state *s = state;
    if (s) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Comm_free(&s->comm);
        }
        free(s);
    }
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

static MPI_Op mpi_op(sl_reduce r)
{
    switch (r) {
    case SL_REDUCE_MAX: return MPI_MAX;
    case SL_REDUCE_MIN: return MPI_MIN;
    case SL_REDUCE_PROD: return MPI_PROD;
    default: return MPI_SUM;
    }
}

static sl_status check_fingerprints(mpi_state *s, const sl_coll_desc *d)
{
    fingerprint mine = {.seq = ++s->seq, .count = d->count, .kind = (uint32_t)d->kind,
                        .dtype = (uint32_t)d->dtype, .reduce = (uint32_t)d->reduce,
                        .root = d->root, .model = d->model};
    fingerprint all[SL_COMM_MAX_RANKS];
    int rc = MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, s->comm);
    if (rc != MPI_SUCCESS) {
        return mpi_fail(rc, "fingerprint exchange");
    }
    for (int m = 0; m < s->n; m++) {
        if (memcmp(&all[m], &mine, sizeof mine) != 0) {
            char a[128], b[128];
            sl_coll_desc od = {.kind = (sl_coll)all[m].kind, .dtype = (sl_dtype)all[m].dtype,
                               .count = all[m].count, .reduce = (sl_reduce)all[m].reduce,
                               .root = all[m].root, .model = all[m].model};
            return sl_error(SL_ERR_STATE,
                            "collective mismatch at #%llu: rank %d runs %s but rank %d runs %s "
                            "(#%llu): the ranks' models differ",
                            (unsigned long long)mine.seq, s->ranks[s->me],
                            sl_coll_str(d, a, sizeof a), s->ranks[m],
                            sl_coll_str(&od, b, sizeof b), (unsigned long long)all[m].seq);
        }
    }
    return SL_OK;
}

static sl_status mpi_run(void *state, const sl_coll_desc *d, const void *in, void *out)
{
    mpi_state *s = state;
    size_t esz = sl_dtype_size(d->dtype);
    size_t bytes = d->count * esz;
    if (bytes > (size_t)2147483647) {
        return sl_error(SL_ERR_UNSUPPORTED, "MPI messages over 2 GiB are not supported");
    }
    MPI_Datatype t = mpi_type(d->dtype);
    int reducing = d->kind == SL_COLL_ALLREDUCE || d->kind == SL_COLL_REDUCE_SCATTER;
    if (reducing && t == MPI_DATATYPE_NULL) {
        return sl_error(SL_ERR_UNSUPPORTED, "MPI reductions of %s are not supported",
                        sl_dtype_name(d->dtype));
    }
    if (s->check && d->kind != SL_COLL_SEND && d->kind != SL_COLL_RECV) {
        SL_TRY(check_fingerprints(s, d));
    }
    int rc = MPI_SUCCESS, c = (int)d->count, b = (int)bytes;
    switch (d->kind) {
    case SL_COLL_ALLREDUCE:
        rc = MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, c, t, mpi_op(d->reduce), s->comm);
        break;
    case SL_COLL_ALLGATHER:
        rc = MPI_Allgather(in, b, MPI_BYTE, out, b, MPI_BYTE, s->comm);
        break;
    case SL_COLL_REDUCE_SCATTER:
        rc = MPI_Reduce_scatter_block(in, out, c, t, mpi_op(d->reduce), s->comm);
        break;
    case SL_COLL_BROADCAST: rc = MPI_Bcast(out, b, MPI_BYTE, d->root, s->comm); break;
    case SL_COLL_ALLTOALL: rc = MPI_Alltoall(in, b, MPI_BYTE, out, b, MPI_BYTE, s->comm); break;
    case SL_COLL_SEND: rc = MPI_Send(in, b, MPI_BYTE, d->peer, d->tag, s->comm); break;
    case SL_COLL_RECV:
        rc = MPI_Recv(out, b, MPI_BYTE, d->peer, d->tag, s->comm, MPI_STATUS_IGNORE);
        break;
    case SL_COLL_BARRIER: rc = MPI_Barrier(s->comm); break;
    }
    if (rc != MPI_SUCCESS) {
        char what[128];
        return mpi_fail(rc, sl_coll_str(d, what, sizeof what));
    }
    return SL_OK;
}

static const sl_comm_backend backend = {
    .name = "mpi",
    .open = mpi_open,
    .close = mpi_close,
    .run = mpi_run,
};

__attribute__((visibility("default"))) const sl_comm_backend *sl_comm_mpi_backend(void)
{
    return &backend;
}
