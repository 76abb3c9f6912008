"""This process's rank and the world size, as the launcher set them in the environment."""

import os

# (rank variable, size variable) of each launcher, in the order they are looked for.
_LAUNCHERS = (
    ("SHARDLITE_RANK", "SHARDLITE_WORLD_SIZE"),            # shardlite's own launcher
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),      # Open MPI's mpirun
    ("PMI_RANK", "PMI_SIZE"),                              # MPICH / Hydra
    ("SLURM_PROCID", "SLURM_NTASKS"),                      # Slurm's srun
)


def rank_and_size(environ=None):
    """(rank, size) from the first launcher whose variables are both set to valid ints.

    (0, 1) when the process was not launched distributed. A pair that does not make sense
    (not ints, size < 1, rank outside [0, size)) is skipped.
    """
    env = os.environ if environ is None else environ
    for rank_var, size_var in _LAUNCHERS:
        rank, size = env.get(rank_var), env.get(size_var)
        if rank is None or size is None:
            continue
        try:
            rank, size = int(rank), int(size)
        except ValueError:
            continue
        if size >= 1 and 0 <= rank < size:
            return rank, size
    return 0, 1
