"""Tensor, DataType and Format, as in MindSpore Lite."""

from enum import IntEnum

import numpy as np

from . import _shardlite
from ._check import check_list, check_type

__all__ = ["DataType", "Format", "Tensor"]


class _IntEnum(IntEnum):
    """An IntEnum that prints as 'DataType.FLOAT32' (as the reference's enums do)."""

    def __str__(self):
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec):
        return format(str(self), spec)


class DataType(_IntEnum):
    """Tensor element types, numbered as MindSpore Lite's DataType.

    BFLOAT16 (46) is an extension; its data appears in numpy as the raw uint16 bits
    (``ml_dtypes.bfloat16`` arrays are accepted too).
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
_UINT16 = np.dtype(np.uint16)


def _is_bfloat16(np_dtype):
    return np_dtype.name == "bfloat16" and np_dtype.itemsize == 2


def _datatype_of(np_dtype):
    """The DataType of a numpy dtype (any byte order), or None if there is none."""
    found = _DATATYPE_OF.get(np_dtype)  # native dtypes, without building a name or a dtype
    if found is not None:
        return found
    if _is_bfloat16(np_dtype):
        return DataType.BFLOAT16
    return _DATATYPE_OF.get(np_dtype.newbyteorder("="))


def _accepts(dtype, np_dtype):
    """Whether numpy data of np_dtype may fill a tensor of DataType dtype."""
    if dtype == DataType.BFLOAT16 and np_dtype.newbyteorder("=") == _UINT16:
        return True
    return _datatype_of(np_dtype) == dtype


def _storable(arr):
    """arr in a form the C layer reads: native byte order, bfloat16 as its uint16 bits.

    C- or Fortran-ordered and strided arrays are kept as they are (no copy).
    """
    dtype = arr.dtype
    if dtype in _DATATYPE_OF:  # native: the common case
        return arr
    if _is_bfloat16(dtype):
        return arr.view(_UINT16)
    if not dtype.isnative:
        return arr.astype(dtype.newbyteorder("="))
    return arr


class Tensor(_shardlite.TensorBase):
    """A tensor: user data (a numpy array, wrapped without copying) or a model's input/output.

    ``Tensor(tensor=None, shape=None, dtype=None, device=None)``:

    - from a numpy array, it wraps the array without copying (``shape`` and ``dtype``, when
      given, must match it: TypeError otherwise); from another Tensor, it shares its data;
    - from ``shape`` and/or ``dtype`` only, a zero-filled tensor (default float32, shape ());
    - with nothing, a float32 scalar.

    ``numpy.asarray(tensor)`` is a zero-copy view of the data (the buffer protocol). Tensors
    from ``Model.get_inputs()`` are bound to the model: ``set_data_from_numpy`` writes into the
    model's input buffer. Tensors returned by ``predict`` own their results.
    """

    __slots__ = ()

    def __init__(self, tensor=None, shape=None, dtype=None, device=None):
        if tensor is not None and not isinstance(tensor, (np.ndarray, Tensor)):
            raise TypeError(f"tensor must be numpy.ndarray or Tensor, but got {type(tensor)}.")
        if shape is not None:
            shape = list(check_list("shape", shape, int, containers=(list, tuple)))
        if dtype is not None:
            check_type("dtype", dtype, DataType)
        if device is not None:
            check_type("device", device, str)
        name = ""
        if isinstance(tensor, Tensor):
            data, found, name = tensor._data, tensor._dtype, tensor._name
        elif tensor is not None:
            found = _datatype_of(tensor.dtype)
            if found is None:
                raise TypeError(f"tensor's numpy dtype {tensor.dtype} is not supported; use "
                                f"one of {sorted(str(d) for d in set(_DATATYPE_OF))}.")
            data = _storable(tensor)
        if tensor is not None:
            if shape is not None and shape != list(data.shape):
                raise TypeError(f"shape {shape} does not match the data's shape "
                                f"{list(data.shape)}.")
            if dtype is not None and dtype != found and not (
                    dtype == DataType.BFLOAT16 and found == DataType.UINT16):
                raise TypeError(f"dtype {dtype.name} does not match the data's dtype "
                                f"{found.name}.")
            dtype = found if dtype is None else dtype
        else:
            dtype = DataType.FLOAT32 if dtype is None else dtype
            if dtype not in _NUMPY_OF:
                raise ValueError(f"dtype {dtype.name} cannot hold data.")
            shape = [] if shape is None else shape
            if any(d < 0 for d in shape):
                raise ValueError(f"shape {shape} has a negative dimension.")
            data = np.zeros(shape, _NUMPY_OF[dtype])
        self._data = data
        self._dtype = dtype
        self._name = name
        self._format = Format.NCHW
        self._device = "cpu" if device is None else device

    @classmethod
    def _bind(cls, ref):
        """A Tensor bound to a model's input or output (a _shardlite.TensorRef)."""
        t = cls.__new__(cls)
        t._data = ref
        t._dtype = DataType(ref.dtype)
        t._name = ref.name
        t._format = Format.NCHW
        t._device = "cpu"
        return t

    @property
    def name(self):
        """The tensor's name (a model tensor's graph name; '' for user data unless set)."""
        return self._name

    @name.setter
    def name(self, value):
        self._name = check_type("name", value, str)

    @property
    def dtype(self):
        """The element type (DataType). Setting it gives a Tensor of user data zero-filled
        data of the new type (as the reference's example sets dtype and shape, then the data);
        a model's tensors keep the model's type (RuntimeError)."""
        return self._dtype

    @dtype.setter
    def dtype(self, value):
        check_type("dtype", value, DataType)
        self._unbound("dtype")
        if value not in _NUMPY_OF:
            raise ValueError(f"dtype {value.name} cannot hold data.")
        if value != self._dtype:
            self._data = np.zeros(self.shape, _NUMPY_OF[value])
            self._dtype = value

    @property
    def shape(self):
        """The dimensions, a list of int (-1 marks an unresolved dynamic dimension). Setting
        them on a Tensor of user data keeps its data when the element count stays (reshaped),
        else gives zero-filled data; a model's tensors follow Model.resize (RuntimeError)."""
        return list(self._data.shape)

    @shape.setter
    def shape(self, value):
        value = list(check_list("shape", value, int, containers=(list, tuple)))
        self._unbound("shape")
        if any(d < 0 for d in value):
            raise ValueError(f"shape {value} has a negative dimension.")
        if value != self.shape:
            data = np.asarray(self._data)  # (a predict result's Buffer: a view of it)
            self._data = (data.reshape(value) if int(np.prod(value)) == data.size
                          else np.zeros(value, _NUMPY_OF[self._dtype]))

    def _unbound(self, what):
        """RuntimeError when this Tensor is a model's input or output."""
        if isinstance(self._data, _shardlite.TensorRef):
            raise RuntimeError(f"the {what} of the model's tensor '{self._name}' is the model's: "
                               "resize the model (Model.resize) or give predict a Tensor of "
                               "your own")

    @property
    def format(self):
        """The data layout (Format); informational, NCHW unless set."""
        return self._format

    @format.setter
    def format(self, value):
        self._format = check_type("format", value, Format)

    @property
    def element_num(self):
        """The number of elements."""
        return int(self._data.size)

    @property
    def data_size(self):
        """The size of the data in bytes."""
        return int(self._data.nbytes)

    @property
    def device(self):
        """Where the data lives: 'cpu' unless given."""
        return self._device

    def set_data_from_numpy(self, numpy_obj):
        """Sets the data from a numpy array of the same dtype and byte size.

        A model-bound Tensor (from get_inputs) receives a copy; any other Tensor wraps the
        array without copying (its shape stays the Tensor's). C- and Fortran-ordered arrays
        are both accepted. Raises TypeError for a non-array, RuntimeError for a dtype or size
        mismatch.
        """
        if not isinstance(numpy_obj, np.ndarray):
            raise TypeError(f"numpy_obj must be numpy.ndarray, but got {type(numpy_obj)}.")
        if not _accepts(self._dtype, numpy_obj.dtype):
            raise RuntimeError(f"data type not equal! Numpy type: {numpy_obj.dtype}, "
                               f"Tensor type: {self._dtype.name}")
        size = self.data_size
        if numpy_obj.nbytes != size:
            raise RuntimeError(f"data size not equal! Numpy size: {numpy_obj.nbytes}, "
                               f"Tensor size: {size}")
        data = _storable(numpy_obj)
        target = self._data
        if isinstance(target, _shardlite.TensorRef):
            try:
                target.set_data(data)
            except (ValueError, BufferError) as e:
                raise RuntimeError(f"set_data_from_numpy failed! Error is {e}") from None
        else:
            shape = tuple(target.shape)
            self._data = data if data.shape == shape else data.reshape(shape)

    def get_data_to_numpy(self):
        """The data as a numpy array (bfloat16 data: its uint16 bits).

        As in the reference, the array shares memory with the Tensor's data for user data and
        predict results. For a Tensor bound to a model (get_inputs/get_outputs) it is a copy,
        since the model's buffers move when it is resized and change at each predict.
        """
        data = self._data
        if isinstance(data, _shardlite.TensorRef):
            try:
                with memoryview(data) as view:
                    return np.array(view, copy=True)
            except BufferError as e:
                raise RuntimeError(f"get_data_to_numpy failed! Error is {e}") from None
        if isinstance(data, np.ndarray):
            return data
        return np.asarray(data)

    def __str__(self):
        return (f"name: {self.name},\ndtype: {self.dtype},\nshape: {self.shape},\n"
                f"format: {self.format},\nelement_num: {self.element_num},\n"
                f"data_size: {self.data_size},\ndevice: {self.device}.")

    def __repr__(self):
        return (f"Tensor(name={self.name!r}, dtype={self.dtype.name}, shape={self.shape}, "
                f"format={self.format.name})")


_shardlite._setup(Tensor, np.ndarray, {int(d): d for d in DataType}, Format.NCHW, "cpu")
