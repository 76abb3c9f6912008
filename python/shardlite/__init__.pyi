"""Type stubs of the shardlite package (MindSpore-Lite-compatible API)."""

from enum import IntEnum
from typing import Sequence

import numpy as np
import numpy.typing as npt

__version__: str

def build_info() -> dict[str, bool | str]:
    """The backends compiled into the library, e.g. {'cpu': True, 'cuda': False, ...}."""

def distributed() -> dict[str, int | str]:
    """This process's place in its job: rank, size, job, source, backend."""

class ModelType(IntEnum):
    """The kind of model file: MINDIR (supported), ONNX and MINDIR_LITE (not yet)."""
    MINDIR = 0
    ONNX = 3
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

class FmkType(IntEnum):
    """The framework of a model to convert."""
    TF = 0
    CAFFE = 1
    ONNX = 2
    MINDIR = 3
    TFLITE = 4
    PYTORCH = 5

class ModelGroupFlag(IntEnum):
    """What the models of a ModelGroup share."""
    SHARE_WEIGHT = 1
    SHARE_WORKSPACE = 2
    SHARE_WEIGHT_WORKSPACE = 3

class _CPU:
    """context.cpu"""
    precision_mode: str
    thread_num: int
    inter_op_parallel_num: int
    thread_affinity_mode: int
    thread_affinity_core_list: list[int]
    @property
    def rank_id(self) -> int: ...
    @property
    def group_size(self) -> int: ...

class _GPU:
    """context.gpu"""
    precision_mode: str
    device_id: int
    provider: str
    @property
    def rank_id(self) -> int: ...
    @property
    def group_size(self) -> int: ...

class _Ascend:
    """context.ascend"""
    precision_mode: str
    device_id: int
    rank_id: int
    provider: str

class _Parallel:
    """context.parallel"""
    workers_num: int
    config_info: dict[str, dict[str, str]]
    config_path: str
    device_ids: list[int]

class Context:
    """Target devices and per-device options."""
    target: list[str]
    group_info_file: str
    cpu: _CPU
    gpu: _GPU
    ascend: _Ascend
    parallel: _Parallel
    def __init__(self) -> None: ...

class Tensor:
    """User data (a numpy array, wrapped without copying) or a model's input/output.
    Supports the buffer protocol: numpy.asarray(tensor) is zero-copy."""
    def __init__(self, tensor: npt.NDArray | Tensor | None = None,
                 shape: Sequence[int] | None = None, dtype: DataType | None = None,
                 device: str | None = None) -> None: ...
    name: str
    format: Format
    dtype: DataType  # settable on user data (zero-filled); a model's tensors: RuntimeError
    @property
    def shape(self) -> list[int]: ...
    @shape.setter
    def shape(self, value: Sequence[int]) -> None: ...
    @property
    def element_num(self) -> int: ...
    @property
    def data_size(self) -> int: ...
    @property
    def device(self) -> str: ...
    def set_data_from_numpy(self, numpy_obj: npt.NDArray) -> None: ...
    def get_data_to_numpy(self) -> np.ndarray: ...
    def __buffer__(self, flags: int) -> memoryview: ...

class Model:
    """A model: build_from_file once, then predict as often as needed."""
    model_path_: str
    def __init__(self) -> None: ...
    def build_from_file(self, model_path: str, model_type: ModelType,
                        context: Context | None = None, config_path: str = "",
                        config_dict: dict[str, dict[str, str]] | None = None,
                        dec_key: bytes | None = None, dec_mode: str = "AES-GCM",
                        dec_num_parallel: int = 0) -> None: ...
    def get_inputs(self) -> list[Tensor]: ...
    def get_outputs(self) -> list[Tensor]: ...
    def resize(self, inputs: Sequence[Tensor], dims: Sequence[Sequence[int]]) -> None: ...
    def predict(self, inputs: Sequence[Tensor | npt.NDArray],
                outputs: Sequence[Tensor] | None = None) -> list[Tensor]: ...
    def get_model_info(self, key: str) -> str: ...
    def update_weights(self, weights: list[list[Tensor]]) -> None: ...
    def save(self, path: str, external_data: bool = False) -> None: ...

class ModelParallelRunner:
    """A pool of workers serving concurrent predict calls."""
    def __init__(self) -> None: ...
    def build_from_file(self, model_path: str, context: Context | None = None) -> None: ...
    def get_inputs(self) -> list[Tensor]: ...
    def predict(self, inputs: Sequence[Tensor | npt.NDArray],
                outputs: Sequence[Tensor] | None = None) -> list[Tensor]: ...

class ModelGroup:
    """Models sharing weights (always, in shardlite) and workspace (not shared)."""
    def __init__(self, flags: ModelGroupFlag = ModelGroupFlag.SHARE_WORKSPACE) -> None: ...
    @property
    def flags(self) -> ModelGroupFlag: ...
    def add_model(self, models: Sequence[str] | Sequence[Model]) -> None: ...
    def cal_max_size_of_workspace(self, model_type: ModelType, context: Context) -> int: ...

class Converter:
    """No conversion needed: convert() raises RuntimeError."""
    def convert(self, fmk_type: FmkType, model_file: str, output_file: str,
                weight_file: str = "", config_file: str = "") -> None: ...

class WeightSplit:
    """How split treated one weight: axis (None: replicated), role, bytes, rank_bytes."""
    name: str
    axis: int | None
    role: str
    bytes: int
    rank_bytes: list[int]
    @property
    def split(self) -> bool: ...

class SplitReport:
    """What split did: ranks, files, weights, all_reduces, all_gathers per inference."""
    ranks: int
    files: list[str]
    weights: list[WeightSplit]
    all_reduces: int
    all_gathers: int
    @property
    def total_bytes(self) -> int: ...
    @property
    def sharded_bytes(self) -> int: ...
    @property
    def sharded_share(self) -> float: ...
    def rank_bytes(self, rank: int) -> int: ...

def split(model_path: str, n: int, out_dir: str, strategy: str | dict | None = None,
          progress: bool | None = None) -> SplitReport:
    """Cuts a full MindIR model into n tensor-parallel rank models out_dir/<stem><r>.mindir."""
