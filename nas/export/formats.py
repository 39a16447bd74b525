"""The mobile formats ``nas export --format`` writes: their names, modules and extras.

Torch-free, so ``nas export``'s flags (:class:`nas.export.ExportConfig`) are declared from
this table before torch is imported; :mod:`nas.export.mobile` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

__all__ = ["FORMATS", "Format", "DEFAULT_TIMEOUT"]


@dataclass(frozen=True)
class Format:
    """One mobile format.

    Attributes:
        name: as ``--format`` spells it (its files: ``ExportDir.format_files(name)``).
        modules: the Python modules it needs (converter and runtime).
        extra: the ``nas`` extra that installs them.
        runtime: the runtime that runs the converted file here, or "" (converted only).
    """

    name: str
    modules: Tuple[str, ...]
    extra: str
    runtime: str


#: The formats, by ``--format`` name.
FORMATS: Dict[str, Format] = {f.name: f for f in (
    Format("ncnn", ("pnnx", "ncnn"), "ncnn", "ncnn"),
    # MNN converts from ONNX, which torch writes with onnx and onnxscript
    Format("mnn", ("MNN", "onnx", "onnxscript"), "mnn", "MNN"),
    Format("tflite", ("litert_torch", "ai_edge_litert"), "tflite", "LiteRT"),
    Format("coreml", ("coremltools",), "coreml", ""),
)}

#: Seconds a converter may run (pnnx and litert-torch take ~20-30 s for MixNet-S here).
DEFAULT_TIMEOUT = 900.0
