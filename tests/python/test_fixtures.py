"""Real MindIR files exported by MindSpore (1.1 to 2.5): each loads, and each unencrypted one runs
and matches a numpy computation of the graph read from the same file by mindir_reader."""

import numpy as np
import pytest

import mindir_reader
from conftest import LITE_DTYPES, predict

PLAIN = [
    "relu.mindir",
    "add_no_encrpty.mindir",
    "ori_net.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64_v2.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_parameter_node_to_fp64.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_value_node_to_fp64.mindir",
    "ms_2_5_0/test_ops_log_cast_primitive_attribute_fp32_to_fp64.mindir",
    "ms_2_5_0/test_ops_upsample_cast_tuple_float_fp32_value_node_to_fp64.mindir",
]
ENCRYPTED = "add_encrpty_key_0123456789ABCDEF.mindir"


def celu(x, alpha):
    x = np.asarray(x, np.float64)
    alpha = float(alpha)
    return np.maximum(0.0, x) + np.minimum(0.0, alpha * (np.exp(x / alpha) - 1.0))


def check_output(out, expected, dtype, rtol=1e-6, atol=1e-7):
    assert out.dtype == np.dtype(dtype)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


def check_tensor(mslite, tensor, dims, dtype):
    assert isinstance(tensor.name, str) and tensor.name
    assert list(tensor.shape) == list(dims)
    assert int(getattr(tensor.dtype, "value", tensor.dtype)) == LITE_DTYPES[np.dtype(dtype)]
    assert tensor.dtype == getattr(mslite.DataType, np.dtype(dtype).name.upper())
    assert tensor.element_num == int(np.prod(dims, dtype=np.int64))
    assert tensor.data_size == tensor.element_num * np.dtype(dtype).itemsize


@pytest.mark.parametrize("name", PLAIN)
def test_fixture_inputs_outputs_match_file(mslite, fixtures_dir, load_model, name):
    """Every plain fixture loads; its inputs are the file's graph inputs (a scalar one is 0-d
    float32) and, after a predict, its output has the dtype and shape the file declares."""
    path = fixtures_dir / name
    graph = mindir_reader.read_model(path)["graph"]
    model = load_model(path)
    inputs = model.get_inputs()
    assert len(inputs) == len(graph["inputs"])
    arrays = []
    for tensor, info in zip(inputs, graph["inputs"]):
        # MindSpore 2.5 writes a float scalar input as a ValueInfoProto with no tensor
        dtype = info["dtype"] or np.float32
        check_tensor(mslite, tensor, info["dims"], dtype)
        arrays.append(np.full(info["dims"], 1.5 if dtype != np.int64 else 2, dtype))
    predict(model, *arrays)
    (declared,) = graph["output_info"]
    (out,) = model.get_outputs()
    check_tensor(mslite, out, declared["dims"], declared["dtype"])


def test_relu(mslite, fixtures_dir, load_model):
    model = load_model(fixtures_dir / "relu.mindir")
    check_tensor(mslite, model.get_inputs()[0], [1, 1, 2, 2], np.float32)
    for x in (np.array([[[[-1.5, 0.0], [2.25, -0.0]]]], np.float32),
              np.random.default_rng(0).standard_normal((1, 1, 2, 2)).astype(np.float32)):
        (y,) = predict(model, x)
        check_output(y, np.maximum(x, 0), np.float32, rtol=0, atol=0)
        check_tensor(mslite, model.get_outputs()[0], [1, 1, 2, 2], np.float32)


def test_add_no_encrypt(mslite, fixtures_dir, load_model):
    """MindSpore 1.1: the Add node's name differs from its output, which the graph returns."""
    model = load_model(fixtures_dir / "add_no_encrpty.mindir")
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal((2, 2)).astype(np.float32)
        y = rng.standard_normal((2, 2)).astype(np.float32)
        (z,) = predict(model, x, y)
        check_output(z, x + y, np.float32, rtol=0, atol=0)


def test_encrypted_fails_clearly(mslite, fixtures_dir):
    model = mslite.Model()
    ctx = mslite.Context()
    ctx.target = ["cpu"]
    with pytest.raises(RuntimeError, match="(?i)encrypt"):
        model.build_from_file(str(fixtures_dir / ENCRYPTED), mslite.ModelType.MINDIR, ctx)


def _celu_alpha_const(model_info):
    (value,) = [v for v in model_info["constants"].values() if isinstance(v, float)]
    return value


def test_celu_cnode_to_fp64(mslite, fixtures_dir, load_model):
    """alpha (a float32 scalar input) + 0.01 (a Constant) in float32, then CeLU on float64 x."""
    path = fixtures_dir / "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64.mindir"
    info = mindir_reader.read_model(path)
    ops = [n["op"] for n in info["graph"]["nodes"] if n["op"] != "Constant"]
    assert ops == ["ScalarAdd", "CeLU"]
    add = _celu_alpha_const(info)
    assert add == pytest.approx(0.01)
    model = load_model(path)
    rng = np.random.default_rng(2)
    for alpha in (1.0, 0.5, 2.75):
        x = rng.standard_normal((2, 2)) * 3
        (y,) = predict(model, x, np.array(alpha, np.float32))
        a = np.float32(alpha) + np.float32(add)
        check_output(y, celu(x, a), np.float64, rtol=1e-6)


