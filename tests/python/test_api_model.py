"""Model against the MindSpore Lite API (shared/reference/mslite_api.md, "Model"): the checks of
build_from_file in their order, config files and config_dict, get_model_info, get_inputs/outputs,
predict (Tensors, numpy arrays, outputs=), resize, update_weights and thread safety."""


import numpy as np
import pytest

from conftest import concurrency_ratio, machine_concurrency_ratio, heavy_builder, matmul_builder, run_in_threads
from shardlite.builder import GraphBuilder, Msg


def msg(excinfo):
    return str(excinfo.value)


class UserInfoBuilder(GraphBuilder):
    """A GraphBuilder that also writes ModelProto.user_info (field 14, map<string, string>)."""

    def __init__(self, *args, user_info=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_info = dict(user_info or {})

    def serialize(self, packed=False, _external=None):
        data = super().serialize(packed=packed, _external=_external)
        extra = Msg(packed)
        for k, v in self.user_info.items():
            extra.lendelim(14, Msg(packed).lendelim(1, k).lendelim(2, v))
        return data + extra.bytes()  # protobuf: fields may come in any order


def build(mslite, path, context=None, **kwargs):
    model = mslite.Model()
    model.build_from_file(str(path), mslite.ModelType.MINDIR, context, **kwargs)
    return model


def out_np(outputs, i=0):
    return outputs[i].get_data_to_numpy()


# ---- ModelType ----

def test_model_type_values(mslite):
    assert mslite.ModelType.MINDIR.value == 0
    assert mslite.ModelType.MINDIR_LITE.value == 4
    assert mslite.ModelType.ONNX.value == 3


# ---- build_from_file: argument checks, in order ----

def test_build_model_path_type_checked_first(mslite):
    with pytest.raises(TypeError) as e:
        mslite.Model().build_from_file(1, "mindir", "ctx", 2)
    assert msg(e).startswith("model_path must be str, but got ")


def test_build_model_type_checked_second(mslite, tmp_path):
    with pytest.raises(TypeError) as e:
        mslite.Model().build_from_file(str(tmp_path / "missing.mindir"), 0, "ctx", 2)
    assert msg(e).startswith("model_type must be ModelType, but got ")


def test_build_context_checked_third(mslite, tmp_path):
    with pytest.raises(TypeError) as e:
        mslite.Model().build_from_file(str(tmp_path / "missing.mindir"), mslite.ModelType.MINDIR,
                                       "ctx", 2)
    assert msg(e).startswith("context must be Context, but got ")


def test_build_config_path_checked_fourth(mslite, tmp_path):
    with pytest.raises(TypeError) as e:
        mslite.Model().build_from_file(str(tmp_path / "missing.mindir"), mslite.ModelType.MINDIR,
                                       None, 2)
    assert msg(e).startswith("config_path must be str, but got ")


def test_build_missing_model_before_missing_config(mslite, tmp_path):
    with pytest.raises(RuntimeError) as e:
        mslite.Model().build_from_file(str(tmp_path / "missing.mindir"), mslite.ModelType.MINDIR,
                                       mslite.Context(), str(tmp_path / "missing.ini"))
    path = str(tmp_path / "missing.mindir")
    assert msg(e) == f"build_from_file failed, model_path does not exist! ({path!r})"


def test_build_missing_config(mslite, matmul_model, tmp_path):
    path, _ = matmul_model()
    with pytest.raises(RuntimeError) as e:
        build(mslite, path, mslite.Context(), config_path=str(tmp_path / "missing.ini"))
    missing = str(tmp_path / "missing.ini")
    assert msg(e) == f"build_from_file failed, config_path does not exist! ({missing!r})"


@pytest.mark.parametrize("bad", [["gpu_context"], {1: {"k": "v"}}, {"s": "v"}, {"s": {2: "v"}},
                                 {"s": {"k": 3}}])
def test_build_config_dict_type_errors(mslite, matmul_model, bad):
    path, _ = matmul_model()
    with pytest.raises(TypeError) as e:
        build(mslite, path, config_dict=bad)
    assert msg(e).startswith("config_dict")


def test_build_dec_key_must_be_bytes(mslite, matmul_model):
    path, _ = matmul_model()
    with pytest.raises(TypeError) as e:
        build(mslite, path, dec_key="0123456789abcdef")
    assert msg(e).startswith("dec_key must be bytes, but got ")


def test_build_default_context(mslite, matmul_model):
    path, w = matmul_model()
    model = build(mslite, path)  # context=None -> a CPU context
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w, rtol=1e-5)


