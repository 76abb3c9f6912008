"""shardlite: run MindSpore MindIR models on CPU with a MindSpore-Lite-compatible Python API.

Scripts written for ``mindspore_lite`` run with only the import changed::

    import shardlite as mslite

    context = mslite.Context()
    model = mslite.Model()
    model.build_from_file("net.mindir", mslite.ModelType.MINDIR, context)
    inputs = model.get_inputs()
    inputs[0].set_data_from_numpy(np.ones(inputs[0].shape, dtype=np.float32))
    outputs = model.predict(inputs)
    print(outputs[0].get_data_to_numpy())

Differences from the reference are listed in the docstrings ("ref quirk" / "extension").
"""

import copy
import os
import threading
from enum import IntEnum

import numpy as np

from . import _shardlite
from ._shardlite import build_info

__version__ = _shardlite.version()

__all__ = [
    "Context",
    "DataType",
    "Format",
    "Model",
    "ModelType",
    "Tensor",
    "build_info",
]


# ---- enums ----

class _IntEnum(IntEnum):
    """An IntEnum that prints as 'DataType.FLOAT32' (as the reference's enums do)."""

    def __str__(self):
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec):
        return format(str(self), spec)


class ModelType(_IntEnum):
    """The kind of model file: MINDIR (MindIR protobuf, supported) or MINDIR_LITE (.ms, not)."""

    MINDIR = 0
    MINDIR_LITE = 4


class DataType(_IntEnum):
    """Tensor element types, numbered as MindSpore Lite's DataType.

    BFLOAT16 is an extension; its data appears in numpy as the raw uint16 bits (or as
    ``ml_dtypes.bfloat16`` arrays, which are accepted too).
    """

    UNKNOWN = 0
    BOOL = 30
    INT8 = 32
    INT16 = 33
    INT32 = 34
    INT64 = 35
    UINT8 = 37
    UINT16 = 38
    UINT32 = 39
    UINT64 = 40
    FLOAT16 = 42
    FLOAT32 = 43
    FLOAT64 = 44
    BFLOAT16 = 46
    INVALID = 2147483647


class Format(_IntEnum):
    """Tensor data layouts, numbered as MindSpore Lite's Format (informational only)."""

    DEFAULT = -1
    NCHW = 0
    NHWC = 1
    NHWC4 = 2
    HWKC = 3
    HWCK = 4
    KCHW = 5
    CKHW = 6
    KHWC = 7
    CHWK = 8
    HW = 9
    HW4 = 10
    NC = 11
    NC4 = 12
    NC4HW4 = 13
    NCDHW = 15
    NWC = 16
    NCW = 17
    NDHWC = 18
    NC8HW8 = 19


# The numpy dtype holding each DataType's data (bfloat16: its uint16 bits).
_NUMPY_OF = {
    DataType.BOOL: np.dtype(np.bool_),
    DataType.INT8: np.dtype(np.int8),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.FLOAT16: np.dtype(np.float16),
    DataType.FLOAT32: np.dtype(np.float32),
    DataType.FLOAT64: np.dtype(np.float64),
    DataType.BFLOAT16: np.dtype(np.uint16),
}
_DATATYPE_OF = {v: k for k, v in _NUMPY_OF.items() if k != DataType.BFLOAT16}


def _datatype_of(np_dtype):
    """The DataType of a numpy dtype (any byte order), or None if there is none."""
    if np_dtype.name == "bfloat16" and np_dtype.itemsize == 2:
        return DataType.BFLOAT16
    return _DATATYPE_OF.get(np_dtype.newbyteorder("="))


def _accepts(dtype, np_dtype):
    """Whether numpy data of np_dtype may fill a tensor of DataType dtype."""
    if dtype == DataType.BFLOAT16 and np_dtype.newbyteorder("=") == np.dtype(np.uint16):
        return True
    return _datatype_of(np_dtype) == dtype


def _native(arr):
    """arr as a C-contiguous array in native byte order (a copy only when needed)."""
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))


# ---- argument checks (messages in the reference's style) ----

