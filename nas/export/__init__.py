"""Export: a found network as a standalone ``model.py`` (torch + standard library) with its
weights, TorchScript, ONNX and int8 ONNX.

    export_arch(arch, "out/")                            # model.py + arch.json, no weights
    export_trial("runs/RUN", "mynet", trial=None)        # the best trial, supernet weights
    export_trial("runs/RUN", "mynet", int8=True)         # + model.int8.onnx, calibrated
"""

from .int8 import Int8Inputs, int8_inputs, write_int8
from .source import ExportForm, model_source
from .trial import export_trial
from .write import (
    export_arch,
    export_network,
    export_untrained,
    fold_state_dict,
    fuse_state_dict,
    load_exported,
)

__all__ = ["ExportForm", "model_source", "export_trial", "export_arch", "export_network",
           "export_untrained", "fold_state_dict", "fuse_state_dict", "load_exported",
           "Int8Inputs", "int8_inputs", "write_int8"]
