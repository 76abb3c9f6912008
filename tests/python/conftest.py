"""Shared fixtures: where the real MindIR files are, the shardlite module, and helpers that build a
model file with shardlite.builder, load it through the mslite-style API and run it."""

import os
import pathlib
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))  # mindir_reader

IN_CI = os.environ.get("CI") == "true"

# numpy dtype -> MindSpore Lite DataType number (shardlite's sl_dtype values)
LITE_DTYPES = {
    np.dtype(np.bool_): 30, np.dtype(np.int8): 32, np.dtype(np.int16): 33,
    np.dtype(np.int32): 34, np.dtype(np.int64): 35, np.dtype(np.uint8): 37,
    np.dtype(np.uint16): 38, np.dtype(np.uint32): 39, np.dtype(np.uint64): 40,
    np.dtype(np.float16): 42, np.dtype(np.float32): 43, np.dtype(np.float64): 44,
}


def _missing(what):
    if IN_CI:
        pytest.fail("%s is missing (CI=true)" % what)
    pytest.skip("%s is missing" % what)


@pytest.fixture(scope="session")
def fixtures_dir():
    """The folder of real MindIR files: $SL_FIXTURES or <repo>/../shared/fixtures/mindir."""
    default = REPO.parent / "shared" / "fixtures" / "mindir"
    path = pathlib.Path(os.environ.get("SL_FIXTURES") or default)
    if not path.is_dir():
        _missing("the MindIR fixtures folder %s" % path)
    return path


@pytest.fixture(scope="session")
def mslite():
    try:
        import shardlite
    except ImportError as e:
        _missing("the shardlite module (%s)" % e)
    return shardlite


@pytest.fixture
def context(mslite):
    ctx = mslite.Context()
    ctx.target = ["cpu"]
    ctx.cpu.thread_num = 2
    return ctx


@pytest.fixture
def load_model(mslite, context):
    """load_model(path) -> a built mslite.Model."""

    def load(path):
        model = mslite.Model()
        model.build_from_file(str(path), mslite.ModelType.MINDIR, context)
        return model

    return load


def predict(model, *arrays):
    """Feeds arrays to the model's inputs in order; returns the outputs as numpy arrays."""
    inputs = model.get_inputs()
    assert len(inputs) == len(arrays)
    for tensor, array in zip(inputs, arrays):
        tensor.set_data_from_numpy(np.ascontiguousarray(array))
    outputs = model.predict(inputs)
    return [t.get_data_to_numpy() for t in outputs]


@pytest.fixture
def tmp_model(tmp_path):
    """tmp_model(builder, name="model.mindir", **save_kwargs) -> the saved file's path."""
    count = [0]

    def save(builder, name=None, **kwargs):
        count[0] += 1
        path = tmp_path / (name or "model%d.mindir" % count[0])
        builder.save(path, **kwargs)
        return path

    return save


@pytest.fixture
def run_builder(tmp_model, load_model):
    """run_builder(builder, *arrays, **save_kwargs) -> list of numpy outputs."""

    def run(builder, *arrays, **kwargs):
        model = load_model(tmp_model(builder, **kwargs))
        return predict(model, *arrays)

    return run


# ---- helpers of the API conformance tests (test_api_*.py, test_seed_sample.py) ----

# Variables through which launchers (mpirun, PMI, Slurm, shardlite's own) pass rank and size.
LAUNCHER_VARS = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                 "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS",
                 "SLURM_LOCALID", "SHARDLITE_RANK", "SHARDLITE_WORLD_SIZE")


def launcher_free_env(**extra):
    """os.environ without any launcher variable, plus extra (str values)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code=None, args=(), env=None, timeout=120):
    """Runs `python -c code` (or `python *args`) in a fresh interpreter from the repository
    root; returns the CompletedProcess (text). Fails the test, showing the output, unless the exit
    code is 0."""
    import subprocess

    cmd = [sys.executable] + (["-c", code] if code is not None else []) + [str(a) for a in args]
    proc = subprocess.run(cmd, cwd=str(REPO), env=env if env is not None else launcher_free_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)
    return proc


def matmul_builder(w, in_shape=None, graph="g", bias=None):
    """A GraphBuilder for y = x @ w (+ bias): input "x" of in_shape (default [2, w.shape[0]])."""
    from shardlite.builder import GraphBuilder

    b = GraphBuilder(graph)
    in_shape = list(in_shape or [2, w.shape[0]])
    x = b.input("x", in_shape, w.dtype)
    y = b.op("MatMul", [x, b.param("w", w)])
    if bias is not None:
        y = b.op("Add", [y, b.param("b", bias)])
    b.output(y)
    return b


def heavy_builder(seed):
    """[256, 1024] @ W0 @ W1 with 1024x1024 weights (~1 GFLOP per predict): (builder, [W0, W1])."""
    from shardlite.builder import GraphBuilder

    rng = np.random.default_rng(seed)
    b = GraphBuilder("h")
    h = b.input("x", [256, 1024], np.float32)
    ws = [rng.standard_normal((1024, 1024)).astype(np.float32) / 32 for _ in range(2)]
    for i, w in enumerate(ws):
        h = b.op("MatMul", [h, b.param("w%d" % i, w)])
    b.output(h)
    return b, ws


@pytest.fixture
def matmul_model(tmp_model):
    """matmul_model(w=None, in_shape=None, bias=None) -> (path, w): a saved y = x @ w (+ bias)
    model; w defaults to a fixed random float32 [4, 3]."""

    def make(w=None, in_shape=None, bias=None, name=None):
        if w is None:
            w = np.random.default_rng(7).uniform(-1, 1, (4, 3)).astype(np.float32)
        return tmp_model(matmul_builder(w, in_shape, bias=bias), name=name), w

    return make


def concurrency_ratio(calls, per_thread):
    """Wall time of running each callable of `calls` per_thread times in its own thread (all at
    once) over the time of the same calls one after another."""
    import threading
    import time

    def run(call):
        for _ in range(per_thread):
            call()

    t0 = time.perf_counter()
    for call in calls:
        run(call)
    serial = time.perf_counter() - t0
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) / serial


def machine_concurrency_ratio(trials=3):
    """The best concurrency_ratio that this (small, shared, noisy) machine gives right now to two
    threads of GIL-free work of ~20 ms a call (hashlib releases the GIL on large buffers): the
    yardstick for "runs in parallel"."""
    import hashlib

    data = bytes(8 << 20)
    work = lambda: hashlib.sha256(data).digest()  # noqa: E731
    return min(concurrency_ratio([work, work], 3) for _ in range(trials))


def run_in_threads(work, n=4):
    """Runs work(i) in n threads at once; re-raises the first exception any of them raised."""
    import threading

    errors = []

    def guarded(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