def _check_type(name, value, types, type_name):
    """Raises TypeError unless value is an instance of types (bool never counts as int)."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise TypeError(f"{name} must be {type_name}, but got {type(value)}.")
    return value


def _check_int(name, value):
    """An int >= 0, else TypeError/ValueError."""
    _check_type(name, value, (int,), "int")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int.")
    return value


def _check_list(name, value, types, type_name):
    """A list (or tuple) whose elements are instances of types; returned as a new list."""
    _check_type(name, value, (list, tuple), "list")
    for i, item in enumerate(value):
        if not isinstance(item, types) or (isinstance(item, bool) and bool not in types):
            raise TypeError(f"{name} element must be {type_name}, but got {type(item)} "
                            f"at index {i}.")
    return list(value)


def _check_choice(name, value, choices):
    """One of choices (a str, compared case-insensitively), returned in lower case."""
    _check_type(name, value, (str,), "str")
    if value.lower() not in choices:
        raise ValueError(f"{name} must be in {list(choices)}, but got {value}.")
    return value.lower()


# ---- Context ----

class _Option:
    """A validated attribute of a Context sub-object (the check runs on assignment)."""

    def __init__(self, default, check, doc):
        self.default = default
        self.check = check
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        if self.name not in obj.__dict__:
            obj.__dict__[self.name] = copy.copy(self.default)  # lists/dicts: one per object
        return obj.__dict__[self.name]

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(f"{obj._prefix}_{self.name}", value)


def _int_option(doc):
    """An int >= 0 option, default 0."""
    return _Option(0, _check_int, doc)


def _choice_option(default, choices, doc):
    """A str option taking one of choices (case-insensitive)."""
    return _Option(default, lambda name, v: _check_choice(name, v, choices), doc)


def _str_option(default, doc):
    """A free str option."""
    return _Option(default, lambda name, v: _check_type(name, v, (str,), "str"), doc)


class _DeviceInfo:
    """Shared behaviour of the Context sub-objects: a readable __str__ listing the options."""

    _prefix = ""

    def __str__(self):
        names = [n for n in dir(type(self)) if not n.startswith("_")]
        fields = ",\n".join(f"  {n}: {getattr(self, n)!r}" for n in names)
        return f"{self._prefix}_info(\n{fields})"

    __repr__ = __str__


def _check_choice_int(name, value, choices):
    """An int among choices, else TypeError/ValueError."""
    _check_type(name, value, (int,), "int")
    if value not in choices:
        raise ValueError(f"{name} must be in {list(choices)}, but got {value}.")
    return value


def _check_core_list(name, value):
    """A list of non-negative ints (CPU core ids)."""
    cores = _check_list(name, value, (int,), "int")
    if any(c < 0 for c in cores):
        raise ValueError(f"{name} elements must be non-negative ints.")
    return cores


class _CPUInfo(_DeviceInfo):
    """CPU options of a Context (context.cpu)."""

    _prefix = "cpu"
    precision_mode = _choice_option(
        "enforce_fp32", ("enforce_fp32", "preferred_fp16"),
        "'enforce_fp32' (default) or 'preferred_fp16' (accepted; shardlite computes in the "
        "model's own dtypes).")
    thread_num = _int_option("Worker threads for one model (int >= 0, 0 = one per CPU).")
    inter_op_parallel_num = _int_option(
        "Operators run in parallel (int >= 0; accepted, shardlite runs operators in order).")
    thread_affinity_mode = _Option(
        0, lambda name, v: _check_choice_int(name, v, (0, 1, 2)),
        "0: no binding, 1: big cores first, 2: little cores first (accepted, not yet applied).")
    thread_affinity_core_list = _Option(
        [], _check_core_list,
        "CPU core ids to bind threads to (list of int >= 0; accepted, not yet applied).")


class _GPUInfo(_DeviceInfo):
    """GPU options of a Context (context.gpu). Placeholder: shardlite runs on CPU for now."""

    _prefix = "gpu"
    device_id = _int_option("The GPU to use (int >= 0).")
    precision_mode = _choice_option("enforce_fp32", ("enforce_fp32", "preferred_fp16"),
                                    "'enforce_fp32' (default) or 'preferred_fp16'.")
    provider = _str_option("", "Inference backend name (ref quirk: accepted and ignored).")

    @property
    def rank_id(self):
        """This process's rank, set by the launcher (read-only; 0 when not distributed)."""
        return 0

    @property
    def group_size(self):
        """The number of ranks, set by the launcher (read-only; 1 when not distributed)."""
        return 1


