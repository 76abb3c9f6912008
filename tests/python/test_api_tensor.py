"""Tensor, DataType and Format against the MindSpore Lite API (shared/reference/mslite_api.md,
"Tensor"): construction, zero-copy wrapping, properties, set/get data and their errors."""

import numpy as np
import pytest

from conftest import LITE_DTYPES


def msg(excinfo):
    return str(excinfo.value)


DATATYPES = {"UNKNOWN": 0, "BOOL": 30, "INT8": 32, "INT16": 33, "INT32": 34, "INT64": 35,
             "UINT8": 37, "UINT16": 38, "UINT32": 39, "UINT64": 40, "FLOAT16": 42, "FLOAT32": 43,
             "FLOAT64": 44, "INVALID": 2147483647, "BFLOAT16": 46}

FORMATS = {"DEFAULT": -1, "NCHW": 0, "NHWC": 1, "NHWC4": 2, "HWKC": 3, "HWCK": 4, "KCHW": 5,
           "CKHW": 6, "KHWC": 7, "CHWK": 8, "HW": 9, "HW4": 10, "NC": 11, "NC4": 12, "NC4HW4": 13,
           "NCDHW": 15, "NWC": 16, "NCW": 17, "NDHWC": 18, "NC8HW8": 19}


@pytest.mark.parametrize("name,value", sorted(DATATYPES.items()))
def test_datatype_values(mslite, name, value):
    assert getattr(mslite.DataType, name).value == value


@pytest.mark.parametrize("name,value", sorted(FORMATS.items()))
def test_format_values(mslite, name, value):
    assert getattr(mslite.Format, name).value == value


def test_enums_have_no_extra_members(mslite):
    assert {m.name for m in mslite.DataType} == set(DATATYPES)
    assert {m.name for m in mslite.Format} == set(FORMATS)


def test_default_tensor_is_float32_scalar(mslite):
    t = mslite.Tensor()
    assert t.dtype == mslite.DataType.FLOAT32
    assert list(t.shape) == []
    assert t.element_num == 1
    assert t.data_size == 4
    assert t.name == ""
    assert isinstance(t.device, str)
    assert t.format == mslite.Format.NCHW


@pytest.mark.parametrize("np_dtype", sorted(LITE_DTYPES, key=str))
def test_tensor_from_numpy_properties(mslite, np_dtype):
    a = (np.arange(24) % 2).astype(np_dtype).reshape(2, 3, 4)
    t = mslite.Tensor(a)
    assert t.dtype.value == LITE_DTYPES[np_dtype]
    assert list(t.shape) == [2, 3, 4]
    assert isinstance(t.shape, list) and all(type(d) is int for d in t.shape)
    assert t.element_num == 24
    assert t.data_size == 24 * np.dtype(np_dtype).itemsize
    out = t.get_data_to_numpy()
    assert out.dtype == np_dtype and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)


def test_tensor_wraps_numpy_without_copy(mslite):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = mslite.Tensor(a)
    a[1, 2] = 100.0
    assert t.get_data_to_numpy()[1, 2] == 100.0


def test_asarray_of_tensor_is_zero_copy(mslite):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = mslite.Tensor(a)
    view = np.asarray(t)
    assert view.shape == (2, 3) and view.dtype == np.int32
    assert np.shares_memory(view, a)
    view[0, 0] = -7
    assert a[0, 0] == -7 and t.get_data_to_numpy()[0, 0] == -7


def test_tensor_with_matching_shape_and_dtype(mslite):
    a = np.zeros((2, 2), np.float16)
    t = mslite.Tensor(a, shape=[2, 2], dtype=mslite.DataType.FLOAT16)
    assert t.dtype == mslite.DataType.FLOAT16 and list(t.shape) == [2, 2]


def test_tensor_shape_mismatch_is_type_error(mslite):
    with pytest.raises(TypeError):
        mslite.Tensor(np.zeros((2, 3), np.float32), shape=[3, 2])


def test_tensor_dtype_mismatch_is_type_error(mslite):
    with pytest.raises(TypeError):
        mslite.Tensor(np.zeros((2, 3), np.float32), dtype=mslite.DataType.INT32)


def test_tensor_from_shape_and_dtype(mslite):
    t = mslite.Tensor(shape=[3, 2], dtype=mslite.DataType.INT64)
    assert list(t.shape) == [3, 2] and t.dtype == mslite.DataType.INT64
    assert t.element_num == 6 and t.data_size == 48


