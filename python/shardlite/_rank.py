"""This process's rank and the world size: one source of truth, the C library's discovery
(explicit configuration, else shardlite's launcher, Open MPI, MPICH/Hydra, Slurm; else 0 of 1)."""

from . import _shardlite

# The most seconds a rank may wait for the others (SL_COMM_MAX_TIMEOUT in src/comm/comm.h):
# SHARDLITE_COMM_TIMEOUT, `shardlite launch --timeout` and `[distributed] timeout`.
MAX_TIMEOUT_S = 1000000


def rank_and_size():
    """(rank, size) of this process in its job ((0, 1) when not launched distributed)."""
    info = _shardlite.distributed()
    return info["rank"], info["size"]