class _AscendInfo(_DeviceInfo):
    """Ascend options of a Context (context.ascend). Placeholder: accepted, not used."""

    _prefix = "ascend"
    device_id = _int_option("The Ascend device to use (int >= 0).")
    rank_id = _int_option("This process's rank (int >= 0).")
    provider = _choice_option("", ("", "ge"), "'' or 'ge'.")
    precision_mode = _choice_option(
        "enforce_fp32",
        ("enforce_fp32", "preferred_fp32", "enforce_fp16", "enforce_origin", "preferred_optimal"),
        "Ascend precision mode.")


class _ParallelInfo(_DeviceInfo):
    """Options of ModelParallelRunner (context.parallel). Placeholder: accepted, not used."""

    _prefix = "parallel"
    workers_num = _int_option("Workers serving concurrent predict calls (int >= 0).")
    config_path = _str_option("", "Path of a config file for the workers.")
    config_info = _Option({}, lambda name, v: _check_type(name, v, (dict,), "dict"),
                          "Config sections: dict of str -> dict of str -> str.")
    device_ids = _Option([], lambda name, v: _check_list(name, v, (int,), "int"),
                         "Device ids of the workers (list of int).")


_TARGETS = ("cpu", "gpu", "ascend")


class Context:
    """Where and how a Model runs: target devices plus per-device options.

    ``target`` defaults to ``["cpu"]``. shardlite computes on the CPU; gpu/ascend targets are
    accepted (the reference keeps the CPU as fallback too) and currently run on the CPU.
    """

    def __init__(self):
        self._target = ["cpu"]
        self._group_info_file = ""
        self._cpu = _CPUInfo()
        self._gpu = _GPUInfo()
        self._ascend = _AscendInfo()
        self._parallel = _ParallelInfo()

    @property
    def target(self):
        """The target devices, a list of 'cpu', 'gpu', 'ascend' (set case-insensitively)."""
        return list(self._target)

    @target.setter
    def target(self, value):
        targets = _check_list("target", value, (str,), "str")
        for t in targets:
            if t.lower() not in _TARGETS:
                raise ValueError(f"target elements must be in {list(_TARGETS)}, but got {t}.")
        self._target = [t.lower() for t in targets]

    @property
    def group_info_file(self):
        """Path of a communication-group description file (str)."""
        return self._group_info_file

    @group_info_file.setter
    def group_info_file(self, value):
        self._group_info_file = _check_type("group_info_file", value, (str,), "str")

    @property
    def cpu(self):
        """CPU options: thread_num, inter_op_parallel_num, precision_mode, thread affinity."""
        return self._cpu

    @property
    def gpu(self):
        """GPU options: device_id, precision_mode, provider, rank_id, group_size."""
        return self._gpu

    @property
    def ascend(self):
        """Ascend options: device_id, rank_id, provider, precision_mode."""
        return self._ascend

    @property
    def parallel(self):
        """ModelParallelRunner options: workers_num, config_info, config_path, device_ids."""
        return self._parallel

    def __str__(self):
        return (f"target: {self._target},\ngroup_info_file: {self._group_info_file!r},\n"
                f"{self._cpu},\n{self._gpu},\n{self._ascend},\n{self._parallel}")

    __repr__ = __str__


# ---- Tensor ----

