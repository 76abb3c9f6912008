"""shardlite.split: the N rank models, run as N processes, give the full model's outputs."""

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

import shardlite as mslite
from shardlite.builder import GraphBuilder
from shardlite.split import load_strategy

# One rank of a job: loads its model, runs it on the inputs (an .npz), saves output 0.
_RANK = """
import sys, numpy as np, shardlite as mslite
model, inputs, out = sys.argv[1:4]
ctx = mslite.Context()
ctx.cpu.thread_num = 1
m = mslite.Model()
m.build_from_file(model, mslite.ModelType.MINDIR, ctx)
z = np.load(inputs)
y = m.predict([z[f"arr_{i}"] for i in range(len(z.files))])[0].get_data_to_numpy()
np.save(out, y)
"""


def _run_full(path, xs):
    ctx = mslite.Context()
    ctx.cpu.thread_num = 1
    m = mslite.Model()
    m.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    return m.predict(xs)[0].get_data_to_numpy()


def _run_ranks(files, xs, tmp_path):
    """Runs rank r's model in process r; returns every rank's output 0."""
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, *xs)
    job = uuid.uuid4().hex[:16]
    procs = []
    for r, f in enumerate(files):
        env = dict(os.environ, SHARDLITE_RANK=str(r), SHARDLITE_WORLD_SIZE=str(len(files)),
                   SHARDLITE_JOB_ID=job)
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK, f, str(inputs),
                                       str(tmp_path / f"out{r}.npy")], env=env,
                                      stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=120)[1] if p.wait(timeout=120) else "" for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(errors)
    return [np.load(tmp_path / f"out{r}.npy") for r in range(len(files))]


def _check(path, n, tmp_path, strategy=None, rng_seed=1, int_inputs=None):
    """Splits, runs the ranks and compares with the full model; returns the report."""
    out_dir = tmp_path / "ranks"
    report = mslite.split(path, n, out_dir, strategy=strategy)
    assert report.files == [str(out_dir / f"{path.stem}{r}.mindir") for r in range(n)]
    # only the files written: each model and its _variables folder
    names = sorted(os.listdir(out_dir))
    assert names == sorted([f"{path.stem}{r}.mindir" for r in range(n)] +
                           [f"{path.stem}{r}_variables" for r in range(n)])
    rng = np.random.default_rng(rng_seed)
    m = mslite.Model()
    m.build_from_file(str(path), mslite.ModelType.MINDIR, mslite.Context())
    xs = []
    for t in m.get_inputs():
        if int_inputs is not None and t.dtype in (mslite.DataType.INT32, mslite.DataType.INT64):
            xs.append(rng.integers(0, int_inputs, size=t.shape).astype(np.int32))
        else:
            xs.append(rng.standard_normal(t.shape).astype(np.float32))
    ref = _run_full(path, xs)
    for y in _run_ranks(report.files, xs, tmp_path):
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    return report


