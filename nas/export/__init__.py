"""Export: a found network as a standalone ``model.py`` (torch + standard library) with its
weights, TorchScript and ONNX; deploy forms beside it: NCNN, MNN, TFLite, Core ML, and the
backbone as a YOLO (ultralytics) plugin.

    export_arch(arch, "out/")                            # model.py + arch.json, no weights
    export_trial("runs/RUN", "mynet", trial=None)        # the best trial, supernet weights
    export_trial("runs/RUN", "mynet", deploy=Deploy(formats=("ncnn",), yolo=True))
"""

from .deploy import Deploy, check_deploy, write_deploy
from .mobile import FORMATS, Converted, convert_export
from .source import ExportForm, model_source
from .trial import export_trial
from .write import export_arch, export_network, fold_state_dict, fuse_state_dict, load_exported

__all__ = ["ExportForm", "model_source", "export_trial", "export_arch", "export_network",
           "fold_state_dict", "fuse_state_dict", "load_exported", "Deploy", "check_deploy",
           "write_deploy", "FORMATS", "Converted", "convert_export"]
