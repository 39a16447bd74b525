"""Export: a found network as a standalone ``model.py`` (torch + standard library) with its
weights, TorchScript, ONNX and int8 ONNX; deploy forms beside it: NCNN, MNN, TFLite, Core ML,
and the backbone as a YOLO (ultralytics) plugin.

    export_arch(arch, "out/")                            # model.py + arch.json, no weights
    export_trial("runs/RUN", "mynet", trial=None)        # the best trial, supernet weights
    export_trial("runs/RUN", "mynet", int8=True)         # + model.int8.onnx, calibrated
    export_trial("runs/RUN", "mynet", formats=["ncnn"], yolo=True)  # ExportConfig's names
"""

from ..lazy import lazy_names

# Imported on first use: ``nas export``'s flags (:mod:`.config`) are read before torch is.
__getattr__, __dir__ = lazy_names(__name__, {
    "ExportConfig": "config", "ExportForm": "source", "model_source": "source",
    "export_trial": "trial", "export_architecture": "trial", "TrialExport": "trial",
    "ArchExport": "trial", "export_arch": "write", "export_network": "write",
    "export_untrained": "write", "fold_state_dict": "write", "fuse_state_dict": "write",
    "load_exported": "write", "Deploy": "deploy", "check_deploy": "deploy",
    "write_deploy": "deploy", "FORMATS": "formats", "Converted": "mobile",
    "convert_export": "mobile", "Int8Inputs": "int8", "int8_inputs": "int8",
    "write_int8": "int8", "Int8Report": "int8", "deploy_lines": "deploy"})

__all__ = ["ExportConfig", "ExportForm", "model_source", "export_trial", "export_architecture",
           "TrialExport", "ArchExport", "Int8Report", "deploy_lines", "export_arch",
           "export_network", "export_untrained", "fold_state_dict", "fuse_state_dict",
           "load_exported", "Deploy", "check_deploy", "write_deploy", "FORMATS", "Converted",
           "convert_export", "Int8Inputs", "int8_inputs", "write_int8"]