def _mlp(path, dims, bias, transposed, rng, batch=3):
    """Linear layers dims[0] -> dims[1] -> ... with ReLU/GeLU/Tanh between them."""
    b = GraphBuilder("mlp")
    h = b.input("x", [batch, dims[0]], np.float32)
    acts = ["ReLU", "GeLU", "Tanh"]
    for i in range(len(dims) - 1):
        w = (rng.standard_normal((dims[i], dims[i + 1])) * 0.5).astype(np.float32)
        t = transposed[i % len(transposed)]
        h = b.op("MatMul", [h, b.param(f"w{i}", w.T.copy() if t else w)],
                 {"transpose_a": False, "transpose_b": t})
        if bias:
            bv = b.param(f"b{i}", rng.standard_normal(dims[i + 1]).astype(np.float32))
            h = b.op("BiasAdd", [h, bv], {"format": "NCHW"}) if i % 2 else b.op("Add", [h, bv])
        if i < len(dims) - 2:
            h = b.op(acts[i % len(acts)], [h])
    b.output(h)
    b.save(str(path))
    return path


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("layers", [2, 3, 4])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("transposed", [(False,), (True,), (True, False)])
def test_mlp(tmp_path, n, layers, bias, transposed):
    rng = np.random.default_rng(layers * 10 + n)
    dims = [8, 16, 24, 12, 8][:layers + 1]
    path = _mlp(tmp_path / "mlp.mindir", dims, bias, transposed, rng)
    report = _check(path, n, tmp_path)
    split = [w for w in report.weights if w.split]
    # every layer is split: pairs column/row, and a last odd layer column-parallel + AllGather
    assert {w.name for w in split} >= {f"w{i}" for i in range(layers)}
    for w in split:
        assert all(b == w.bytes // n for b in w.rank_bytes), w
    assert report.all_reduces == layers // 2
    assert report.all_gathers == layers % 2
    assert [w.role for w in split if w.name.startswith("w")] == \
        ["column", "row", "column", "row"][:layers]


def test_uneven_sizes(tmp_path):
    """Sizes that do not divide: ranks get ceil/floor slices, the result is exact."""
    rng = np.random.default_rng(7)
    path = _mlp(tmp_path / "odd.mindir", [5, 7, 3], True, (False,), rng)
    report = _check(path, 2, tmp_path)
    w0 = next(w for w in report.weights if w.name == "w0")
    assert w0.rank_bytes == [5 * 4 * 4, 5 * 3 * 4]


def _attention(path, s, d, heads, rng, batch_dims=True):
    """Self-attention: Q/K/V projections, heads, scaled dot product, softmax, output projection."""
    hd = d // heads
    f = lambda *shape: (rng.standard_normal(shape) * 0.3).astype(np.float32)  # noqa: E731
    b = GraphBuilder("attn")
    x = b.input("x", [1, s, d] if batch_dims else [s, d], np.float32)
    lead = (1,) if batch_dims else ()
    perm = (0, 2, 1, 3) if batch_dims else (1, 0, 2)

    def proj(name):
        y = b.op("MatMul", [x, b.param(f"w{name}", f(d, d))],
                 {"transpose_a": False, "transpose_b": False})
        y = b.op("Add", [y, b.param(f"b{name}", f(d))])
        y = b.op("Reshape", [y, b.const(lead + (s, heads, hd))])
        return b.op("Transpose", [y, b.const(perm)])

    q, k, v = proj("q"), proj("k"), proj("v")
    sc = b.op("BatchMatMul", [q, k], {"transpose_a": False, "transpose_b": True})
    sc = b.op("Mul", [sc, b.const(np.array(1 / np.sqrt(hd), np.float32))])
    p = b.op("Softmax", [sc], {"axis": (-1,)})
    c = b.op("BatchMatMul", [p, v], {"transpose_a": False, "transpose_b": False})
    c = b.op("Transpose", [c, b.const(perm)])
    c = b.op("Reshape", [c, b.const(lead + (s, d))])
    o = b.op("MatMul", [c, b.param("wo", f(d, d))], {"transpose_a": False, "transpose_b": False})
    o = b.op("Add", [o, b.param("bo", f(d))])
    b.output(o)
    b.save(str(path))
    return path


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("batch_dims", [True, False])
def test_attention(tmp_path, n, batch_dims):
    path = _attention(tmp_path / "attn.mindir", 6, 32, 4, np.random.default_rng(n),
                      batch_dims)
    report = _check(path, n, tmp_path)
    roles = {w.name: w.role for w in report.weights}
    assert roles == {"wq": "column", "wk": "column", "wv": "column", "bq": "with-layer",
                     "bk": "with-layer", "bv": "with-layer", "wo": "row", "bo": "replicated"}
    assert report.all_reduces == 1 and report.all_gathers == 0
    for w in report.weights:
        if w.split:
            assert w.rank_bytes == [w.bytes // n] * n


def test_attention_whole_heads(tmp_path):
    """6 heads over 4 ranks: 2, 2, 1, 1 heads (never a head cut in two)."""
    path = _attention(tmp_path / "attn.mindir", 5, 24, 6, np.random.default_rng(3))
    report = _check(path, 4, tmp_path)
    wq = next(w for w in report.weights if w.name == "wq")
    head = 24 * 4 * 4  # one head's columns of wq: 24 rows x 4 columns x 4 bytes
    assert wq.rank_bytes == [2 * head, 2 * head, head, head]


def test_too_few_heads_replicates(tmp_path):
    """2 heads cannot go to 4 ranks: Q/K/V stay whole; the output projection, now a last
    layer, is column-parallel with an AllGather. Still exact."""
    path = _attention(tmp_path / "attn.mindir", 4, 16, 2, np.random.default_rng(4))
    report = _check(path, 4, tmp_path)
    assert {w.name for w in report.weights if w.split} == {"wo", "bo"}
    assert report.all_reduces == 0 and report.all_gathers == 1


def _embedding_lm(path, vocab, d, rng, seq=5):
    """Token ids -> embedding (Gather) -> linear -> LM head ([seq, vocab] logits)."""
    b = GraphBuilder("lm")
    ids = b.input("ids", [seq], np.int32)
    e = b.op("Gather", [b.param("embedding", rng.standard_normal((vocab, d)).astype(np.float32)),
                        ids, b.const(0)])
    h = b.op("MatMul", [e, b.param("w", rng.standard_normal((d, d)).astype(np.float32))],
             {"transpose_a": False, "transpose_b": False})
    h = b.op("Tanh", [h])
    y = b.op("MatMul", [h, b.param("head", rng.standard_normal((vocab, d)).astype(np.float32))],
             {"transpose_a": False, "transpose_b": True})
    b.output(y)
    b.save(str(path))
    return path


@pytest.mark.parametrize("n", [2, 4])
def test_embedding_and_lm_head(tmp_path, n):
    path = _embedding_lm(tmp_path / "lm.mindir", 30, 8, np.random.default_rng(5))
    report = _check(path, n, tmp_path, int_inputs=30)
    roles = {w.name: w.role for w in report.weights}
    # the linear layer in between is column-parallel; its shard would meet the head: the head
    # is row-parallel there, so the LM head is the linear's partner, not an AllGather
    assert roles["embedding"] == "vocab"
    assert report.sharded_share > 0.9
    assert report.all_gathers + report.all_reduces >= 2


def test_strategy_rules(tmp_path):
    rng = np.random.default_rng(9)
    path = _mlp(tmp_path / "mlp.mindir", [8, 16, 8], True, (False,), rng)
    strategy = tmp_path / "s.json"
    strategy.write_text(json.dumps({"weights": {"w0": "replicate", "w1": "replicate"}}))
    report = _check(path, 2, tmp_path, strategy=str(strategy))
    assert not any(w.split for w in report.weights)
    assert report.all_reduces == 0


def test_strategy_forced_split_gathers(tmp_path):
    """A rule splits the last layer on its own: column-parallel + AllGather."""
    rng = np.random.default_rng(10)
    path = _mlp(tmp_path / "mlp.mindir", [8, 16, 8], False, (False,), rng)
    report = _check(path, 2, tmp_path,
                    strategy={"weights": {"w0": "replicate", "w1": {"split": 1}}})
    split = {w.name: w.axis for w in report.weights if w.split}
    assert split == {"w1": 1}
    assert report.all_gathers == 1


def test_strategy_errors(tmp_path):
    rng = np.random.default_rng(11)
    path = _mlp(tmp_path / "mlp.mindir", [8, 16, 8], False, (False,), rng)
    with pytest.raises(RuntimeError, match="does not have"):
        mslite.split(path, 2, tmp_path / "o", strategy={"weights": {"nope": "replicate"}})
    with pytest.raises(RuntimeError, match="cannot be split on axis 0"):
        mslite.split(path, 2, tmp_path / "o", strategy={"weights": {"w0": {"split": 0}}})
    with pytest.raises(ValueError):
        load_strategy({"weights": {"w0": {"split": -1}}})
    with pytest.raises(ValueError):
        load_strategy({"layers": {}})
    assert load_strategy("auto") == []


def test_cli(tmp_path):
    rng = np.random.default_rng(12)
    path = _mlp(tmp_path / "mlp.mindir", [8, 16, 8], True, (False,), rng)
    out = subprocess.run([sys.executable, "-m", "shardlite", "split", str(path), "-n", "2",
                          "-o", str(tmp_path / "cli")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "1 AllReduce" in out.stdout and "column" in out.stdout
    assert (tmp_path / "cli" / "mlp1.mindir").exists()
    # a reader that has left (`| true`, as `| head` once it has its lines): no error about the
    # broken pipe
    gone = subprocess.run(f"{sys.executable} -m shardlite info {tmp_path / 'cli' / 'mlp1.mindir'}"
                          " | true", shell=True, capture_output=True, text=True)
    assert gone.stderr == "", gone.stderr


def _mindspore_python():
    """A Python that has mindspore: this one, $SL_MINDSPORE_PYTHON, or /tmp/ms-venv's."""
    import importlib.util

    if importlib.util.find_spec("mindspore") is not None:
        return sys.executable
    for candidate in (os.environ.get("SL_MINDSPORE_PYTHON"), "/tmp/ms-venv/bin/python"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def test_mindspore_loads_split_files(tmp_path):
    """MindSpore itself reads the rank models (mindspore.load), weights in _variables included."""
    python = _mindspore_python()
    if python is None:
        pytest.skip("mindspore is not installed (pip install mindspore, or set "
                    "SL_MINDSPORE_PYTHON to a Python that has it)")
    path = _attention(tmp_path / "attn.mindir", 4, 16, 4, np.random.default_rng(13))
    report = mslite.split(path, 2, tmp_path / "ms")
    script = ("import sys, mindspore as ms\n"
              "for f in sys.argv[1:]:\n"
              "    assert ms.load(f) is not None, f\n"
              "print('ok', len(sys.argv) - 1)\n")
    out = subprocess.run([python, "-c", script, *report.files], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and "ok 2" in out.stdout, out.stderr[-2000:]
