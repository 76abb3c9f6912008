"""ModelParallelRunner and ModelGroup, as in MindSpore Lite."""

import os
import queue

from ._check import check_list, check_type
from .context import Context
from .model import Model, ModelType, _missing_model
from .tensor import Tensor, _IntEnum, _NUMPY_OF

import numpy as np

__all__ = ["ModelGroup", "ModelGroupFlag", "ModelParallelRunner"]


def _default_workers():
    """Workers when context.parallel.workers_num is 0: one per 4 CPUs, between 1 and 8."""
    return max(1, min(8, (os.cpu_count() or 1) // 4))


class ModelParallelRunner:
    """A pool of workers (Models built from one file) serving concurrent predict calls.

    Each predict takes an idle worker (waiting for one if all are busy), so up to
    ``workers_num`` predicts from Python threads run at once. The workers share the file's
    weights in memory (the library maps a file once per process).
    """

    def __init__(self):
        self._workers = None     # queue.Queue of idle Models
        self._first = None       # one worker, for the inputs' descriptions
        self.model_path_ = ""

    def __str__(self):
        return f"model_path: {self.model_path_}."

    def build_from_file(self, model_path, context=None):
        """Builds context.parallel.workers_num workers (0: a default from the CPU count; one
        for a model that communicates with other ranks, which a rank runs one predict at a
        time).

        Each worker uses context.cpu.thread_num threads (0: the CPUs split between the
        workers); context.parallel.config_path / config_info configure them as
        Model.build_from_file's config_path / config_dict do.

        Raises TypeError for wrong types and RuntimeError for a missing file or a failed build.
        """
        check_type("model_path", model_path, str)
        if context is None:
            context = Context()
        check_type("context", context, Context)
        if not os.path.exists(model_path):
            raise _missing_model(model_path, context, context.parallel.config_path,
                                 context.parallel.config_info)
        count = context.parallel.workers_num or _default_workers()

        def worker(count):
            worker_context = Context()
            worker_context.target = context.target
            threads = context.cpu.thread_num  # 0 for one worker: the CPUs the process may use
            if not threads and count > 1:
                threads = max(1, len(os.sched_getaffinity(0)) // count)
            worker_context.cpu.thread_num = threads
            model = Model()
            try:
                model.build_from_file(model_path, ModelType.MINDIR, worker_context,
                                      context.parallel.config_path,
                                      context.parallel.config_info)
            except RuntimeError as e:
                raise RuntimeError(f"ModelParallelRunner's init failed! Error is {e}") from None
            return model

        first = worker(count)
        if count > 1 and first._model.communicates:
            # the ranks must run their collectives in the same order: one worker per rank
            if context.parallel.workers_num:
                raise RuntimeError(
                    f"ModelParallelRunner's init failed! Error is workers_num is {count}, but "
                    "the model communicates with other ranks, and a rank predicts with one "
                    "distributed model at a time: use workers_num 1 (or 0).")
            count = 1
            first = worker(count)  # joins the groups before the first build lets go of them
        workers = queue.Queue()
        workers.put(first)
        for _ in range(count - 1):
            workers.put(worker(count))
        self._workers, self._first, self.model_path_ = workers, first, model_path

    def _check_built(self, op):
        if self._workers is None:
            raise RuntimeError(f"{op} failed! Error is the runner is not built; call "
                               "build_from_file first.")

    def get_inputs(self):
        """New Tensors shaped like the model's inputs (zero-filled; not bound to a worker, so
        several threads may fill their own). Dynamic dimensions (-1) are given size 0."""
        self._check_built("get_inputs")
        inputs = []
        for ref in self._first._built("get_inputs").inputs():
            shape = [max(d, 0) for d in ref.shape]
            t = Tensor(np.zeros(shape, _NUMPY_OF[ref.dtype]))
            t._dtype = type(t.dtype)(ref.dtype)
            t.name = ref.name
            inputs.append(t)
        return inputs

    def predict(self, inputs, outputs=None):
        """Runs the model on inputs (as Model.predict) on an idle worker; safe to call from
        many threads at once (but a model that communicates with other ranks predicts from one
        thread at a time: a second thread's call raises RuntimeError). Returns a list of
        Tensor, one per output."""
        self._check_built("predict")
        if self._first._model.communicates:  # its turns must come in one order on every rank
            try:
                model = self._workers.get_nowait()
            except queue.Empty:
                raise RuntimeError("predict failed! Error is another thread is predicting with "
                                   "this runner, whose model communicates with other ranks: "
                                   "every rank must run its collectives in the same order, so "
                                   "it predicts from one thread at a time.") from None
        else:
            model = self._workers.get()
        try:
            return model.predict(inputs, outputs)
        finally:
            self._workers.put(model)


class ModelGroupFlag(_IntEnum):
    """What the models of a ModelGroup share: SHARE_WEIGHT=1, SHARE_WORKSPACE=2 or both (3)."""

    SHARE_WEIGHT = 1
    SHARE_WORKSPACE = 2
    SHARE_WEIGHT_WORKSPACE = 3


class ModelGroup:
    """Models on one device that share weights and/or workspace.

    In shardlite, models built from the same file (or files whose weights live in the same
    external data file) always share one copy of the weights, group or not. Workspace
    (activation memory) is not shared: each model keeps its own arena, so models of a group
    may run at the same time; cal_max_size_of_workspace reports the largest arena.
    """

    def __init__(self, flags=ModelGroupFlag.SHARE_WORKSPACE):
        check_type("flags", flags, ModelGroupFlag)
        self._flags = flags
        self._paths = []
        self._models = []

    @property
    def flags(self):
        """The ModelGroupFlag given at creation."""
        return self._flags

    def add_model(self, models):
        """Adds models to the group: a list of model paths (str) or a list of Models.

        Raises TypeError for anything else, RuntimeError for a path that does not exist.
        """
        check_type("models", models, (list, tuple), "list")
        if all(isinstance(m, str) for m in models):
            for path in models:
                if not os.path.exists(path):
                    raise RuntimeError(f"add_model failed, model_path does not exist! "
                                       f"({path!r})")
            self._paths.extend(models)
        else:
            check_list("models", models, Model, containers=(list, tuple))
            self._models.extend(models)

    def cal_max_size_of_workspace(self, model_type, context):
        """The largest workspace (activation arena, bytes) among the group's models.

        Models added by path are built once with model_type and context to measure them.
        """
        check_type("model_type", model_type, ModelType)
        check_type("context", context, Context)
        sizes = [m._built("cal_max_size_of_workspace").arena_bytes for m in self._models]
        for path in self._paths:
            model = Model()
            model.build_from_file(path, model_type, context)
            sizes.append(model._model.arena_bytes)
        return max(sizes, default=0)


