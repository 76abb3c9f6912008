"""Type stubs of the shardlite package (MindSpore-Lite-compatible API)."""

from enum import IntEnum
from typing import Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class ModelType(IntEnum):
    """The kind of model file: MINDIR (supported) or MINDIR_LITE (.ms, not supported)."""

    MINDIR = 0
    MINDIR_LITE = 4

class DataType(IntEnum):
    """Tensor element types, numbered as MindSpore Lite's DataType (BFLOAT16: extension)."""

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

class Format(IntEnum):
    """Tensor data layouts, numbered as MindSpore Lite's Format."""

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

class _CPUInfo:
    """CPU options of a Context."""

    precision_mode: str
    thread_num: int
    inter_op_parallel_num: int
    thread_affinity_mode: int
    thread_affinity_core_list: list[int]

class _GPUInfo:
    """GPU options of a Context (placeholder: shardlite computes on the CPU)."""

    device_id: int
    precision_mode: str
    provider: str
    @property
    def rank_id(self) -> int: ...
    @property
    def group_size(self) -> int: ...

class _AscendInfo:
    """Ascend options of a Context (placeholder)."""

    device_id: int
    rank_id: int
    provider: str
    precision_mode: str

class _ParallelInfo:
    """ModelParallelRunner options of a Context (placeholder)."""

    workers_num: int
    config_path: str
    config_info: dict[str, dict[str, str]]
    device_ids: list[int]

class Context:
    """Where and how a Model runs: target devices plus per-device options."""

    target: list[str]
    group_info_file: str
    def __init__(self) -> None: ...
    @property
    def cpu(self) -> _CPUInfo: ...
    @property
    def gpu(self) -> _GPUInfo: ...
    @property
    def ascend(self) -> _AscendInfo: ...
    @property
    def parallel(self) -> _ParallelInfo: ...

class Tensor:
    """A tensor: user data (a wrapped numpy array) or a model's input/output."""

    name: str
    format: Format
    def __init__(
        self,
        tensor: np.ndarray | None = None,
        shape: Sequence[int] | None = None,
        dtype: DataType | None = None,
        device: str | None = None,
    ) -> None: ...
    @property
    def dtype(self) -> DataType: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def element_num(self) -> int: ...
    @property
    def data_size(self) -> int: ...
    @property
    def device(self) -> str: ...
    def set_data_from_numpy(self, numpy_obj: np.ndarray) -> None: ...
    def get_data_to_numpy(self) -> npt.NDArray: ...

class Model:
    """A model: build_from_file once, then predict as often as needed."""

    def __init__(self) -> None: ...
    def build_from_file(
        self,
        model_path: str,
        model_type: ModelType,
        context: Context | None = None,
        config_path: str = "",
    ) -> None: ...
    def get_inputs(self) -> list[Tensor]: ...
    def get_outputs(self) -> list[Tensor]: ...
    def resize(self, inputs: list[Tensor], dims: list[list[int]]) -> None: ...
    def predict(
        self,
        inputs: Sequence[Tensor | np.ndarray],
        outputs: list[Tensor] | None = None,
    ) -> list[Tensor]: ...

def build_info() -> dict[str, bool | str]:
    """The backends compiled into the library, e.g. {'cpu': True, 'blas': 'openblas', ...}."""
