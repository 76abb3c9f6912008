"""Shared pieces of the benchmarks: paths, sessions for both runtimes, the output check and the
interleaved timer that measures shardlite and onnxruntime side by side."""

import os
import pathlib
import statistics
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "python"))  # mindir_reader


def fixtures_dir():
    """The folder of real MindIR files: $SL_FIXTURES or <repo>/../shared/fixtures/mindir."""
    default = REPO.parent / "shared" / "fixtures" / "mindir"
    return pathlib.Path(os.environ.get("SL_FIXTURES") or default)


class Mismatch(Exception):
    """The two runtimes disagree on an output: the benchmark's figures would mean nothing."""


# ---- the two runtimes behind one call: run(x) -> the first output as a numpy array ----

def shardlite_runner(mslite, path, threads):
    """Builds path with `threads` CPU threads; returns (model, run)."""
    ctx = mslite.Context()
    ctx.target = ["cpu"]
    ctx.cpu.thread_num = threads
    model = mslite.Model()
    model.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    inputs = model.get_inputs()

    def run(x):
        inputs[0].set_data_from_numpy(x)
        return model.predict(inputs)[0].get_data_to_numpy()

    return model, run


def ort_session(model, threads):
    """An InferenceSession on an onnx.ModelProto, its serialized bytes or a file path, sequential,
    `threads` intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if isinstance(model, (str, os.PathLike)):
        src = str(model)
    else:
        src = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def ort_runner(model, threads):
    sess = ort_session(model, threads)
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x})[0]

    return sess, run


def check_close(what, got, want, rtol=1e-3, atol_scale=1e-4):
    """Raises Mismatch unless got ~= want (atol relative to want's magnitude: fp32 sums of
    thousands of terms differ between BLAS libraries in their last bits)."""
    got = np.asarray(got)
    if got.shape != want.shape:
        raise Mismatch("%s: shape %s, onnxruntime %s" % (what, got.shape, want.shape))
    atol = atol_scale * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        raise Mismatch("%s: outputs differ from onnxruntime (max abs error %.3g, atol %.3g)"
                       % (what, err, atol))


# ---- timing ----

def _stats(times):
    ts = sorted(times)
    q = statistics.quantiles(ts, n=10, method="inclusive") if len(ts) > 1 else [ts[0]] * 9
    return {"median_ms": statistics.median(ts) * 1e3, "p10_ms": q[0] * 1e3,
            "p90_ms": q[-1] * 1e3, "runs": len(ts)}


def time_pair(run_a, run_b, x, budget_s=1.0, max_runs=200, min_runs=5, warmup=3, block_s=0.05):
    """Times run_a(x) and run_b(x) in alternating blocks (a first in even blocks, b first in odd
    ones) so that a noisy neighbour hits both alike. Each block starts with one untimed call,
    which absorbs the other runtime's threads still spinning down. Stops once each side has
    spent budget_s (or reached max_runs). Returns ({stats of a}, {stats of b})."""
    for _ in range(warmup):
        run_a(x)
        run_b(x)
    times = ([], [])
    spent = [0.0, 0.0]
    block = 0
    while True:
        done = [len(times[i]) >= max_runs or (spent[i] >= budget_s and len(times[i]) >= min_runs)
                for i in (0, 1)]
        if all(done):
            break
        order = (0, 1) if block % 2 == 0 else (1, 0)
        for i in order:
            if done[i]:
                continue
            fn = (run_a, run_b)[i]
            fn(x)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn(x)
                dt = time.perf_counter() - t0
                times[i].append(dt)
                spent[i] += dt
                if time.perf_counter() - start >= block_s or len(times[i]) >= max_runs:
                    break
        block += 1
    return _stats(times[0]), _stats(times[1])
