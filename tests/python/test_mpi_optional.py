"""MPI is optional at run time: the library does not link libmpi (the MPI backend is a plugin
loaded on demand), so shardlite imports and runs on one host without it, and asking for the MPI
backend without the plugin fails with a clear error instead of crashing."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from shardlite.builder import GraphBuilder


def _needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True)
    return [line.split("[", 1)[1].rstrip("]") for line in out.stdout.splitlines()
            if "(NEEDED)" in line]


def test_library_does_not_link_mpi(mslite):
    pkg = os.path.dirname(mslite.__file__)
    needed = _needed(os.path.join(pkg, "libshardlite.so"))
    assert needed and not any("mpi" in lib for lib in needed)
    if mslite.build_info()["mpi"]:
        assert any("mpi" in lib for lib in _needed(os.path.join(pkg, "libshardlite_mpi.so")))


SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import shardlite as mslite
info = mslite.distributed()
assert info["size"] == 1, info
m = mslite.Model()
try:
    m.build_from_file(sys.argv[2], mslite.ModelType.MINDIR)
except RuntimeError as e:
    print("ERROR", e)
    sys.exit(3)
print("OK", m.predict([np.ones((2, 3), np.float32)])[0].get_data_to_numpy().sum())
"""


def test_runs_without_the_mpi_plugin(mslite, tmp_path):
    # a copy of the installed package without the plugin stands in for a host without MPI
    pkg = os.path.dirname(mslite.__file__)
    copy = tmp_path / "site" / "shardlite"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("libshardlite_mpi*", "__pycache__"))
    b = GraphBuilder("g")
    x = b.input("x", [2, 3], np.float32)
    b.output(b.op("AllReduce", [x], {"op": "sum", "group": "mccl_world_group"}))
    model = tmp_path / "m.mindir"
    b.save(model)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDLITE_", "OMPI_",
                                                                    "PMI_", "SLURM_"))}
    env.update(SHARDLITE_RANK="0", SHARDLITE_WORLD_SIZE="1")  # a job of one rank, on purpose
    run = [sys.executable, "-c", SCRIPT, str(copy.parent), str(model)]
    ok = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["OK", "6.0"]  # one rank: the sum is the input
    env["SHARDLITE_COMM_BACKEND"] = "mpi"
    bad = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3, bad.stderr
    assert "MPI backend is not available" in bad.stdout