class Tensor:
    """A tensor: user data (a numpy array, wrapped without copying) or a model's input/output.

    ``Tensor(tensor=None, shape=None, dtype=None, device=None)``: from a numpy array (shape and
    dtype, if given, must match it: TypeError otherwise); from shape and dtype, a zero-filled
    tensor; with neither, a float32 scalar. Tensors from ``Model.get_inputs()`` are bound to the
    model: ``set_data_from_numpy`` writes straight into its input buffer.
    """

    def __init__(self, tensor=None, shape=None, dtype=None, device=None):
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"tensor must be numpy.ndarray, but got {type(tensor)}.")
        if shape is not None:
            shape = _check_list("shape", shape, (int,), "int")
        if dtype is not None:
            _check_type("dtype", dtype, (DataType,), "DataType")
        if device is not None:
            _check_type("device", device, (str,), "str")
        if tensor is not None:
            found = _datatype_of(tensor.dtype)
            if found is None:
                raise TypeError(f"tensor's numpy dtype {tensor.dtype} is not supported.")
            if shape is not None and shape != list(tensor.shape):
                raise TypeError(f"shape {shape} does not match the numpy array's shape "
                                f"{list(tensor.shape)}.")
            if dtype is not None and not _accepts(dtype, tensor.dtype):
                raise TypeError(f"dtype {dtype.name} does not match the numpy array's dtype "
                                f"{tensor.dtype}.")
            array, dtype = tensor, dtype if dtype is not None else found
        else:
            dtype = DataType.FLOAT32 if dtype is None else dtype
            if dtype not in _NUMPY_OF:
                raise ValueError(f"dtype {dtype.name} cannot hold data.")
            shape = [] if shape is None else shape
            if any(d < 0 for d in shape):
                raise ValueError(f"shape {shape} has a negative dimension.")
            array = np.zeros(shape, _NUMPY_OF[dtype])
        self._init(None, array, dtype, "", device or "cpu")

    def _init(self, ref, array, dtype, name, device):
        """Sets every field; the one place that knows a Tensor's layout."""
        self._ref = ref          # a _shardlite.TensorRef, or None for user data
        self._array = array      # the numpy data when _ref is None
        self._dtype = dtype      # DataType of _array (bfloat16 arrays are uint16 bits)
        self._name = name
        self._format = Format.NCHW
        self._device = device

    @classmethod
    def _bind(cls, ref):
        """A Tensor bound to a model's input or output."""
        t = cls.__new__(cls)
        t._init(ref, None, DataType(ref.dtype), ref.name, "cpu")
        return t

    @classmethod
    def _copy_of(cls, ref):
        """A Tensor owning a copy of a model tensor's current data."""
        t = cls.__new__(cls)
        t._init(None, _read(ref, "predict"), DataType(ref.dtype), ref.name, "cpu")
        return t

    def _is_input_of(self, model, index):
        """Whether this Tensor is bound to input `index` of the low-level model."""
        ref = self._ref
        return ref is not None and ref.model is model and ref.is_input and ref.index == index

    @property
    def name(self):
        """The tensor's name (a model tensor's graph name; '' for user data unless set)."""
        return self._name

    @name.setter
    def name(self, value):
        self._name = _check_type("name", value, (str,), "str")

    @property
    def dtype(self):
        """The element type (DataType)."""
        return self._dtype

    @property
    def shape(self):
        """The dimensions, a list of int (-1 marks an unresolved dynamic dimension)."""
        return list(self._ref.shape if self._ref is not None else self._array.shape)

    @property
    def format(self):
        """The data layout (Format); informational, NCHW unless set."""
        return self._format

    @format.setter
    def format(self, value):
        self._format = _check_type("format", value, (Format,), "Format")

    @property
    def element_num(self):
        """The number of elements."""
        return self._ref.element_num if self._ref is not None else int(self._array.size)

    @property
    def data_size(self):
        """The size of the data in bytes."""
        return self._ref.data_size if self._ref is not None else int(self._array.nbytes)

    @property
    def device(self):
        """Where the data lives: 'cpu'."""
        return self._device

    def set_data_from_numpy(self, numpy_obj):
        """Sets the data from a numpy array of the same dtype and byte size.

        A model input receives a copy; user data wraps the array without copying when it is
        C-contiguous (ref quirk: Fortran-ordered arrays are copied instead of failing). Raises
        TypeError for a non-array, RuntimeError for a dtype or size mismatch.
        """
        if not isinstance(numpy_obj, np.ndarray):
            raise TypeError(f"numpy_obj must be numpy.ndarray, but got {type(numpy_obj)}.")
        if not _accepts(self._dtype, numpy_obj.dtype):
            raise RuntimeError(f"data type not equal! Numpy type: {numpy_obj.dtype}, "
                               f"Tensor type: {self._dtype.name}")
        if numpy_obj.nbytes != self.data_size:
            raise RuntimeError(f"data size not equal! Numpy size: {numpy_obj.nbytes}, "
                               f"Tensor size: {self.data_size}")
        data = _native(numpy_obj)
        if self._ref is not None:
            _write(self._ref, data, "set_data_from_numpy")
        else:
            self._array = data.view(self._array.dtype).reshape(self._array.shape)

    def get_data_to_numpy(self):
        """A numpy array with a copy of the data (bfloat16 data: its uint16 bits).

        (ref quirk: the reference returns a view sharing memory; a copy stays valid after the
        next predict.)
        """
        if self._ref is not None:
            return _read(self._ref, "get_data_to_numpy")
        return self._array.copy()

    def __str__(self):
        return (f"name: {self.name},\ndtype: {self.dtype},\nshape: {self.shape},\n"
                f"format: {self.format},\nelement_num: {self.element_num},\n"
                f"data_size: {self.data_size}.")

    def __repr__(self):
        return (f"Tensor(name={self.name!r}, dtype={self.dtype.name}, shape={self.shape}, "
                f"format={self.format.name})")