def test_build_native_failure(mslite, tmp_path):
    path = tmp_path / "garbage.mindir"
    path.write_bytes(b"\x08\x96\x01this is not a MindIR file" * 10)
    with pytest.raises(RuntimeError) as e:
        build(mslite, path)
    assert msg(e).startswith("build_from_file failed! Error is ")
    assert len(msg(e)) > len("build_from_file failed! Error is ")


def test_build_mindir_lite_type_on_a_mindir_file_fails_cleanly(mslite, matmul_model):
    path, _ = matmul_model()
    with pytest.raises(RuntimeError) as e:
        mslite.Model().build_from_file(str(path), mslite.ModelType.MINDIR_LITE, None)
    assert msg(e).startswith("build_from_file failed")


def test_build_same_file_twice(mslite, matmul_model):
    path, w = matmul_model()
    a, b = build(mslite, path), build(mslite, path)
    x = np.full((2, 4), 0.5, np.float32)
    np.testing.assert_allclose(out_np(a.predict([x])), out_np(b.predict([x])))


# ---- config file and config_dict ----

def dyn_model(tmp_model, w):
    """x: [-1, 4] float32 @ w."""
    return tmp_model(matmul_builder(w, [-1, 4]))


@pytest.fixture
def w43():
    return np.random.default_rng(3).uniform(-1, 1, (4, 3)).astype(np.float32)


def declared_matmul(w, x_dims, out_abstract):
    """x @ w whose output's ValueInfo declares out_abstract (dtype, dims), as exports write it."""
    from shardlite.builder import GraphBuilder

    b = GraphBuilder("net")
    x = b.input("x", x_dims, np.float32)
    b.output(b.op("MatMul", [x, b.param("w", w)], {"transpose_a": False, "transpose_b": False},
                  abstract=out_abstract))
    return b


def test_get_outputs_before_a_resize_reports_the_declared_output(mslite, tmp_model, w43):
    """A model with dynamic input dims has no inferred shapes before a resize: get_outputs
    reports what the file declares for its outputs (dtype, -1 dims), then the inferred ones."""
    model = build(mslite, tmp_model(declared_matmul(w43, [-1, 4], (np.float32, [-1, 3]))))
    (out,) = model.get_outputs()
    assert (out.dtype, out.shape, out.element_num, out.data_size) == \
        (mslite.DataType.FLOAT32, [-1, 3], 0, 0)
    model.resize(model.get_inputs(), [[2, 4]])
    (out,) = model.get_outputs()
    assert (out.dtype, out.shape, out.data_size) == (mslite.DataType.FLOAT32, [2, 3], 24)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w43, rtol=1e-5)


def test_inference_replaces_a_wrong_declared_output(mslite, tmp_model, w43):
    model = build(mslite, tmp_model(declared_matmul(w43, [2, 4], (np.int32, [9, 9]))))
    (out,) = model.get_outputs()
    assert (out.dtype, out.shape) == (mslite.DataType.FLOAT32, [2, 3])


def input_name(mslite, path):
    return build(mslite, path).get_inputs()[0].name


def test_config_input_shape_resizes_at_build(mslite, tmp_model, tmp_path, w43):
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    cfg = tmp_path / "config.ini"
    cfg.write_text("[gpu_context]\ninput_shape=%s:[3,4]\ndynamic_dims=[1~4]\n" % name)
    model = build(mslite, path, config_path=str(cfg))
    assert list(model.get_inputs()[0].shape) == [3, 4]
    assert model.get_model_info("input_shape") == "%s:[3,4]" % name
    assert model.get_model_info("dynamic_dims") == "[1~4]"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    model.get_inputs()[0].set_data_from_numpy(x)
    np.testing.assert_allclose(out_np(model.predict(model.get_inputs())), x @ w43, rtol=1e-5)


