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

Where shardlite deliberately differs from the reference is listed in docs/python_api.md.
"""

from . import _shardlite
from ._shardlite import build_info, distributed
from .context import Context
from .converter import Converter, FmkType
from .model import Model, ModelType
from .parallel import ModelGroup, ModelGroupFlag, ModelParallelRunner
from .split import SplitReport, split
from .tensor import _NUMPY_OF, DataType, Format, Tensor

__version__ = _shardlite.version()

__all__ = [
    "Context",
    "Converter",
    "DataType",
    "FmkType",
    "Format",
    "Model",
    "ModelGroup",
    "ModelGroupFlag",
    "ModelParallelRunner",
    "ModelType",
    "SplitReport",
    "Tensor",
    "build_info",
    "distributed",
    "split",
]

