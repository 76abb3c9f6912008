"""Model and ModelType, as in MindSpore Lite."""

import contextlib
import os
import warnings
from enum import IntEnum

import numpy as np

from . import _config, _shardlite
from ._check import check_config, check_list, check_type
from ._rank import MAX_TIMEOUT_S, rank_and_size
from .context import Context
from .tensor import DataType, Tensor, _IntEnum, _storable

__all__ = ["Model", "ModelType"]


class ModelType(_IntEnum):
    """The kind of model file.

    MINDIR (0, MindIR protobuf: supported), ONNX (3, the C++ enum's value: not yet supported),
    MINDIR_LITE (4, the flatbuffer ".ms" format: not supported).
    """

    MINDIR = 0
    ONNX = 3
    MINDIR_LITE = 4


def _check_target(context):
    """Warns (RuntimeWarning) for each target of context this build cannot run: the CPU runs
    the model, as MindSpore Lite keeps the CPU as every target's fallback (so a reference script
    written for 'gpu' or 'ascend' runs here with only its import changed)."""
    for target in context.target:
        if target == "ascend":
            why = "target 'ascend': shardlite has no Ascend backend"
        elif target == "gpu" and not _shardlite.build_info().get("cuda"):
            why = "target 'gpu' needs a CUDA build of shardlite (build_info()['cuda'] is False)"
        else:
            continue
        warnings.warn(f"{why}: the model runs on the CPU (set context.target = ['cpu'] to "
                      "say so)", RuntimeWarning, stacklevel=3)


def _load_config(config_path, config_dict):
    """The merged config: the file's sections, then config_dict's entries over them."""
    config = _config.read_ini(config_path) if config_path else {}
    return _config.merge(config, config_dict)