def test_config_input_shape_by_parameter_name(mslite, tmp_model, tmp_path, w43):
    """input_shape may name an input as MindSpore does, by what follows the first ':' of its
    whole name ("x" for "net:x"); a dynamic range (-1) is only described, whatever it names."""
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    assert ":" in name
    short = name.split(":", 1)[1]
    model = build(mslite, path, config_dict={"gpu_context": {"input_shape": short + ":[3,4]"}})
    assert list(model.get_inputs()[0].shape) == [3, 4]
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    model.get_inputs()[0].set_data_from_numpy(x)
    np.testing.assert_allclose(out_np(model.predict(model.get_inputs())), x @ w43, rtol=1e-5)
    for described in (short + ":[-1,4]", "other:[-1,4]"):
        model = build(mslite, path, config_dict={"gpu_context": {"input_shape": described}})
        assert list(model.get_inputs()[0].shape) == [-1, 4]
    with pytest.raises(RuntimeError) as e:
        build(mslite, path, config_dict={"gpu_context": {"input_shape": "other:[3,4]"}})
    assert "input_shape names ['other']" in msg(e)


def test_config_trimming_comments_and_unknown_sections(mslite, tmp_model, tmp_path, w43):
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    cfg = tmp_path / "config.ini"
    cfg.write_text("# a comment line\n"
                   "[my_own_section]\n"
                   "anything = goes here\n"
                   "\n"
                   "[gpu_context]\n"
                   "# input_shape=%s:[9,4]\n"
                   "   input_shape   =   %s:[2,4]   \n"
                   "dynamic_dims = [1~4],[8]\n"
                   "precision_mode=enforce_fp32\n"
                   "[ms_cache]\n"
                   "serialize_path=/tmp/nowhere\n" % (name, name))
    model = build(mslite, path, config_path=str(cfg))
    assert model.get_model_info("input_shape") == "%s:[2,4]" % name
    assert model.get_model_info("dynamic_dims") == "[1~4],[8]"
    assert list(model.get_inputs()[0].shape) == [2, 4]


def test_config_file_with_utf8_bom(mslite, tmp_model, tmp_path, w43):
    # editors on Windows save INI files with a byte-order mark; the first section still counts
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    cfg = tmp_path / "bom.ini"
    cfg.write_bytes(b"\xef\xbb\xbf[gpu_context]\ninput_shape=%s:[3,4]\n" % name.encode())
    model = build(mslite, path, config_path=str(cfg))
    assert model.get_model_info("input_shape") == "%s:[3,4]" % name
    assert list(model.get_inputs()[0].shape) == [3, 4]
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w43, rtol=1e-5)


def test_config_dict_overrides_file(mslite, tmp_model, tmp_path, w43):
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    cfg = tmp_path / "config.ini"
    cfg.write_text("[gpu_context]\ninput_shape=%s:[3,4]\ndynamic_dims=[1~4]\n" % name)
    model = build(mslite, path, config_path=str(cfg),
                  config_dict={"gpu_context": {"input_shape": "%s:[5,4]" % name}})
    assert model.get_model_info("input_shape") == "%s:[5,4]" % name
    assert model.get_model_info("dynamic_dims") == "[1~4]"  # file entry kept
    assert list(model.get_inputs()[0].shape) == [5, 4]


