"""Shared fixtures: where the real MindIR files are, the shardlite module, and helpers that build a
model file with mindir_builder, load it through the mslite-style API and run it."""

import os
import pathlib
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))  # mindir_builder / mindir_reader

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