def test_tensor_name_and_format_settable(mslite):
    t = mslite.Tensor(np.zeros(3, np.float32))
    t.name = "w"
    t.format = mslite.Format.NHWC
    assert t.name == "w" and t.format == mslite.Format.NHWC


def test_dtype_and_shape_settable(mslite):
    """The reference's pattern: an empty Tensor told its dtype and shape, then given its data."""
    t = mslite.Tensor()
    t.dtype = mslite.DataType.INT32
    t.shape = [2, 3]
    assert (t.dtype, t.shape, t.data_size) == (mslite.DataType.INT32, [2, 3], 24)
    np.testing.assert_array_equal(t.get_data_to_numpy(), np.zeros((2, 3), np.int32))
    t.shape = (3, 2)  # the same element count: the data is kept, reshaped
    t.set_data_from_numpy(np.arange(6, dtype=np.int32))
    t.shape = [6]
    np.testing.assert_array_equal(t.get_data_to_numpy(), np.arange(6))
    t.shape = [4]  # another count: zero-filled
    np.testing.assert_array_equal(t.get_data_to_numpy(), np.zeros(4, np.int32))
    with pytest.raises(TypeError):
        t.dtype = np.float32
    with pytest.raises(TypeError):
        t.shape = [2.0]
    with pytest.raises(ValueError):
        t.shape = [-1, 2]
    assert t.shape == [4]


def test_predict_with_a_tensor_described_like_the_input(mslite, matmul_model, load_model):
    """The reference's predict example: a new Tensor takes the input's dtype, shape, format and
    name, gets flat data (np.fromfile's), and predict computes with it."""
    path, w = matmul_model()
    model = load_model(path)
    (inp,) = model.get_inputs()
    t = mslite.Tensor()
    t.dtype, t.shape, t.format, t.name = inp.dtype, inp.shape, inp.format, inp.name
    x = np.arange(8, dtype=np.float32) / 8
    t.set_data_from_numpy(x)
    (out,) = model.predict([t])
    np.testing.assert_allclose(out.get_data_to_numpy(), x.reshape(2, 4) @ w, rtol=1e-5)
    out.shape = [3, 2]  # a result: reshaped, then zero-filled
    np.testing.assert_allclose(out.get_data_to_numpy(), (x.reshape(2, 4) @ w).reshape(3, 2),
                               rtol=1e-5)
    out.shape = [4]
    np.testing.assert_array_equal(out.get_data_to_numpy(), np.zeros(4, np.float32))
    for attr, value in (("shape", [3, 4]), ("dtype", mslite.DataType.FLOAT64)):
        with pytest.raises(RuntimeError) as e:
            setattr(inp, attr, value)
        assert "Model.resize" in msg(e)


def test_bfloat16_extension(mslite):
    t = mslite.Tensor(shape=[2], dtype=mslite.DataType.BFLOAT16)
    assert t.dtype.value == 46 and t.element_num == 2 and t.data_size == 4


def test_set_data_from_numpy_replaces_values(mslite):
    t = mslite.Tensor(np.zeros((2, 3), np.float32))
    b = np.arange(6, dtype=np.float32).reshape(2, 3) * 1.5
    t.set_data_from_numpy(b)
    np.testing.assert_array_equal(t.get_data_to_numpy().reshape(2, 3), b)
    assert list(t.shape) == [2, 3]


def test_set_data_from_numpy_same_bytes_other_shape(mslite):
    # the reference compares dtype and byte size only: a flat array fills a [2, 3] tensor
    t = mslite.Tensor(np.zeros((2, 3), np.float32))
    t.set_data_from_numpy(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(t.get_data_to_numpy().reshape(-1), np.arange(6))


def test_set_data_from_numpy_fortran_order(mslite):
    t = mslite.Tensor(np.zeros((3, 4), np.float32))
    b = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    t.set_data_from_numpy(b)
    np.testing.assert_array_equal(t.get_data_to_numpy().reshape(3, 4), b)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, None, "abc"])
def test_set_data_from_numpy_not_ndarray(mslite, bad):
    t = mslite.Tensor(np.zeros(2, np.float32))
    with pytest.raises(TypeError) as e:
        t.set_data_from_numpy(bad)
    assert msg(e).startswith("numpy_obj must be numpy.ndarray, but got ")


def test_set_data_from_numpy_dtype_mismatch(mslite):
    t = mslite.Tensor(np.zeros(4, np.float32))
    with pytest.raises(RuntimeError) as e:
        t.set_data_from_numpy(np.zeros(4, np.int32))
    assert msg(e).startswith("data type not equal! ")
    np.testing.assert_array_equal(t.get_data_to_numpy(), np.zeros(4, np.float32))