def test_config_dict_alone(mslite, tmp_model, w43):
    path = dyn_model(tmp_model, w43)
    name = input_name(mslite, path)
    model = build(mslite, path, config_dict={"gpu_context": {"input_shape": "%s:[6,4]" % name}})
    assert list(model.get_inputs()[0].shape) == [6, 4]
    x = np.ones((6, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w43, rtol=1e-5)


def test_get_model_info_user_info_and_unknown_keys(mslite, tmp_model, w43):
    b = UserInfoBuilder("g", user_info={"author": "shardlite-tests", "version": "7"})
    x = b.input("x", [2, 4], np.float32)
    b.output(b.op("MatMul", [x, b.param("w", w43)]))
    model = build(mslite, tmp_model(b))
    info = model.get_model_info("user_info")
    assert isinstance(info, str)
    for part in ("author", "shardlite-tests", "version", "7"):
        assert part in info, (part, info)
    assert model.get_model_info("input_shape") == ""
    assert model.get_model_info("dynamic_dims") == ""
    assert model.get_model_info("no_such_key") == ""
    with pytest.raises(TypeError):
        model.get_model_info(1)


# ---- get_inputs / get_outputs ----

def two_output_model(tmp_model, w, bias):
    """Outputs: (x @ w, x @ w + bias), in that order."""
    b = GraphBuilder("g")
    x = b.input("x", [2, 4], np.float32)
    y = b.op("MatMul", [x, b.param("w", w)])
    z = b.op("Add", [y, b.param("b", bias)])
    b.output(y, z)
    return tmp_model(b)


def test_get_inputs_and_outputs(mslite, tmp_model, w43):
    path = two_output_model(tmp_model, w43, np.arange(3, dtype=np.float32))
    model = build(mslite, path)
    inputs, outputs = model.get_inputs(), model.get_outputs()
    assert isinstance(inputs, list) and len(inputs) == 1
    assert all(isinstance(t, mslite.Tensor) for t in inputs + outputs)
    assert len(outputs) == 2
    for t in outputs:
        assert t.dtype == mslite.DataType.FLOAT32
        assert list(t.shape) == [2, 3] and t.element_num == 6 and t.data_size == 24
        assert isinstance(t.name, str) and t.name
        assert isinstance(t.format, mslite.Format)
    assert outputs[0].name != outputs[1].name


def test_predict_returns_outputs_in_graph_order(mslite, tmp_model, w43):
    bias = np.array([10, 20, 30], np.float32)
    model = build(mslite, two_output_model(tmp_model, w43, bias))
    x = np.random.default_rng(4).uniform(-1, 1, (2, 4)).astype(np.float32)
    outs = model.predict([x])
    assert isinstance(outs, list) and len(outs) == 2
    assert all(isinstance(t, mslite.Tensor) for t in outs)
    np.testing.assert_allclose(out_np(outs, 0), x @ w43, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_np(outs, 1), x @ w43 + bias, rtol=1e-5, atol=1e-5)
    assert [t.name for t in outs] == [t.name for t in model.get_outputs()]


# ---- predict ----

def test_predict_with_tensors(mslite, matmul_model):
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    outs = model.predict([mslite.Tensor(x)])
    np.testing.assert_allclose(out_np(outs), x @ w, rtol=1e-5)
    outs = model.predict((mslite.Tensor(-x),))  # a tuple is accepted too
    np.testing.assert_allclose(out_np(outs), -x @ w, rtol=1e-5)


@pytest.mark.parametrize("order", ["C", "F"])
def test_predict_with_numpy(mslite, matmul_model, order):
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.asarray(np.random.default_rng(5).uniform(-1, 1, (2, 4)), np.float32, order=order)
    np.testing.assert_allclose(out_np(model.predict([x])), np.ascontiguousarray(x) @ w,
                               rtol=1e-5, atol=1e-6)


def test_predict_results_survive_next_predict(mslite, matmul_model):
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.ones((2, 4), np.float32)
    first = model.predict([x])
    model.predict([3 * x])
    np.testing.assert_allclose(out_np(first), x @ w, rtol=1e-5)


@pytest.mark.parametrize("bad", [np.ones((2, 4), np.float32), "x", None])
def test_predict_inputs_not_a_list(mslite, matmul_model, bad):
    path, _ = matmul_model()
    with pytest.raises(TypeError) as e:
        build(mslite, path).predict(bad)
    assert msg(e).startswith("inputs must be ")


@pytest.mark.parametrize("bad", [[1.0], [[[1.0] * 4] * 2], ["x"]])
def test_predict_input_elements_checked(mslite, matmul_model, bad):
    path, _ = matmul_model()
    with pytest.raises(TypeError) as e:
        build(mslite, path).predict(bad)
    assert msg(e).startswith("inputs element must be Tensor")


@pytest.mark.parametrize("bad", [[1.0], ["x", "y", "z"]])
def test_predict_element_types_checked_before_count(mslite, tmp_model, bad):
    # reference order: a wrong element is a TypeError even when the count is wrong too
    b = GraphBuilder("g")
    b.output(b.op("Add", [b.input("x", [2, 3], np.float32), b.input("y", [2, 3], np.float32)]))
    model = build(mslite, tmp_model(b))
    with pytest.raises(TypeError) as e:
        model.predict(bad)
    assert msg(e).startswith("inputs element must be Tensor")
    assert msg(e).endswith("at index 0.")
    x, y = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    np.testing.assert_allclose(out_np(model.predict([x, y])), x + y)


def test_predict_wrong_count(mslite, matmul_model):
    path, _ = matmul_model()
    x = np.ones((2, 4), np.float32)
    model = build(mslite, path)
    with pytest.raises(RuntimeError) as e:
        model.predict([x, x])
    assert "model input len:1 not equal input len:2!" in msg(e)
    with pytest.raises(RuntimeError) as e:
        model.predict([])
    assert "model input len:1 not equal input len:0!" in msg(e)


def test_predict_wrong_dtype_is_runtime_error(mslite, matmul_model):
    path, _ = matmul_model()
    with pytest.raises(RuntimeError):
        build(mslite, path).predict([np.ones((2, 4), np.float64)])


def test_predict_outputs_filled_in_place(mslite, matmul_model):
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.random.default_rng(6).uniform(-1, 1, (2, 4)).astype(np.float32)
    outputs = model.get_outputs()
    model.predict([x], outputs)
    np.testing.assert_allclose(outputs[0].get_data_to_numpy(), x @ w, rtol=1e-5, atol=1e-6)


def test_predict_outputs_user_tensors_filled(mslite, matmul_model):
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.random.default_rng(8).uniform(-1, 1, (2, 4)).astype(np.float32)
    out = mslite.Tensor(np.zeros((2, 3), np.float32))
    model.predict([x], [out])
    np.testing.assert_allclose(out.get_data_to_numpy(), x @ w, rtol=1e-5, atol=1e-6)


def test_predict_outputs_write_into_wrapped_numpy(mslite, matmul_model):
    """An output Tensor wrapping a numpy array receives the results in that array's buffer."""
    path, w = matmul_model()
    model = build(mslite, path)
    x = np.random.default_rng(9).uniform(-1, 1, (2, 4)).astype(np.float32)
    buf = np.zeros((2, 3), np.float32)
    model.predict([x], [mslite.Tensor(buf)])
    np.testing.assert_allclose(buf, x @ w, rtol=1e-5, atol=1e-6)


def test_predict_outputs_type_errors(mslite, matmul_model):
    path, _ = matmul_model()
    model = build(mslite, path)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(TypeError):
        model.predict([x], [np.zeros((2, 3), np.float32)])


# ---- resize ----

def test_resize_changes_shapes_and_results(mslite, tmp_model, w43):
    model = build(mslite, dyn_model(tmp_model, w43))
    inputs = model.get_inputs()
    model.resize(inputs, [[5, 4]])
    assert list(model.get_inputs()[0].shape) == [5, 4]
    assert list(inputs[0].shape) == [5, 4]
    assert list(model.get_outputs()[0].shape) == [5, 3]
    x = np.arange(20, dtype=np.float32).reshape(5, 4) / 10
    inputs[0].set_data_from_numpy(x)
    np.testing.assert_allclose(out_np(model.predict(inputs)), x @ w43, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [[[5.0, 4]], "5,4", [5, 4], [None]])
def test_resize_dims_type_errors(mslite, tmp_model, w43, dims):
    model = build(mslite, dyn_model(tmp_model, w43))
    with pytest.raises(TypeError):
        model.resize(model.get_inputs(), dims)


def test_resize_inputs_type_errors(mslite, tmp_model, w43):
    model = build(mslite, dyn_model(tmp_model, w43))
    with pytest.raises(TypeError):
        model.resize(model.get_inputs()[0], [[5, 4]])
    with pytest.raises(TypeError) as e:
        model.resize([np.zeros((5, 4), np.float32)], [[5, 4]])
    assert msg(e).startswith("inputs element must be Tensor")


def test_resize_size_mismatch(mslite, tmp_model, w43):
    model = build(mslite, dyn_model(tmp_model, w43))
    with pytest.raises(ValueError) as e:
        model.resize(model.get_inputs(), [[5, 4], [6, 4]])
    assert msg(e).startswith("inputs' size does not match dims")


def test_resize_native_failure(mslite, tmp_model, w43):
    model = build(mslite, dyn_model(tmp_model, w43))
    inputs = model.get_inputs()
    with pytest.raises(RuntimeError) as e:
        model.resize(inputs, [[5, 7]])  # MatMul: 7 != 4
    assert msg(e).startswith("resize failed")
    # the model still works at a valid shape
    model.resize(inputs, [[2, 4]])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w43, rtol=1e-5)


