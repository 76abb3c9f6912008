"""Context and its cpu/gpu/ascend/parallel sub-objects against the MindSpore Lite API
(shared/reference/mslite_api.md, "Context"): defaults, accepted values, error types and messages."""

import json
import warnings

import numpy as np
import pytest

from conftest import launcher_free_env, run_python


def msg(excinfo):
    return str(excinfo.value)


# ---- Context ----

def test_context_has_sub_objects_and_default_target(mslite):
    ctx = mslite.Context()
    assert ctx.target == ["cpu"]
    for name in ("cpu", "gpu", "ascend", "parallel"):
        assert getattr(ctx, name) is not None
    assert ctx.group_info_file == ""


def test_context_targets_are_independent(mslite):
    a, b = mslite.Context(), mslite.Context()
    a.target = ["gpu"]
    a.cpu.thread_num = 3
    assert b.target == ["cpu"] and b.cpu.thread_num == 0


@pytest.mark.parametrize("value", [["cpu"], ["gpu"], ["ascend"], ["gpu", "cpu"], ["ascend", "cpu"]])
def test_target_accepts_known_devices(mslite, value):
    ctx = mslite.Context()
    ctx.target = value
    assert [t.lower() for t in ctx.target] == value


@pytest.mark.parametrize("value,want", [(["CPU"], ["cpu"]), (["Gpu"], ["gpu"]),
                                        (["Ascend"], ["ascend"])])
def test_target_is_case_insensitive(mslite, value, want):
    ctx = mslite.Context()
    ctx.target = value
    assert [t.lower() for t in ctx.target] == want


def test_target_empty_list_means_cpu(mslite):
    # reference: `target = ["cpu"] if not target else target`
    ctx = mslite.Context()
    ctx.target = []
    assert ctx.target == ["cpu"]


@pytest.mark.parametrize("value", ["cpu", ("cpu",), 1])
def test_target_not_a_list_is_type_error(mslite, value):
    ctx = mslite.Context()
    with pytest.raises(TypeError) as e:
        ctx.target = value
    assert msg(e).startswith("target must be list, but got ")


def test_target_element_not_str_is_type_error(mslite):
    ctx = mslite.Context()
    with pytest.raises(TypeError) as e:
        ctx.target = ["cpu", 1]
    assert msg(e) == "target element must be str, but got <class 'int'> at index 1."
    assert ctx.target == ["cpu"]  # unchanged


def test_target_unknown_is_value_error(mslite):
    ctx = mslite.Context()
    with pytest.raises(ValueError) as e:
        ctx.target = ["cpu", "tpu"]
    assert msg(e) == "target elements must be in ['cpu', 'gpu', 'ascend'], but got tpu."
    assert ctx.target == ["cpu"]


def test_group_info_file(mslite):
    ctx = mslite.Context()
    ctx.group_info_file = "/tmp/group.json"
    assert ctx.group_info_file == "/tmp/group.json"
    with pytest.raises(TypeError) as e:
        ctx.group_info_file = 3
    assert msg(e).startswith("group_info_file must be str, but got ")


def test_context_str_is_readable(mslite):
    ctx = mslite.Context()
    ctx.target = ["gpu"]
    text = str(ctx)
    assert "target" in text and "gpu" in text


# ---- cpu ----

def test_cpu_defaults(mslite):
    cpu = mslite.Context().cpu
    assert cpu.precision_mode == "enforce_fp32"
    assert cpu.thread_num == 0
    assert cpu.inter_op_parallel_num == 0
    assert cpu.thread_affinity_mode == 0
    assert list(cpu.thread_affinity_core_list) == []


@pytest.mark.parametrize("mode", ["enforce_fp32", "preferred_fp16"])
def test_cpu_precision_mode_values(mslite, mode):
    cpu = mslite.Context().cpu
    cpu.precision_mode = mode
    assert cpu.precision_mode == mode


def test_cpu_precision_mode_errors(mslite):
    cpu = mslite.Context().cpu
    with pytest.raises(TypeError) as e:
        cpu.precision_mode = 1
    assert msg(e).startswith("cpu_precision_mode must be str, but got ")
    with pytest.raises(ValueError) as e:
        cpu.precision_mode = "enforce_fp64"
    assert msg(e).startswith("cpu_precision_mode must be in ")
    assert msg(e).endswith("but got enforce_fp64.")
    assert cpu.precision_mode == "enforce_fp32"