class Model:
    """A model: ``build_from_file`` once, then ``predict`` as often as needed.

    predict releases the GIL while the model runs, so predicts on different models run in
    parallel from Python threads; concurrent predicts on one model are safe and run one after
    the other (use ModelParallelRunner to serve one model from many threads at once). A model
    that communicates with other ranks is the exception: a rank predicts with one such model
    at a time, from one thread, and a second predict at once raises RuntimeError.
    """

    def __init__(self):
        self._model = None       # the built _shardlite.Model
        self._config = {}        # the merged config sections
        self.model_path_ = ""

    def __str__(self):
        return f"model_path: {self.model_path_}."

    def _built(self, op):
        """The low-level model, or RuntimeError naming op if build_from_file has not run."""
        model = self._model
        if model is None:
            raise RuntimeError(f"{op} failed! Error is the model is not built; call "
                               "build_from_file first.")
        return model

    def build_from_file(self, model_path, model_type, context=None, config_path="",
                        config_dict=None, dec_key=None, dec_mode="AES-GCM", dec_num_parallel=0):
        """Loads and compiles a model file.

        Args:
            model_path (str): the .mindir file.
            model_type (ModelType): ModelType.MINDIR (ONNX and MINDIR_LITE raise RuntimeError).
            context (Context, optional): None means a default CPU context; cpu.thread_num sets
                the worker threads. Targets 'gpu' (without a CUDA build) and 'ascend' run on
                the CPU, with a RuntimeWarning.
            config_path (str, optional): an INI file (``[section]``, ``key=value``, ``#``
                comments). A concrete ``input_shape`` (``x:[2,8];y:[3]``) in any section
                resizes the inputs at build.
            config_dict (dict[str, dict[str, str]], optional): entries overriding the file's.
            dec_key (bytes, optional): decryption key; shardlite cannot decrypt models, so a
                key raises RuntimeError.
            dec_mode (str, optional): 'AES-GCM' (default) or 'AES-CBC'.
            dec_num_parallel (int, optional): decryption threads (unused).

        Raises:
            TypeError: an argument of the wrong type.
            RuntimeError: a missing file, an unsupported model type or decryption, or a model
                that cannot be built. Building again replaces the model.
        """
        check_type("model_path", model_path, str)
        check_type("model_type", model_type, ModelType)
        if context is None:
            context = Context()
        check_type("context", context, Context)
        check_type("config_path", config_path, str)
        if not os.path.exists(model_path):
            raise _missing_model(model_path, context, config_path, config_dict)
        if config_path and not os.path.exists(config_path):
            raise _missing("config_path", config_path)
        if config_dict is not None:
            check_config("config_dict", config_dict)
        if dec_key is not None:
            check_type("dec_key", dec_key, bytes)
        check_type("dec_mode", dec_mode, str)
        check_type("dec_num_parallel", dec_num_parallel, int)
        if dec_mode not in ("AES-GCM", "AES-CBC"):
            raise ValueError(f"dec_mode must be in [AES-GCM, AES-CBC], but got {dec_mode}.")
        if dec_key is not None:
            raise RuntimeError("build_from_file failed! Error is model decryption (dec_key) is "
                               "not supported by shardlite; decrypt the file first.")
        if model_type != ModelType.MINDIR:
            raise RuntimeError(f"build_from_file failed! Error is {model_type} files are not "
                               "supported yet; only ModelType.MINDIR.")
        _check_target(context)
        config = _load_config(config_path, config_dict)
        _configure_distributed(context, config)
        model = _shardlite.Model()
        try:
            model.build(model_path, context.cpu.thread_num)
        except RuntimeError as e:
            raise RuntimeError(f"build_from_file failed! Error is {e}") from None
        _apply_input_shape(model, _config.lookup(config, "input_shape"))
        self._model, self._config, self.model_path_ = model, config, model_path

    def save(self, path, external_data=False):
        """Writes the model as MindIR in MindSpore 2.x's encoding (a shardlite extension).

        Args:
            path (str): the .mindir file to write (replaced atomically).
            external_data (bool): put the weights in '<stem>_variables/data_0' beside the
                file, 64-byte aligned (MindSpore's layout for large models).
        """
        check_type("path", path, str)
        check_type("external_data", external_data, bool)
        try:
            self._built("save").save(path, external_data)
        except RuntimeError as e:
            raise RuntimeError(f"save failed! Error is {e}") from None

    def get_inputs(self):
        """The model's inputs: Tensors bound to its input buffers (shapes follow resize)."""
        return [Tensor._bind(ref) for ref in self._built("get_inputs").inputs()]

    def get_outputs(self):
        """The model's outputs (name, dtype, shape, format, element_num, data_size), bound to
        its output buffers: they hold the last predict's results."""
        return [Tensor._bind(ref) for ref in self._built("get_outputs").outputs()]

    def resize(self, inputs, dims):
        """Gives the inputs new shapes: dims[i] (list of int) for inputs[i] (a Tensor).

        Raises TypeError for wrong types, ValueError when len(inputs) != len(dims),
        RuntimeError when the model cannot take the shapes (it then keeps its
        previous shapes).
        """
        check_list("inputs", inputs, Tensor, containers=(list, tuple))
        check_type("dims", dims, (list, tuple), "list")
        for i, d in enumerate(dims):
            if not isinstance(d, (list, tuple)):
                raise TypeError(f"dims element must be list, but got {type(d)} at index {i}.")
            for j, dim in enumerate(d):
                if not isinstance(dim, int) or isinstance(dim, bool):
                    raise TypeError(f"dims element's element must be int, but got {type(dim)} "
                                    f"at {i}th dims element's {j}th element.")
        if len(inputs) != len(dims):
            raise ValueError(f"inputs' size does not match dims' size, but got inputs: "
                             f"{len(inputs)} and dims: {len(dims)}.")
        model = self._built("resize")
        refs = model.inputs()
        shapes = [list(ref.shape) for ref in refs]
        for i, (tensor, d) in enumerate(zip(inputs, dims)):
            ref = tensor._data
            bound = isinstance(ref, _shardlite.TensorRef) and ref.model is model and ref.is_input
            index = ref.index if bound else i
            if index >= len(shapes):
                raise ValueError(f"the model has {len(shapes)} inputs, but got {len(inputs)}.")
            shapes[index] = list(d)
        _resize(model, shapes, "resize")

    def predict(self, inputs, outputs=None):
        """Runs the model on inputs (a list or tuple of Tensor or numpy arrays, one per input).

        Inputs are copied into the model (Tensors from get_inputs() already are there); when
        their shapes differ from the model's, it is resized first. Returns a list of Tensor,
        one per graph output in graph order, each owning its results. If outputs (a list of
        Tensor with the outputs' shapes and dtypes) is given, they receive the results: a
        Tensor wrapping a writable numpy array gets them copied into that array.

        Raises TypeError for wrong types and RuntimeError for a wrong input count, dtype or a
        failed run.
        """
        model = self._model
        if model is None:
            self._built("predict")
        if outputs is not None:
            check_list("outputs", outputs, Tensor, containers=(list, tuple))
        try:
            results = model.run(inputs)
        except _shardlite.ConvertInputs:
            results = model.run([_convertible(x) for x in inputs])
        if outputs is not None:
            _fill_outputs(model, outputs, results)
        return results

    def get_model_info(self, key):
        """Information about the model: 'user_info' (the file's user_info map, formatted
        '{k1:v1,k2:v2}'), 'input_shape' and 'dynamic_dims' (from the config); '' otherwise."""
        check_type("key", key, str)
        model = self._built("get_model_info")
        if key == "user_info":
            info = model.user_info()
            return "{" + ",".join(f"{k}:{v}" for k, v in info.items()) + "}" if info else ""
        if key in ("input_shape", "dynamic_dims"):
            return _config.lookup(self._config, key)
        return ""

    def update_weights(self, weights):
        """Replaces named weights: weights is a list of lists of Tensor, each Tensor named as a
        weight of the model (with or without the '<graph>:' prefix) with its dtype and shape.

        Raises TypeError for wrong types and RuntimeError for an unknown name or a dtype or
        shape mismatch (the weights updated before it keep their new data).
        """
        check_type("weights", weights, list)
        for i, group in enumerate(weights):
            check_type("weight", group, list)
            for j, t in enumerate(group):
                if not isinstance(t, Tensor):
                    raise TypeError(f"weights element must be Tensor, but got {type(t)} at "
                                    f"index {i}{j}.")
        model = self._built("update_weights")
        for group in weights:
            for t in group:
                data = np.ascontiguousarray(t.get_data_to_numpy())
                try:
                    model.update_weight(t.name, int(t.dtype), data)
                except (RuntimeError, ValueError) as e:
                    raise RuntimeError(f"update weight failed! Error is {e}") from None