def test_set_data_from_numpy_size_mismatch(mslite):
    t = mslite.Tensor(np.zeros(4, np.float32))
    with pytest.raises(RuntimeError) as e:
        t.set_data_from_numpy(np.zeros(5, np.float32))
    assert msg(e).startswith("data size not equal! ")


def test_get_data_to_numpy_of_model_io(mslite, matmul_model, load_model):
    path, w = matmul_model()
    model = load_model(path)
    (inp,) = model.get_inputs()
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(inp.get_data_to_numpy().reshape(2, 4), x)
    (out,) = model.predict(model.get_inputs())
    y = out.get_data_to_numpy()
    assert y.dtype == np.float32 and y.shape == (2, 3)
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-6)


def test_model_input_errors(mslite, matmul_model, load_model):
    path, _ = matmul_model()
    (inp,) = load_model(path).get_inputs()
    with pytest.raises(RuntimeError) as e:
        inp.set_data_from_numpy(np.zeros((2, 4), np.float64))
    assert msg(e).startswith("data type not equal! ")
    with pytest.raises(RuntimeError) as e:
        inp.set_data_from_numpy(np.zeros((2, 5), np.float32))
    assert msg(e).startswith("data size not equal! ")
    with pytest.raises(TypeError):
        inp.set_data_from_numpy([[0.0] * 4] * 2)


def test_model_input_fortran_order(mslite, matmul_model, load_model):
    path, w = matmul_model()
    model = load_model(path)
    (inp,) = model.get_inputs()
    x = np.asfortranarray(np.arange(8, dtype=np.float32).reshape(2, 4) - 3)
    inp.set_data_from_numpy(x)
    (out,) = model.predict(model.get_inputs())
    np.testing.assert_allclose(out.get_data_to_numpy(), np.ascontiguousarray(x) @ w, rtol=1e-5)


def test_non_native_byte_order_is_converted(mslite, matmul_model, load_model):
    """Big-endian data fills a model input and a user Tensor with its values, not its bytes."""
    path, w = matmul_model()
    model = load_model(path)
    (inp,) = model.get_inputs()
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5
    inp.set_data_from_numpy(x.astype(">f4"))
    (out,) = model.predict(model.get_inputs())
    np.testing.assert_allclose(out.get_data_to_numpy(), x @ w, rtol=1e-5)
    t = mslite.Tensor(np.zeros((2, 4), np.float32))
    t.set_data_from_numpy(x.astype(">f4"))
    np.testing.assert_array_equal(np.asarray(t.get_data_to_numpy(), np.float32), x)
    with pytest.raises(RuntimeError, match="data type not equal"):
        t.set_data_from_numpy(x.astype(">f8"))


def test_asarray_of_model_input_writes_what_predict_sees(mslite, matmul_model, load_model):
    path, w = matmul_model()
    model = load_model(path)
    inputs = model.get_inputs()
    view = np.asarray(inputs[0])
    assert view.shape == (2, 4) and view.dtype == np.float32
    x = np.random.default_rng(1).uniform(-1, 1, (2, 4)).astype(np.float32)
    view[...] = x
    np.testing.assert_array_equal(inputs[0].get_data_to_numpy().reshape(2, 4), x)
    (out,) = model.predict(inputs)
    np.testing.assert_allclose(out.get_data_to_numpy(), x @ w, rtol=1e-5, atol=1e-6)
    # a second write through the same view is seen by the next predict
    view[...] = 2 * x
    (out,) = model.predict(model.get_inputs())
    np.testing.assert_allclose(out.get_data_to_numpy(), 2 * x @ w, rtol=1e-5, atol=1e-6)


def test_model_tensor_properties(mslite, matmul_model, load_model):
    path, _ = matmul_model(in_shape=[5, 4])
    model = load_model(path)
    (inp,) = model.get_inputs()
    assert inp.dtype == mslite.DataType.FLOAT32
    assert list(inp.shape) == [5, 4] and inp.element_num == 20 and inp.data_size == 80
    assert isinstance(inp.name, str) and inp.name
    assert isinstance(inp.format, mslite.Format)
    assert isinstance(inp.device, str)


def test_tensor_str_is_readable(mslite):
    t = mslite.Tensor(np.zeros((2, 3), np.int8))
    t.name = "abc"
    text = str(t)
    for part in ("abc", "INT8", "[2, 3]", "6"):
        assert part in text, (part, text)