@pytest.mark.parametrize("attr", ["thread_num", "inter_op_parallel_num"])
def test_cpu_counts(mslite, attr):
    cpu = mslite.Context().cpu
    for v in (0, 1, 4):
        setattr(cpu, attr, v)
        assert getattr(cpu, attr) == v
    with pytest.raises(TypeError) as e:
        setattr(cpu, attr, "2")
    assert msg(e).startswith("cpu_%s must be int, but got <class 'str'>" % attr)
    with pytest.raises(TypeError):
        setattr(cpu, attr, 2.0)
    with pytest.raises(ValueError) as e:
        setattr(cpu, attr, -1)
    assert msg(e).endswith("cpu_%s must be a non-negative int." % attr)
    assert getattr(cpu, attr) == 4


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_cpu_thread_affinity_mode(mslite, mode):
    cpu = mslite.Context().cpu
    cpu.thread_affinity_mode = mode
    assert cpu.thread_affinity_mode == mode


def test_cpu_thread_affinity_mode_type_error(mslite):
    cpu = mslite.Context().cpu
    with pytest.raises(TypeError) as e:
        cpu.thread_affinity_mode = "1"
    assert msg(e).startswith("cpu_thread_affinity_mode must be int, but got ")


def test_cpu_thread_affinity_core_list(mslite):
    cpu = mslite.Context().cpu
    cpu.thread_affinity_core_list = [0, 1]
    assert list(cpu.thread_affinity_core_list) == [0, 1]
    with pytest.raises(TypeError) as e:
        cpu.thread_affinity_core_list = 0
    assert msg(e).startswith("cpu_thread_affinity_core_list must be list, but got ")
    with pytest.raises(TypeError) as e:
        cpu.thread_affinity_core_list = [0, "1"]
    assert msg(e) == ("cpu_thread_affinity_core_list element must be int, but got "
                      "<class 'str'> at index 1.")
    assert list(cpu.thread_affinity_core_list) == [0, 1]


def test_cpu_str_is_readable(mslite):
    cpu = mslite.Context().cpu
    cpu.thread_num = 3
    cpu.precision_mode = "preferred_fp16"
    cpu.thread_affinity_core_list = [0, 1]
    text = str(cpu)
    for part in ("precision_mode", "preferred_fp16", "thread_num", "3", "inter_op_parallel_num",
                 "thread_affinity_mode", "thread_affinity_core_list", "[0, 1]"):
        assert part in text, (part, text)


# ---- gpu ----

def test_gpu_defaults(mslite):
    gpu = mslite.Context().gpu
    assert gpu.precision_mode == "enforce_fp32"
    assert gpu.device_id == 0


def test_gpu_precision_mode(mslite):
    gpu = mslite.Context().gpu
    gpu.precision_mode = "preferred_fp16"
    assert gpu.precision_mode == "preferred_fp16"
    with pytest.raises(ValueError) as e:
        gpu.precision_mode = "enforce_fp16"
    assert msg(e).startswith("gpu_precision_mode must be in ")
    with pytest.raises(TypeError) as e:
        gpu.precision_mode = None
    assert msg(e).startswith("gpu_precision_mode must be str, but got ")


def test_gpu_device_id(mslite):
    gpu = mslite.Context().gpu
    gpu.device_id = 3
    assert gpu.device_id == 3
    with pytest.raises(TypeError) as e:
        gpu.device_id = "3"
    assert msg(e).startswith("gpu_device_id must be int, but got ")
    with pytest.raises(ValueError) as e:
        gpu.device_id = -1
    assert msg(e).endswith("gpu_device_id must be a non-negative int.")


def test_gpu_provider_is_a_str_attribute(mslite):
    gpu = mslite.Context().gpu
    gpu.provider = "tensorrt"
    assert gpu.provider == "tensorrt"


@pytest.mark.parametrize("device", ["gpu", "cpu"])
@pytest.mark.parametrize("attr", ["rank_id", "group_size"])
def test_rank_and_size_are_read_only(mslite, device, attr):
    info = getattr(mslite.Context(), device)
    before = getattr(info, attr)
    assert isinstance(before, int) and not isinstance(before, bool)
    with pytest.raises(AttributeError):
        setattr(info, attr, 5)
    assert getattr(info, attr) == before