def _convertible(x):
    """x in a form Model.run reads (native byte order, bfloat16 as uint16 bits)."""
    return _storable(x) if isinstance(x, np.ndarray) else x


def _resize(model, shapes, op):
    """Resizes the low-level model, reporting failures as RuntimeError naming op."""
    try:
        model.resize(shapes)
    except (RuntimeError, ValueError, BufferError) as e:
        raise RuntimeError(f"{op} failed! Error is resize to {shapes} failed: {e}") from None


def _apply_input_shape(model, text):
    """Resizes a freshly built model to the concrete shapes of a config's input_shape."""
    if not text:
        return
    try:
        wanted = _config.parse_input_shape(text)
    except ValueError as e:
        raise RuntimeError(f"build_from_file failed! Error is {e}") from None
    if any(d < 0 for dims in wanted.values() for d in dims):
        return  # a dynamic range description, not a shape to build with
    refs = model.inputs()
    names = [ref.name for ref in refs]
    # an input by its whole name, or by MindSpore's parameter name (what follows the first
    # ':', as "x" in "17_1_construct.Default_wrapper.5:x")
    short = [name.split(":", 1)[-1] for name in names]
    by_name = {**{s: n for s, n in zip(short, names) if short.count(s) == 1},
               **{n: n for n in names}}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise RuntimeError(f"build_from_file failed! Error is input_shape names {unknown}, "
                           f"but the model's inputs are {names}")
    wanted = {by_name[n]: dims for n, dims in wanted.items()}
    shapes = [wanted.get(ref.name, list(ref.shape)) for ref in refs]
    if shapes != [list(ref.shape) for ref in refs]:
        _resize(model, shapes, "build_from_file")