@pytest.mark.parametrize("dims, where", [([[2**64, 4]], "dims[0][0] is 2**63 or more"),
                                         ([[2, 2**63]], "dims[0][1] is 2**63 or more"),
                                         ([[-2**64, 4]], "dims[0][0] is below -2**63"),
                                         ([[-5, 4]], "dims[0][0] is -5")])
def test_resize_dimension_out_of_range(mslite, tmp_model, w43, dims, where):
    # not OverflowError: the "resize failed!" RuntimeError, naming the dimension
    model = build(mslite, dyn_model(tmp_model, w43))
    inputs = model.get_inputs()
    with pytest.raises(RuntimeError) as e:
        model.resize(inputs, dims)
    assert msg(e).startswith("resize failed! Error is ")
    assert where + "; dimensions must be >= 0" in msg(e)
    assert list(inputs[0].shape) == [-1, 4]  # unchanged
    model.resize(inputs, [[3, 4]])
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w43, rtol=1e-5)


# ---- update_weights ----

def weight_tensor(mslite, name, array):
    t = mslite.Tensor(array)
    t.name = name
    return t


@pytest.mark.parametrize("name", ["w", "g:w"])
def test_update_weights_changes_results(mslite, tmp_model, name):
    w = np.random.default_rng(10).uniform(-1, 1, (4, 3)).astype(np.float32)
    bias = np.array([1, 2, 3], np.float32)
    model = build(mslite, tmp_model(matmul_builder(w, bias=bias)))
    x = np.random.default_rng(11).uniform(-1, 1, (2, 4)).astype(np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w + bias, rtol=1e-5, atol=1e-5)
    w2 = np.random.default_rng(12).uniform(-2, 2, (4, 3)).astype(np.float32)
    model.update_weights([[weight_tensor(mslite, name, w2)]])
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w2 + bias, rtol=1e-5, atol=1e-5)


