"""The whole story: a single-device model, cut for 2 ranks by `shardlite split`, run with the
MindSpore Lite distributed sample under `shardlite launch`, checked against the unsplit model.

The MLP is y = relu(x @ W1 + b1) @ W2 + b2, written as one ordinary MindIR file (with
shardlite.builder, the way a training framework would export it). `shardlite.split` cuts it the
Megatron way: rank r holds a block of W1's columns (and of b1) and the matching block of W2's
rows, and an AllReduce(sum) joins the partial products, so every rank ends with the whole y.
Each rank then runs examples/distributed_main.py (the reference's sample, import changed), and
the demo checks what every rank printed against the unsplit model run by shardlite on one
process, and against numpy.

    python examples/demo_distributed.py [DIR]   # prints OK, or FAILED and exits with 1

The models stay in DIR (a new or empty folder; default: build/demo in the repository, emptied
first), so the commands it prints can be run again.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

import shardlite
from shardlite.builder import GraphBuilder

RANKS = 2
BATCH, D_IN, HIDDEN, D_OUT = 2, 16, 32, 5  # 10 outputs: all of them are printed by the sample
SAMPLE = pathlib.Path(__file__).resolve().parent / "distributed_main.py"
REPO = SAMPLE.parent.parent


def shown(path):
    """path as the printed commands show it: relative to the working folder when inside it."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def write_full_model(path, w1, b1, w2, b2):
    """The single-device MLP, as nn.Dense layers export (weights [out, in], transpose_b)."""
    b = GraphBuilder("mlp")
    x = b.input("x", [BATCH, D_IN], np.float32)
    h = b.op("MatMul", [x, b.param("w1", w1.T.copy())], {"transpose_a": False, "transpose_b": True})
    h = b.op("ReLU", [b.op("BiasAdd", [h, b.param("b1", b1)], {"format": "NCHW"})])
    y = b.op("MatMul", [h, b.param("w2", w2.T.copy())], {"transpose_a": False, "transpose_b": True})
    b.output(b.op("BiasAdd", [y, b.param("b2", b2)], {"format": "NCHW"}))
    b.save(path)


def run_unsplit(path):
    """The full model on one process: what every rank must reproduce."""
    model = shardlite.Model()
    model.build_from_file(str(path), shardlite.ModelType.MINDIR, shardlite.Context())
    x = np.ones((BATCH, D_IN), np.float32)  # the sample feeds ones
    return model.predict([x])[0].get_data_to_numpy().ravel()


def printed_values(stdout, rank):
    """The numbers that rank printed on the sample's 'output data is:' line."""
    prefix = f"[{rank}] output data is:"
    lines = [ln[len(prefix):] for ln in stdout.splitlines() if ln.startswith(prefix)]
    return np.array([float(v) for v in lines[0].split()]) if len(lines) == 1 else None


def main():
    rng = np.random.default_rng(2024)
    w1 = rng.uniform(-0.5, 0.5, (D_IN, HIDDEN)).astype(np.float32)
    b1 = rng.uniform(-0.5, 0.5, HIDDEN).astype(np.float32)
    w2 = rng.uniform(-0.5, 0.5, (HIDDEN, D_OUT)).astype(np.float32)
    b2 = rng.uniform(-0.5, 0.5, D_OUT).astype(np.float32)
    # the sample feeds ones
    want = (np.maximum(np.ones((BATCH, D_IN), np.float32) @ w1 + b1, 0) @ w2 + b2).ravel()

    if len(sys.argv) > 1:  # the user's folder: an empty or new one, never emptied here
        folder = sys.argv[1]
        if os.path.exists(folder) and os.listdir(folder):
            print(f"FAILED: {folder} is not empty; give a new or empty folder")
            return 1
    else:
        folder = str(REPO / "build" / "demo")
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    full = os.path.join(folder, "Mlp.mindir")
    write_full_model(full, w1, b1, w2, b2)
    unsplit = run_unsplit(full)
    parts = os.path.join(folder, "ranks")
    # the console command beside this Python (the .venv's, after `make demo`)
    tool = os.path.join(os.path.dirname(sys.executable), "shardlite")
    tool = shown(tool) if os.path.exists(tool) else "shardlite"
    print(f"$ {tool} split {shown(full)} -n {RANKS} -o {shown(parts)}", flush=True)
    print(shardlite.split(full, RANKS, parts), flush=True)
    path = os.path.join(parts, "Mlp.mindir")  # the sample adds the rank to the stem
    cmd = [sys.executable, "-m", "shardlite", "launch", "-n", str(RANKS), "--",
           sys.executable, str(SAMPLE), f"--model_path={path}"]
    print(f"$ {tool} launch -n {RANKS} -- {shown(sys.executable)} {shown(SAMPLE)} "
          f"--model_path={shown(path)}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)

    problems = [] if proc.returncode == 0 else [f"the launcher exited with {proc.returncode}"]
    if not np.allclose(unsplit, want, rtol=1e-5, atol=1e-5):
        problems.append("the unsplit model disagrees with numpy")
    for r in range(RANKS):
        got = printed_values(proc.stdout, r)
        if got is None or got.shape != want.shape:
            problems.append(f"rank {r} printed no {want.size}-value output")
        elif not np.allclose(got, unsplit, rtol=1e-5, atol=1e-5):
            problems.append(f"rank {r}: max difference {np.abs(got - unsplit).max():.3g} from "
                            "the unsplit model")
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    print(f"OK: both ranks' results equal the unsplit model's (and numpy's): "
          f"{BATCH}x{D_IN} -> {HIDDEN} split over {RANKS} ranks -> {D_OUT}; the models are in "
          f"{shown(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
