"""Context: target devices and per-device options, as in MindSpore Lite."""

import os

from ._check import (check_choice, check_config, check_list, check_non_negative, check_type)
from ._rank import rank_and_size

__all__ = ["Context"]

_TARGETS = ("cpu", "gpu", "ascend")
_FP_MODES = ("enforce_fp32", "preferred_fp16")
_ASCEND_MODES = ("enforce_fp32", "preferred_fp32", "enforce_fp16", "enforce_origin",
                 "preferred_optimal")


def _read_only(name):
    """A setter that refuses assignment of a launcher-provided value."""
    def refuse(self, value):
        raise AttributeError(f"{name} is read-only: it comes from the launcher (mpirun, srun, "
                             "shardlite's launcher); rank 0 / size 1 when not launched "
                             "distributed.")
    return refuse


class _Launched:
    """rank_id and group_size, read from the launcher's environment at each access."""

    @property
    def rank_id(self):
        """This process's rank in the world (int, read-only; 0 when not distributed)."""
        return rank_and_size()[0]

    rank_id = rank_id.setter(_read_only("rank_id"))

    @property
    def group_size(self):
        """The number of ranks (int, read-only; 1 when not distributed)."""
        return rank_and_size()[1]

    group_size = group_size.setter(_read_only("group_size"))


class _CPU(_Launched):
    """CPU options of a Context (``context.cpu``)."""

    def __init__(self):
        self._precision_mode = "enforce_fp32"
        self._thread_num = 0
        self._inter_op_parallel_num = 0
        self._thread_affinity_mode = 0
        self._thread_affinity_core_list = []

    @property
    def precision_mode(self):
        """'enforce_fp32' (default) or 'preferred_fp16' (accepted; shardlite computes in the
        model's own dtypes)."""
        return self._precision_mode

    @precision_mode.setter
    def precision_mode(self, value):
        self._precision_mode = check_choice("cpu_precision_mode", value, _FP_MODES)

    @property
    def thread_num(self):
        """Worker threads of one model (int >= 0; 0 = one per online CPU)."""
        return self._thread_num

    @thread_num.setter
    def thread_num(self, value):
        self._thread_num = check_non_negative("cpu_thread_num", value)

    @property
    def inter_op_parallel_num(self):
        """Operators run at once (int >= 0; accepted: shardlite runs operators in order and
        parallelises inside each)."""
        return self._inter_op_parallel_num

    @inter_op_parallel_num.setter
    def inter_op_parallel_num(self, value):
        self._inter_op_parallel_num = check_non_negative("cpu_inter_op_parallel_num", value)

    @property
    def thread_affinity_mode(self):
        """0: no binding, 1: big cores first, 2: middle/little cores first (accepted, not
        applied)."""
        return self._thread_affinity_mode

    @thread_affinity_mode.setter
    def thread_affinity_mode(self, value):
        check_type("cpu_thread_affinity_mode", value, int)
        if value not in (0, 1, 2):
            raise ValueError(f"cpu_thread_affinity_mode must be in [0, 1, 2], but got {value}.")
        self._thread_affinity_mode = value

    @property
    def thread_affinity_core_list(self):
        """CPU ids to bind threads to (list of int; accepted, not applied)."""
        return list(self._thread_affinity_core_list)

    @thread_affinity_core_list.setter
    def thread_affinity_core_list(self, value):
        self._thread_affinity_core_list = list(
            check_list("cpu_thread_affinity_core_list", value, int))

    def __str__(self):
        return (f"device_type: DeviceType.kCPU,\n"
                f"precision_mode: {self.precision_mode},\n"
                f"thread_num: {self.thread_num},\n"
                f"inter_op_parallel_num: {self.inter_op_parallel_num},\n"
                f"thread_affinity_mode: {self.thread_affinity_mode},\n"
                f"thread_affinity_core_list: {self.thread_affinity_core_list},\n"
                f"rank_id: {self.rank_id},\n"
                f"group_size: {self.group_size}.")


class _GPU(_Launched):
    """GPU options of a Context (``context.gpu``). Target 'gpu' runs on the GPU in a CUDA build
    of shardlite (build_info()['cuda']), else on the CPU with a RuntimeWarning."""

    def __init__(self):
        self._precision_mode = "enforce_fp32"
        self._device_id = 0
        self.provider = ""

    @property
    def precision_mode(self):
        """'enforce_fp32' (default) or 'preferred_fp16'."""
        return self._precision_mode

    @precision_mode.setter
    def precision_mode(self, value):
        self._precision_mode = check_choice("gpu_precision_mode", value, _FP_MODES)

    @property
    def device_id(self):
        """The GPU to use (int >= 0, default 0)."""
        return self._device_id

    @device_id.setter
    def device_id(self, value):
        self._device_id = check_non_negative("gpu_device_id", value)

    def __str__(self):
        return (f"device_type: DeviceType.kGPU,\n"
                f"precision_mode: {self.precision_mode},\n"
                f"device_id: {self.device_id},\n"
                f"rank_id: {self.rank_id},\n"
                f"group_size: {self.group_size},\n"
                f"provider: {self.provider}.")


