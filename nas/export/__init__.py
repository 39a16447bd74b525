"""Export: a found network as a standalone ``model.py`` (torch + standard library) with its
weights, TorchScript and ONNX.

    export_arch(arch, "out/")                            # model.py + arch.json, no weights
    export_trial("runs/RUN", "mynet", trial=None)        # the best trial, supernet weights
"""

from ..lazy import lazy_names

# Imported on first use: ``nas export``'s flags (:mod:`.config`) are read before torch is.
__getattr__, __dir__ = lazy_names(__name__, {
    "ExportConfig": "config", "ExportForm": "source", "model_source": "source",
    "export_trial": "trial", "export_arch": "write", "export_network": "write",
    "fold_state_dict": "write", "fuse_state_dict": "write", "load_exported": "write"})

__all__ = ["ExportConfig", "ExportForm", "model_source", "export_trial", "export_arch",
           "export_network", "fold_state_dict", "fuse_state_dict", "load_exported"]