def test_celu_cnode_to_fp64_v2(mslite, fixtures_dir, load_model):
    """alpha = count_nonzero(y) * 0.5 through NonZero -> Shape -> TupleGetItem -> ScalarMul."""
    path = fixtures_dir / "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64_v2.mindir"
    info = mindir_reader.read_model(path)
    ops = [n["op"] for n in info["graph"]["nodes"] if n["op"] != "Constant"]
    assert ops == ["NonZero", "Shape", "TupleGetItem", "ScalarMul", "CeLU"]
    scale = _celu_alpha_const(info)
    assert scale == 0.5
    model = load_model(path)
    rng = np.random.default_rng(3)
    for y in ([1, 0, 0, 0, 0], [0, 3, -2, 0, 7], [5, 5, 5, 5, 5], [0, 0, 0, 0, -9]):
        y = np.array(y, np.int64)
        x = (rng.standard_normal((2, 2)) * 2).astype(np.float32)
        (out,) = predict(model, x, y)
        alpha = np.count_nonzero(y) * scale
        check_output(out, celu(x, alpha).astype(np.float32), np.float32, rtol=1e-5, atol=1e-6)


def test_celu_parameter_node_to_fp64(mslite, fixtures_dir, load_model):
    path = fixtures_dir / "ms_2_5_0/test_ops_celu_cast_float_fp32_parameter_node_to_fp64.mindir"
    model = load_model(path)
    check_tensor(mslite, model.get_inputs()[1], [], np.float32)
    rng = np.random.default_rng(4)
    for alpha in (1.0, 0.25, 3.0):
        x = rng.standard_normal((2, 2)) * 2
        (y,) = predict(model, x, np.array(alpha, np.float32))
        check_output(y, celu(x, alpha), np.float64, rtol=1e-6)
        check_tensor(mslite, model.get_outputs()[0], [2, 2], np.float64)


def test_celu_value_node_to_fp64(mslite, fixtures_dir, load_model):
    path = fixtures_dir / "ms_2_5_0/test_ops_celu_cast_float_fp32_value_node_to_fp64.mindir"
    alpha = _celu_alpha_const(mindir_reader.read_model(path))
    assert alpha == pytest.approx(0.99)
    model = load_model(path)
    x = np.array([[-3.0, -0.5], [0.0, 2.5]])
    (y,) = predict(model, x)
    check_output(y, celu(x, alpha), np.float64, rtol=1e-6)


def test_log_primitive_attributes(mslite, fixtures_dir, load_model):
    path = fixtures_dir / "ms_2_5_0/test_ops_log_cast_primitive_attribute_fp32_to_fp64.mindir"
    info = mindir_reader.read_model(path)
    (node,) = [n for n in info["graph"]["nodes"] if n["op"] == "Log"]
    attrs = mindir_reader.op_attrs(node)
    assert (attrs["base"], attrs["scale"], attrs["shift"]) == (-1.0, 1.0, 0.0)
    model = load_model(path)
    x = np.array([0.5, 1.0, 123.25])
    (y,) = predict(model, x)
    check_output(y, np.log(attrs["shift"] + attrs["scale"] * x), np.float64, rtol=1e-12)


def upsample_nearest3d(x, scales):
    out = x
    for axis, scale in zip((2, 3, 4), scales):
        n_in = x.shape[axis]
        n_out = int(np.floor(n_in * scale))
        src = np.minimum(np.floor(np.arange(n_out) * (1.0 / scale)).astype(np.int64), n_in - 1)
        out = np.take(out, src, axis=axis)
    return out


def test_upsample_nearest3d(mslite, fixtures_dir, load_model):
    path = fixtures_dir / PLAIN[-1]
    info = mindir_reader.read_model(path)
    (node,) = [n for n in info["graph"]["nodes"] if n["op"] == "UpsampleNearest3D"]
    size = info["constants"][node["inputs"][1]]
    scales = info["constants"][node["inputs"][2]]
    assert size is None and scales == [0.5, 1.5, 2.5]
    model = load_model(path)
    x = np.arange(16, dtype=np.float64).reshape(1, 2, 2, 2, 2) * 1.5 - 4
    (y,) = predict(model, x)
    expected = upsample_nearest3d(x, scales)
    assert expected.shape == (1, 2, 1, 3, 5)
    # spot-check the reference by hand: depth keeps plane 0, H maps 0,0,1, W maps 0,0,0,1,1
    assert expected[0, 1, 0, 2, 3] == x[0, 1, 0, 1, 1]
    check_output(y, expected, np.float64, rtol=0, atol=0)
    check_tensor(mslite, model.get_outputs()[0], [1, 2, 1, 3, 5], np.float64)
