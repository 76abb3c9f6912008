"""Helpers of the launcher and distributed-failure tests: per-rank models written by shardlite's
own writer, and running commands under `shardlite launch`."""

import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from conftest import REPO, launcher_free_env

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "dist_worker.py"
SAMPLE = REPO / "examples" / "distributed_main.py"


def save_rank_model(builder, path, tmp):
    """Writes builder's model to a scratch file, loads it with shardlite and saves it to path
    with Model.save (so the ranks run files written by shardlite's C writer)."""
    import shardlite

    scratch = pathlib.Path(tmp) / ("built_" + pathlib.Path(path).name)
    builder.save(scratch)
    model = shardlite.Model()
    model.build_from_file(str(scratch), shardlite.ModelType.MINDIR, shardlite.Context())
    model.save(str(path))
    scratch.unlink()
    return path


def matmul_allreduce(w_slice, in_shape, reduce="sum", graph="g"):
    """A GraphBuilder for AllReduce(x @ w_slice) over the world group."""
    from shardlite.builder import GraphBuilder

    b = GraphBuilder(graph)
    x = b.input("x", list(in_shape), np.float32)
    y = b.op("MatMul", [x, b.param("w", w_slice)], {"transpose_a": False, "transpose_b": False})
    b.output(b.op("AllReduce", [y], {"op": reduce, "group": "hccl_world_group"}))
    return b


def row_split_models(tmp, w, n=2, stem="Matmul", batch=2):
    """Writes <stem>0..<stem>{n-1}.mindir: rank r computes AllReduce(x_r @ w[rows of r]), so with
    inputs of ones every rank's output is ones([batch, K]) @ w. Returns the path the seed sample
    takes (<stem>.mindir)."""
    k = w.shape[0]
    for r in range(n):
        rows = w[r * k // n:(r + 1) * k // n].copy()
        save_rank_model(matmul_allreduce(rows, [batch, rows.shape[0]]),
                        pathlib.Path(tmp) / f"{stem}{r}.mindir", tmp)
    return pathlib.Path(tmp) / f"{stem}.mindir"


def launch_env(**extra):
    """The launcher's environment: no launcher variables and no SHARDLITE_COMM_TIMEOUT (so the
    default 60 s deadline applies), plus extra."""
    env = launcher_free_env(**extra)
    if "SHARDLITE_COMM_TIMEOUT" not in extra:
        env.pop("SHARDLITE_COMM_TIMEOUT", None)
    env.pop("SHARDLITE_JOB_ID", None)
    return env


def launch(args, env=None, timeout=60, entry=("-m", "shardlite", "launch")):
    """Runs `shardlite launch ARGS` (through `python -m shardlite`); returns (CompletedProcess,
    wall seconds)."""
    cmd = [sys.executable, *entry] + [str(a) for a in args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=str(REPO), env=env or launch_env(), capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def rank_lines(text, rank):
    """The lines of launcher output that rank printed, without the '[rank] ' prefix."""
    prefix = f"[{rank}] "
    return [ln[len(prefix):] for ln in text.splitlines() if ln.startswith(prefix)]


def sample_values(lines):
    """The values of the seed sample's 'output data is:' line."""
    data = [ln for ln in lines if ln.startswith("output data is:")]
    assert len(data) == 1, lines
    return np.array([float(v) for v in data[0][len("output data is:"):].split()])


def proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command's name: [0] is the state ('R', 'S',
    'T' stopped, 'Z'...), [11] and [12] the user and system CPU time in clock ticks; None when
    there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def gone(pid):
    """Whether process pid has ended (no such process, or a zombie)."""
    stat = proc_stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def wait_gone(pids, seconds=5.0):
    """The pids still running after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in pids if not gone(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def shm_entries(job):
    return sorted(p for p in os.listdir("/dev/shm") if p.startswith(f"shardlite-{job}-"))


# Stands in for ssh under mpirun: drops ssh's options and the host's name and runs the command
# (Open MPI's daemon for that "host") here, with a temporary folder of the host's own.
FAKE_SSH = """#!/bin/bash
while [[ "$1" == -* ]]; do shift; done
export TMPDIR="%s/tmp-$1"
shift
mkdir -p "$TMPDIR"
exec bash -c "$*"
"""


def two_hosts(folder, n):
    """mpirun arguments that run n ranks as if on two hosts, n / 2 on each: Open MPI starts a
    daemon per host through FAKE_SSH and joins the ranks over TCP (on the loopback device). The
    two hosts' daemons run on one machine under one host name: each gets a temporary folder of
    its own (where it writes its session files: in the same one, they wrote hwloc's topology
    into the same file, a crash now and then), and Open MPI's shared-memory transport is left out
    (they would give their ranks the same segment names in /dev/shm: a crash in mca_btl_vader)."""
    ssh, hostfile = folder / "fake_ssh", folder / "hosts"
    ssh.write_text(FAKE_SSH % folder)
    ssh.chmod(0o755)
    hostfile.write_text("host-a slots=%d\nhost-b slots=%d\n" % (n // 2, n - n // 2))
    return ["--mca", "plm_rsh_agent", str(ssh), "--mca", "btl", "self,tcp",
            "--mca", "btl_tcp_if_include", "lo", "--hostfile", str(hostfile)]