def _fill_outputs(model, outputs, results):
    """Gives the caller's output Tensors the results (their data becomes the results)."""
    if len(outputs) != len(results):
        raise RuntimeError(f"predict failed! Error is model output len:{len(results)} not "
                           f"equal output len:{len(outputs)}!")
    for i, (out, res) in enumerate(zip(outputs, results)):
        if out.dtype != res.dtype or out.shape != res.shape:
            raise RuntimeError(f"predict failed! Error is outputs[{i}] is {out.dtype.name} "
                               f"{out.shape}, but the model's output '{res.name}' is "
                               f"{res.dtype.name} {res.shape}")
        ref = out._data
        if isinstance(ref, _shardlite.TensorRef):
            if ref.model is model and not ref.is_input and ref.index == i:
                continue  # the model's own output buffer already holds the results
            ref.set_data(res._data)
        elif isinstance(ref, np.ndarray) and ref.flags.writeable:
            np.copyto(ref, np.asarray(res._data))  # the caller's own array gets the results
        else:
            out._data = res._data


def _missing(what, path):
    """MindSpore Lite's error for a missing file, naming the path (and the rank in a job)."""
    try:
        rank, size = rank_and_size()
    except RuntimeError:  # malformed rank variables: the build reports them
        rank, size = 0, 1
    where = f", on rank {rank} of {size}" if size > 1 else ""
    return RuntimeError(f"build_from_file failed, {what} does not exist! ({path!r}{where})")


def _missing_model(model_path, context, config_path, config_dict):
    """_missing for the model file, naming this process's rank: the configuration's, when it
    sets one (applied here as the build would have)."""
    with contextlib.suppress(Exception):
        _configure_distributed(context, _load_config(config_path, config_dict))
    return _missing("model_path", model_path)


def _configure_distributed(context, config):
    """Explicit rank configuration, before the build joins the model's communication groups:
    a ``[distributed]`` section (``rank``, ``size``, optional ``backend`` shm|mpi, ``job_id``,
    ``timeout`` in seconds), or the Ascend-style flow: ``rank_table_file`` (e.g. in
    ``[ascend_context]``) plus ``context.ascend.rank_id``. Without either, the launcher's
    environment decides (see shardlite.distributed())."""
    section = config.get("distributed", {})
    table = _config.lookup(config, "rank_table_file")

    def number(key, kind):
        if key not in section:
            raise ValueError(f"[distributed] sets rank or size but not {key}")
        try:
            return kind(section[key])
        except ValueError:
            raise ValueError(f"[distributed] {key}={section[key]!r} is not "
                             f"{'an integer' if kind is int else 'a number'}") from None

    try:
        if "timeout" in section:
            if not 0 < number("timeout", float) <= MAX_TIMEOUT_S:
                raise ValueError("[distributed] timeout must be seconds above 0 and at most "
                                 f"{MAX_TIMEOUT_S}")
            os.environ["SHARDLITE_COMM_TIMEOUT"] = section["timeout"]
        if "rank" in section or "size" in section:
            _shardlite.configure_distributed(number("rank", int), number("size", int),
                                             section.get("job_id"), section.get("backend"))
        elif table:
            rank, size, job, backend = _rank_table(table, context.ascend.rank_id)
            _shardlite.configure_distributed(rank, size, job, backend)
    except (KeyError, ValueError, OSError, RuntimeError) as e:
        raise RuntimeError(f"build_from_file failed! Error is distributed configuration: {e}") \
            from None


def _rank_table(path, rank):
    """(rank, size, job, backend) from an Ascend rank table: {"server_list": [{"device":
    [{"rank_id": ...}, ...]}, ...]}; the job id is derived from the table (same on every rank)."""
    import hashlib
    import json

    with open(path, encoding="utf-8-sig") as f:
        table = json.load(f)
    servers = table.get("server_list") if isinstance(table, dict) else None
    if not isinstance(servers, list) or not all(
            isinstance(s, dict) and isinstance(s.get("device") or [], list) for s in servers):
        raise ValueError(f'rank table {path} is not {{"server_list": [{{"device": [...]}}, ...]}}')
    size = sum(len(server.get("device") or []) for server in servers)
    if size < 1:
        raise ValueError(f"rank table {path} lists no devices")
    if not 0 <= rank < size:
        raise ValueError(f"context.ascend.rank_id {rank} is outside the rank table's {size} ranks")
    stat = os.stat(path)
    digest = hashlib.sha1(f"{os.path.realpath(path)}:{stat.st_mtime_ns}".encode()).hexdigest()
    return rank, size, "rt" + digest[:12], "shm" if len(servers) <= 1 else "mpi"