def test_sample_sets_device_id_from_rank(mslite):
    ctx = mslite.Context()
    ctx.gpu.device_id = ctx.gpu.rank_id
    assert ctx.gpu.device_id == ctx.gpu.rank_id


RANK_PROBE = """
import json, shardlite as mslite
info = getattr(mslite.Context(), %r)
print(json.dumps([info.rank_id, info.group_size]))
"""


@pytest.mark.parametrize("env,want", [
    ({}, (0, 1)),
    ({"OMPI_COMM_WORLD_RANK": 1, "OMPI_COMM_WORLD_SIZE": 2}, (1, 2)),
    ({"PMI_RANK": 2, "PMI_SIZE": 4}, (2, 4)),
    ({"SLURM_PROCID": 3, "SLURM_NTASKS": 5}, (3, 5)),
    ({"SHARDLITE_RANK": 1, "SHARDLITE_WORLD_SIZE": 3}, (1, 3)),
], ids=["none", "openmpi", "pmi", "slurm", "shardlite"])
@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_rank_and_size_come_from_the_launcher(mslite, device, env, want):
    out = run_python(RANK_PROBE % device, env=launcher_free_env(**env)).stdout
    assert tuple(json.loads(out.strip().splitlines()[-1])) == want


def test_gpu_str_is_readable(mslite):
    gpu = mslite.Context().gpu
    gpu.device_id = 2
    gpu.precision_mode = "preferred_fp16"
    text = str(gpu)
    for part in ("precision_mode", "preferred_fp16", "device_id", "2", "rank_id", "group_size"):
        assert part in text, (part, text)


# ---- ascend ----

def test_ascend_defaults(mslite):
    asc = mslite.Context().ascend
    assert asc.device_id == 0 and asc.rank_id == 0 and asc.provider == ""


@pytest.mark.parametrize("attr", ["device_id", "rank_id"])
def test_ascend_ids(mslite, attr):
    asc = mslite.Context().ascend
    setattr(asc, attr, 1)
    assert getattr(asc, attr) == 1
    with pytest.raises(TypeError) as e:
        setattr(asc, attr, "1")
    assert msg(e).startswith("ascend_%s must be int, but got " % attr)
    with pytest.raises(ValueError) as e:
        setattr(asc, attr, -2)
    assert msg(e).endswith("ascend_%s must be a non-negative int." % attr)
    assert getattr(asc, attr) == 1


@pytest.mark.parametrize("provider", ["", "ge"])
def test_ascend_provider(mslite, provider):
    asc = mslite.Context().ascend
    asc.provider = provider
    assert asc.provider == provider


def test_ascend_provider_type_error(mslite):
    with pytest.raises(TypeError) as e:
        mslite.Context().ascend.provider = 0
    assert msg(e).startswith("ascend_provider must be str, but got ")


@pytest.mark.parametrize("mode", ["enforce_fp32", "preferred_fp32", "enforce_fp16",
                                  "enforce_origin", "preferred_optimal"])
def test_ascend_precision_modes(mslite, mode):
    asc = mslite.Context().ascend
    asc.precision_mode = mode
    assert asc.precision_mode == mode


def test_ascend_precision_mode_errors(mslite):
    asc = mslite.Context().ascend
    with pytest.raises(ValueError) as e:
        asc.precision_mode = "preferred_fp16"
    assert msg(e).startswith("ascend_precision_mode must be in ")
    with pytest.raises(TypeError):
        asc.precision_mode = 0


def test_ascend_str_is_readable(mslite):
    asc = mslite.Context().ascend
    asc.device_id = 5
    asc.provider = "ge"
    text = str(asc)
    for part in ("precision_mode", "device_id", "5", "provider", "ge", "rank_id"):
        assert part in text, (part, text)


# ---- parallel ----

