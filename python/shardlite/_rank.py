"""This process's rank and the world size: one source of truth, the C library's discovery
(explicit configuration, else shardlite's launcher, Open MPI, MPICH/Hydra, Slurm; else 0 of 1)."""

from . import _shardlite


def rank_and_size():
    """(rank, size) of this process in its job ((0, 1) when not launched distributed)."""
    info = _shardlite.distributed()
    return info["rank"], info["size"]