class _Ascend:
    """Ascend options of a Context (``context.ascend``). shardlite has no Ascend backend:
    target 'ascend' runs on the CPU, with a RuntimeWarning."""

    def __init__(self):
        self._precision_mode = "enforce_fp32"
        self._device_id = 0
        self._rank_id = 0
        self._provider = ""

    @property
    def precision_mode(self):
        """One of enforce_fp32 (default), preferred_fp32, enforce_fp16, enforce_origin,
        preferred_optimal."""
        return self._precision_mode

    @precision_mode.setter
    def precision_mode(self, value):
        self._precision_mode = check_choice("ascend_precision_mode", value, _ASCEND_MODES)

    @property
    def device_id(self):
        """The Ascend device (int >= 0, default 0)."""
        return self._device_id

    @device_id.setter
    def device_id(self, value):
        self._device_id = check_non_negative("ascend_device_id", value)

    @property
    def rank_id(self):
        """This process's rank (int >= 0, default 0; set by the script on Ascend)."""
        return self._rank_id

    @rank_id.setter
    def rank_id(self, value):
        self._rank_id = check_non_negative("ascend_rank_id", value)

    @property
    def provider(self):
        """The inference backend: '' (default) or 'ge'."""
        return self._provider

    @provider.setter
    def provider(self, value):
        self._provider = check_choice("ascend_provider", value, ("", "ge"))

    def __str__(self):
        return (f"device_type: DeviceType.kAscend,\n"
                f"precision_mode: {self.precision_mode},\n"
                f"device_id: {self.device_id},\n"
                f"provider: {self.provider},\n"
                f"rank_id: {self.rank_id}.")


class _Parallel:
    """ModelParallelRunner options (``context.parallel``)."""

    def __init__(self):
        self._workers_num = 0
        self._config_info = {}
        self._config_path = ""
        self._device_ids = []

    @property
    def workers_num(self):
        """Workers of a ModelParallelRunner (int >= 0; 0 = chosen from the CPU count)."""
        return self._workers_num

    @workers_num.setter
    def workers_num(self, value):
        self._workers_num = check_non_negative(
            "workers_num", value, "Set parallel failed, workers_num must be a non-negative int.")

    @property
    def config_info(self):
        """Config sections for the workers: dict[str, dict[str, str]] (a copy)."""
        return {k: dict(v) for k, v in self._config_info.items()}

    @config_info.setter
    def config_info(self, value):
        check_config("config_info", value)
        for section, entries in value.items():
            self._config_info.setdefault(section, {}).update(entries)

    @property
    def config_path(self):
        """Path of an INI config file for the workers ('' = none; must exist)."""
        return self._config_path

    @config_path.setter
    def config_path(self, value):
        check_type("config_path", value, str)
        if value and not os.path.exists(value):
            raise ValueError(f"Set parallel failed, config_path does not exist! ({value!r})")
        self._config_path = value

    @property
    def device_ids(self):
        """Device id of each worker (list of int >= 0; CPU workers ignore it)."""
        return list(self._device_ids)

    @device_ids.setter
    def device_ids(self, value):
        check_list("device_ids", value, int)
        if any(d < 0 for d in value):
            raise ValueError("Set parallel failed, device_ids contain a negative number.")
        self._device_ids = list(value)

    def __str__(self):
        info = "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in e.items())
                         for s, e in self._config_info.items())
        return (f"workers num: {self.workers_num},\n"
                f"config info: {info},\n"
                f"config path: {self.config_path},\n"
                f"device ids: {self.device_ids}.")


class Context:
    """Where and how a Model runs: ``target`` devices and per-device options.

    ``target`` defaults to ``["cpu"]``. Sub-objects: ``cpu`` (thread_num,
    inter_op_parallel_num, precision_mode, thread affinity, read-only rank_id/group_size),
    ``gpu`` (device_id, precision_mode, provider, read-only rank_id/group_size), ``ascend``
    (device_id, rank_id, provider, precision_mode) and ``parallel`` (ModelParallelRunner
    options). A target this build cannot run ('ascend'; 'gpu' without a CUDA build) falls back
    to the CPU at build time, as MindSpore Lite keeps the CPU as every target's fallback, with a
    RuntimeWarning naming it: never silently.
    """

    def __init__(self):
        self._target = ["cpu"]
        self._group_info_file = ""
        self.cpu = _CPU()
        self.gpu = _GPU()
        self.ascend = _Ascend()
        self.parallel = _Parallel()

    @property
    def target(self):
        """The target devices, a list of 'cpu', 'gpu', 'ascend' (set case-insensitively,
        stored in lower case; an empty list or None means ['cpu'])."""
        return list(self._target)

    @target.setter
    def target(self, value):
        value = ["cpu"] if value is None or (isinstance(value, list) and not value) else value
        check_list("target", value, str)
        for t in value:
            if t.lower() not in _TARGETS:
                raise ValueError(f"target elements must be in {list(_TARGETS)}, but got "
                                 f"{t.lower()}.")
        self._target = [t.lower() for t in value]

    @property
    def group_info_file(self):
        """Path of a communication-group description file (str, default '')."""
        return self._group_info_file

    @group_info_file.setter
    def group_info_file(self, value):
        self._group_info_file = check_type("group_info_file", value, str)

    def __str__(self):
        indent = lambda obj: str(obj).replace("\n", "\n  ")  # noqa: E731
        return (f"target: {self.target},\n"
                f"group_info_file: {self.group_info_file!r},\n"
                f"cpu:\n  {indent(self.cpu)}\n"
                f"gpu:\n  {indent(self.gpu)}\n"
                f"ascend:\n  {indent(self.ascend)}\n"
                f"parallel:\n  {indent(self.parallel)}")

    __repr__ = __str__