def test_parallel_workers_num(mslite):
    par = mslite.Context().parallel
    assert par.workers_num == 0
    par.workers_num = 4
    assert par.workers_num == 4
    with pytest.raises(TypeError) as e:
        par.workers_num = "4"
    assert msg(e).startswith("workers_num must be int, but got ")
    with pytest.raises(ValueError) as e:
        par.workers_num = -1
    assert "workers_num must be a non-negative int." in msg(e)


def test_parallel_config_info(mslite):
    par = mslite.Context().parallel
    info = {"model_file": {"mindir_path": "/home/user/model_graph.mindir"}}
    par.config_info = info
    got = par.config_info
    if isinstance(got, dict):
        assert got == info
    else:  # the reference returns a printable string
        assert "model_file" in got and "mindir_path" in got and "/home/user/model_graph" in got


@pytest.mark.parametrize("bad", [["model_file"], {1: {"a": "b"}}, {"s": "v"}, {"s": {1: "v"}},
                                 {"s": {"k": 1}}])
def test_parallel_config_info_type_errors(mslite, bad):
    par = mslite.Context().parallel
    with pytest.raises(TypeError) as e:
        par.config_info = bad
    assert msg(e).startswith("config_info")


def test_parallel_config_path(mslite, tmp_path):
    par = mslite.Context().parallel
    assert par.config_path == ""
    cfg = tmp_path / "config.ini"
    cfg.write_text("[model_file]\nmindir_path=/x.mindir\n")
    par.config_path = str(cfg)
    assert par.config_path == str(cfg)
    with pytest.raises(TypeError) as e:
        par.config_path = 1
    assert msg(e).startswith("config_path must be str, but got ")


def test_parallel_config_path_missing_file(mslite, tmp_path):
    # reference: ValueError "Set parallel failed, config_path does not exist!"
    with pytest.raises(ValueError) as e:
        mslite.Context().parallel.config_path = str(tmp_path / "missing.ini")
    assert "config_path does not exist" in msg(e)


def test_parallel_device_ids(mslite):
    par = mslite.Context().parallel
    assert list(par.device_ids) == []
    par.device_ids = [0, 1]
    assert list(par.device_ids) == [0, 1]
    with pytest.raises(TypeError) as e:
        par.device_ids = 0
    assert msg(e).startswith("device_ids must be list, but got ")
    with pytest.raises(TypeError) as e:
        par.device_ids = [0, "1"]
    assert msg(e).startswith("device_ids element must be int, but got ")
    with pytest.raises(ValueError):
        par.device_ids = [0, -1]


def test_parallel_str_is_readable(mslite):
    par = mslite.Context().parallel
    par.workers_num = 3
    text = str(par)
    assert "workers" in text and "3" in text and "config" in text


# ---- targets at build time ----

@pytest.mark.parametrize("target", [["ascend"], ["Ascend"], ["ascend", "cpu"], ["gpu"], ["GPU"]])
def test_build_with_a_device_target_runs_on_the_cpu(mslite, matmul_model, target):
    """A target this build cannot run (Ascend; GPU without CUDA) falls back to the CPU, as
    MindSpore Lite keeps the CPU as fallback, with a RuntimeWarning naming the target: a
    reference script runs with only its import changed."""
    path, w = matmul_model()
    ctx = mslite.Context()
    ctx.target = target
    model = mslite.Model()
    device = target[0].lower()
    if device == "gpu" and mslite.build_info()["cuda"]:
        model.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    else:
        with pytest.warns(RuntimeWarning, match=f"target '{device}'.*runs on the CPU"):
            model.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(model.predict([x])[0].get_data_to_numpy(), x @ w, rtol=1e-5)


def test_build_with_cpu_target_does_not_warn(mslite, matmul_model):
    path, _ = matmul_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mslite.Model().build_from_file(str(path), mslite.ModelType.MINDIR, mslite.Context())


def test_build_with_cpu_target_and_thread_num(mslite, matmul_model):
    path, w = matmul_model()
    ctx = mslite.Context()
    ctx.cpu.thread_num = 1
    ctx.cpu.inter_op_parallel_num = 1
    ctx.cpu.thread_affinity_mode = 1
    ctx.cpu.thread_affinity_core_list = [0]
    model = mslite.Model()
    model.build_from_file(str(path), mslite.ModelType.MINDIR, ctx)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(model.predict([x])[0].get_data_to_numpy(), x @ w, rtol=1e-5)
