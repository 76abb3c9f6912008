"""ori_net.mindir (LeNet exported by MindSpore 2.0): shardlite against a numpy LeNet whose weights
and layer attributes are read from the same file by mindir_reader."""

import numpy as np
import pytest

import mindir_reader
from conftest import predict
from test_ops import conv2d_ref, pool2d_ref

LENET_OPS = ["Load", "Conv2D", "ReLU", "MaxPool", "Load", "Conv2D", "ReLU", "MaxPool", "Reshape",
             "MatMul", "ReLU", "MatMul", "ReLU", "MatMul", "MakeTuple", "UpdateState", "Depend"]


@pytest.fixture(scope="module")
def lenet(fixtures_dir):
    """A numpy forward function built from the file, and the file's path."""
    path = fixtures_dir / "ori_net.mindir"
    info = mindir_reader.read_model(path)
    nodes = [n for n in info["graph"]["nodes"] if n["op"] != "Constant"]
    assert [n["op"] for n in nodes] == LENET_OPS
    params = info["params_by_key"]
    consts = info["constants"]
    convs = [n for n in nodes if n["op"] == "Conv2D"]
    pools = [n for n in nodes if n["op"] == "MaxPool"]
    matmuls = [n for n in nodes if n["op"] == "MatMul"]
    (reshape,) = [n for n in nodes if n["op"] == "Reshape"]
    conv_w = [params["conv1.weight"], params["conv2.weight"]]
    assert [w.shape for w in conv_w] == [(6, 1, 5, 5), (16, 6, 5, 5)]
    fc_w = [consts[n["inputs"][1]] for n in matmuls]
    assert [w.shape for w in fc_w] == [(400, 120), (120, 84), (84, 10)]
    target = consts[reshape["inputs"][1]]
    assert target == [1, -1]

    conv_attrs = [mindir_reader.op_attrs(n) for n in convs]
    for a in conv_attrs:
        assert a["pad_mode"] == "valid" and a["group"] == 1 and a["format"] == "NCHW"
    pool_attrs = [mindir_reader.op_attrs(n) for n in pools]
    for a in pool_attrs:
        assert a["pad_mode"].lower() == "valid"
    mm_attrs = [mindir_reader.op_attrs(n) for n in matmuls]
    for a in mm_attrs:
        assert a["transpose_a"] is False and a["transpose_b"] is False

    def forward(x):
        h = x.astype(np.float64)
        for w, ca, pa in zip(conv_w, conv_attrs, pool_attrs):
            h = conv2d_ref(h, w, tuple(ca["stride"][-2:]), tuple(ca["dilation"][-2:]), "valid")
            h = np.maximum(h, 0)
            h = pool2d_ref(h, tuple(pa["kernel_size"][-2:]), tuple(pa["strides"][-2:]), "valid",
                           "max")
        h = h.reshape(target)
        for i, w in enumerate(fc_w):
            h = h @ w.astype(np.float64)
            if i < 2:
                h = np.maximum(h, 0)
        return h

    return forward, path


def test_lenet_reference_shapes(lenet):
    forward, _ = lenet
    assert forward(np.zeros((1, 1, 32, 32), np.float32)).shape == (1, 10)


@pytest.mark.parametrize("seed", range(4))
def test_lenet_matches_numpy(mslite, load_model, lenet, seed):
    forward, path = lenet
    model = load_model(path)
    (inp,) = model.get_inputs()
    assert list(inp.shape) == [1, 1, 32, 32] and inp.dtype == mslite.DataType.FLOAT32
    rng = np.random.default_rng(seed)
    for _ in range(2):
        x = rng.uniform(-1, 1, (1, 1, 32, 32)).astype(np.float32)
        (y,) = predict(model, x)
        assert y.dtype == np.float32 and y.shape == (1, 10)
        np.testing.assert_allclose(y, forward(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_lenet_thread_counts_agree(mslite, lenet, threads):
    forward, path = lenet
    ctx = mslite.Context()
    ctx.target = ["cpu"]
    ctx.cpu.thread_num = threads
    model = mslite.Model()
    model.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    x = np.random.default_rng(99).standard_normal((1, 1, 32, 32)).astype(np.float32)
    (y,) = predict(model, x)
    np.testing.assert_allclose(y, forward(x), rtol=1e-4, atol=1e-5)
