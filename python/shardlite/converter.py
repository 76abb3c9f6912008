"""FmkType and Converter, as in MindSpore Lite (shardlite runs MindIR files directly)."""

from .tensor import _IntEnum

__all__ = ["Converter", "FmkType"]


class FmkType(_IntEnum):
    """The framework a model to convert comes from."""

    TF = 0
    CAFFE = 1
    ONNX = 2
    MINDIR = 3
    TFLITE = 4
    PYTORCH = 5


class Converter:
    """MindSpore Lite's model converter. shardlite needs no conversion (it runs MindIR files
    as they are), so ``convert`` raises RuntimeError saying so."""

    def convert(self, fmk_type, model_file, output_file, weight_file="", config_file=""):
        """Raises RuntimeError: shardlite has no converter; pass the .mindir file to
        Model.build_from_file directly."""
        raise RuntimeError("convert failed! Error is shardlite has no model converter: build "
                           "MindIR files directly with Model.build_from_file.")
