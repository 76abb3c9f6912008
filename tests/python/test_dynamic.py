"""Dynamic dimensions: a model whose batch is -1 reports it, refuses to run until it has a
shape, and computes correctly after resize (explicit, or implied by predict's numpy inputs),
for several batch sizes in turn (the arena is re-planned each time)."""

import numpy as np
import pytest

from shardlite.builder import GraphBuilder


@pytest.fixture
def mlp_path(tmp_path):
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((16, 8)).astype(np.float32)
    b1 = rng.standard_normal(16).astype(np.float32)
    w2 = rng.standard_normal((8, 16)).astype(np.float32)
    b = GraphBuilder("mlp")
    x = b.input("x", [-1, 8], np.float32)
    h = b.op("MatMul", [x, b.param("w1", w1)], {"transpose_a": False, "transpose_b": True})
    h = b.op("ReLU", [b.op("BiasAdd", [h, b.param("b1", b1)], {"format": "NCHW"})])
    y = b.op("MatMul", [h, b.param("w2", w2)], {"transpose_a": False, "transpose_b": True})
    b.output(y)
    path = tmp_path / "mlp.mindir"
    b.save(path)

    def reference(xv):
        return np.maximum(xv @ w1.T + b1, 0) @ w2.T

    return path, reference


def test_dynamic_batch_reported_and_refused_until_resized(mslite, load_model, mlp_path):
    path, _ = mlp_path
    model = load_model(path)
    (inp,) = model.get_inputs()
    assert inp.shape == [-1, 8]
    with pytest.raises(RuntimeError, match="resize"):
        model.predict(model.get_inputs())


def test_resize_then_predict(mslite, load_model, mlp_path):
    path, reference = mlp_path
    model = load_model(path)
    rng = np.random.default_rng(0)
    for batch in (3, 1, 17, 0, 5):
        inputs = model.get_inputs()
        model.resize(inputs, [[batch, 8]])
        inputs = model.get_inputs()
        assert inputs[0].shape == [batch, 8]
        xv = rng.standard_normal((batch, 8)).astype(np.float32)
        inputs[0].set_data_from_numpy(xv)
        (out,) = model.predict(inputs)
        assert out.shape == [batch, 8]
        np.testing.assert_allclose(out.get_data_to_numpy(), reference(xv), rtol=1e-5, atol=1e-5)


def test_predict_with_arrays_of_new_batch(mslite, load_model, mlp_path):
    path, reference = mlp_path
    model = load_model(path)
    rng = np.random.default_rng(1)
    for batch in (4, 2, 9):
        xv = rng.standard_normal((batch, 8)).astype(np.float32)
        (out,) = model.predict([xv])
        np.testing.assert_allclose(out.get_data_to_numpy(), reference(xv), rtol=1e-5, atol=1e-5)


def test_resize_to_wrong_rank_fails(mslite, load_model, mlp_path):
    path, _ = mlp_path
    model = load_model(path)
    with pytest.raises(RuntimeError, match="rank"):
        model.resize(model.get_inputs(), [[2, 8, 1]])
    with pytest.raises(RuntimeError):
        model.resize(model.get_inputs(), [[2, 7]])  # MatMul's inner dims disagree


def test_failed_resize_keeps_the_previous_shapes(mslite, load_model, mlp_path):
    path, reference = mlp_path
    model = load_model(path)
    model.resize(model.get_inputs(), [[3, 8]])
    with pytest.raises(RuntimeError):
        model.resize(model.get_inputs(), [[3, 7]])
    inputs = model.get_inputs()
    assert inputs[0].shape == [3, 8]
    xv = np.ones((3, 8), np.float32)
    inputs[0].set_data_from_numpy(xv)
    (out,) = model.predict(inputs)
    np.testing.assert_allclose(out.get_data_to_numpy(), reference(xv), rtol=1e-5, atol=1e-5)