def test_update_weights_several(mslite, tmp_model):
    w = np.ones((4, 3), np.float32)
    model = build(mslite, tmp_model(matmul_builder(w, bias=np.zeros(3, np.float32))))
    w2 = np.arange(12, dtype=np.float32).reshape(4, 3)
    b2 = np.array([-1, 0, 1], np.float32)
    model.update_weights([[weight_tensor(mslite, "w", w2), weight_tensor(mslite, "b", b2)]])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w2 + b2, rtol=1e-5)


def test_update_weights_does_not_touch_other_models(mslite, tmp_model):
    w = np.ones((4, 3), np.float32)
    path = tmp_model(matmul_builder(w))
    a, b = build(mslite, path), build(mslite, path)
    a.update_weights([[weight_tensor(mslite, "w", 2 * w)]])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(out_np(a.predict([x])), x @ (2 * w))
    np.testing.assert_allclose(out_np(b.predict([x])), x @ w)


def test_update_weights_errors(mslite, tmp_model):
    w = np.ones((4, 3), np.float32)
    model = build(mslite, tmp_model(matmul_builder(w)))
    with pytest.raises((RuntimeError, ValueError)):
        model.update_weights([[weight_tensor(mslite, "no_such_weight", w)]])
    with pytest.raises((RuntimeError, ValueError)):
        model.update_weights([[weight_tensor(mslite, "w", np.ones((3, 4), np.float32))]])
    with pytest.raises(TypeError):
        model.update_weights([w])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(out_np(model.predict([x])), x @ w)  # unchanged


# ---- threads ----

def test_concurrent_predicts_on_one_model(mslite, matmul_model):
    path, w = matmul_model(in_shape=[8, 4])
    model = build(mslite, path)

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(100):
            x = rng.uniform(-1, 1, (8, 4)).astype(np.float32)
            y = out_np(model.predict([x]))
            np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)

    run_in_threads(work)


def heavy_model(tmp_model):
    """[256, 1024] @ W0 @ W1 with 1024x1024 weights: ~1 GFLOP per predict."""
    b, ws = heavy_builder(13)
    return tmp_model(b), ws


def test_predicts_on_different_models_run_in_parallel(mslite, tmp_model):
    """Two threads predicting on two models take clearly less wall time than the same predicts
    in sequence. The bound is relative to what the machine gives GIL-free work right now
    (it has 2 cores, shared and noisy): a library-wide lock would give a ratio near 1."""
    path, ws = heavy_model(tmp_model)
    models = []
    for _ in range(2):
        ctx = mslite.Context()
        ctx.cpu.thread_num = 1
        models.append(build(mslite, path, ctx))
    x = np.random.default_rng(14).standard_normal((256, 1024)).astype(np.float32)
    want = x @ ws[0] @ ws[1]
    for m in models:  # warm up, and check the results
        np.testing.assert_allclose(out_np(m.predict([x])), want, rtol=1e-3, atol=1e-3)
    calls = [lambda m=m: m.predict([x]) for m in models]
    ratios, machine = [], []
    for _ in range(4):  # best of a few: one quiet moment is enough
        ratios.append(concurrency_ratio(calls, 3))
        machine.append(machine_concurrency_ratio(1))
        if ratios[-1] < 0.8:
            break
    assert min(ratios) < max(0.8, min(machine) + 0.15), (ratios, machine)