def _read(ref, op):
    """A copy of a model tensor's data as a numpy array."""
    try:
        # Through memoryview: numpy would turn a failed export into an object array.
        with memoryview(ref) as view:
            return np.array(view, copy=True)
    except BufferError as e:
        raise RuntimeError(f"{op} failed! Error is {e}") from None


def _write(ref, data, op):
    """Copies a C-contiguous native-order array into a model tensor."""
    try:
        ref.set_data(data)
    except ValueError as e:
        raise RuntimeError(str(e)) from None
    except RuntimeError as e:
        raise RuntimeError(f"{op} failed! Error is {e}") from None


# ---- Model ----

class Model:
    """A model: ``build_from_file`` once, then ``predict`` as often as needed."""

    def __init__(self):
        self._model = None  # the built _shardlite.Model
        self._lock = threading.Lock()  # serialises predict and resize across threads

    def _built(self, op):
        """The low-level model, or RuntimeError naming op if build_from_file has not run."""
        if self._model is None:
            raise RuntimeError(f"{op} failed! Error is the model is not built; call "
                               "build_from_file first.")
        return self._model

    def build_from_file(self, model_path, model_type, context=None, config_path=""):
        """Loads and compiles a MindIR file.

        Args:
            model_path (str): the .mindir file.
            model_type (ModelType): must be ModelType.MINDIR (MINDIR_LITE .ms files are not
                supported).
            context (Context, optional): None means a default CPU context; cpu.thread_num sets
                the worker threads.
            config_path (str, optional): an INI config file; it must exist if given (its
                contents are not used yet).

        Raises TypeError for wrong argument types and RuntimeError when the file is missing or
        cannot be built. Building again replaces the model; Tensors from the old one stay
        valid.
        """
        _check_type("model_path", model_path, (str,), "str")
        _check_type("model_type", model_type, (ModelType,), "ModelType")
        if context is None:
            context = Context()
        _check_type("context", context, (Context,), "Context")
        _check_type("config_path", config_path, (str,), "str")
        if not os.path.exists(model_path):
            raise RuntimeError("build_from_file failed, model_path does not exist!")
        if config_path and not os.path.exists(config_path):
            raise RuntimeError("build_from_file failed, config_path does not exist!")
        if model_type != ModelType.MINDIR:
            raise RuntimeError("build_from_file failed! Error is only ModelType.MINDIR files "
                               "are supported.")
        model = _shardlite.Model()
        try:
            model.build(model_path, context.cpu.thread_num)
        except RuntimeError as e:
            raise RuntimeError(f"build_from_file failed! Error is {e}") from None
        self._model = model

    def get_inputs(self):
        """The model's inputs: Tensors bound to its input buffers (shapes follow resize)."""
        return [Tensor._bind(ref) for ref in self._built("get_inputs").inputs()]

    def get_outputs(self):
        """The model's outputs (name, dtype, shape, format, element_num, data_size)."""
        return [Tensor._bind(ref) for ref in self._built("get_outputs").outputs()]

    def resize(self, inputs, dims):
        """Gives inputs new shapes: dims[i] (list of int) for inputs[i] (a Tensor).

        Raises TypeError for wrong types, ValueError when len(inputs) != len(dims) and
        RuntimeError when the model cannot take the shapes.
        """
        model = self._built("resize")
        _check_list("inputs", inputs, (Tensor,), "Tensor")
        _check_list("dims", dims, (list, tuple), "list")
        for i, d in enumerate(dims):
            _check_list(f"dims[{i}]", d, (int,), "int")
        if len(inputs) != len(dims):
            raise ValueError(f"inputs' size does not match dims' size, but got inputs: "
                             f"{len(inputs)} and dims: {len(dims)}.")
        refs = model.inputs()
        shapes = [list(ref.shape) for ref in refs]
        for i, (tensor, d) in enumerate(zip(inputs, dims)):
            ref = tensor._ref
            index = ref.index if ref is not None and ref.model is model and ref.is_input else i
            if index >= len(shapes):
                raise ValueError(f"the model has {len(shapes)} inputs, but got {len(inputs)}.")
            shapes[index] = list(d)
        with self._lock:
            _resize(model, shapes, "resize")

    def predict(self, inputs, outputs=None):
        """Runs the model on inputs (a list of Tensor or numpy arrays, one per model input).

        Input data is copied into the model (Tensors from get_inputs() already are); inputs
        whose shapes differ from the model's resize it first. Returns a list of Tensor, one
        per graph output, each owning a copy of its data (so it survives the next predict).
        If outputs (a list of Tensor) is given, they receive the results too.
        """
        model = self._built("predict")
        _check_type("inputs", inputs, (list, tuple), "list or tuple")
        for i, x in enumerate(inputs):
            if not isinstance(x, (Tensor, np.ndarray)):
                raise TypeError(f"inputs element must be Tensor or numpy.ndarray, but got "
                                f"{type(x)} at index {i}.")
        refs = model.inputs()
        if len(inputs) != len(refs):
            raise RuntimeError(f"model input len:{len(refs)} not equal input len:{len(inputs)}!")
        if outputs is not None:
            _check_list("outputs", outputs, (Tensor,), "Tensor")
        # Read every source first: an input may be another input's buffer of this model.
        sources = [None if isinstance(x, Tensor) and x._is_input_of(model, i)
                   else _source(x, ref, i) for i, (x, ref) in enumerate(zip(inputs, refs))]
        shapes = [list(ref.shape) if src is None else list(src.shape)
                  for ref, src in zip(refs, sources)]
        with self._lock:  # one predict at a time: inputs, run and outputs belong together
            if shapes != [list(ref.shape) for ref in refs]:
                _resize(model, shapes, "predict")
            for ref, src in zip(refs, sources):
                if src is not None:
                    _write(ref, _native(src), "predict")
            try:
                model.predict()
            except RuntimeError as e:
                raise RuntimeError(f"predict failed! Error is {e}") from None
            results = [Tensor._copy_of(ref) for ref in model.outputs()]
        if outputs is not None:
            _fill_outputs(outputs, results)
        return results

    def __str__(self):
        if self._model is None:
            return "Model(not built)"
        return f"Model(producer={self._model.producer!r})"


def _source(x, ref, index):
    """The numpy data of predict input `index` (a Tensor or an array) for model tensor ref."""
    want = DataType(ref.dtype)
    if isinstance(x, np.ndarray):
        ok, got = _accepts(want, x.dtype), str(x.dtype)
    else:
        ok, got = x.dtype == want, x.dtype.name
    if not ok:
        raise RuntimeError(f"predict failed! Error is input {index} ({ref.name}): data type not "
                           f"equal! Input type: {got}, Tensor type: {want.name}")
    if isinstance(x, np.ndarray):
        return x
    return x.get_data_to_numpy() if x._ref is not None else x._array


def _resize(model, shapes, op):
    """Resizes the low-level model, reporting failures as RuntimeError naming op."""
    try:
        model.resize(shapes)
    except (RuntimeError, ValueError, BufferError) as e:
        raise RuntimeError(f"{op} failed! Error is resize to {shapes} failed: {e}") from None


def _fill_outputs(outputs, results):
    """Gives the caller's output Tensors the results (user data takes the result's array)."""
    if len(outputs) != len(results):
        raise RuntimeError(f"model output len:{len(results)} not equal output len:"
                           f"{len(outputs)}!")
    for out, res in zip(outputs, results):
        if out._ref is not None:
            out.set_data_from_numpy(res._array)
        else:
            out._init(None, res._array, res._dtype, res._name, out._device)
