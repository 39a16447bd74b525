"""Latency of architectures on this machine, in torch eager or ONNX Runtime (float or
int8): measured, or predicted from a lookup table of the space's blocks.

    model = make_latency_model("onnxruntime")      # or "torch", "onnxruntime-int8", or
                                                   # "lut:PATH" (nas latency build)
    model.predict(arch)                            # ms at batch 1, the space's target input
    model.backend, model.source                    # "onnxruntime", "measured"
"""

from __future__ import annotations

from ..errors import UsageError
from ..lazy import lazy_names
from .base import LatencyModel

# Every backend needs torch: imported on first use, so that settings which only check a
# ``--latency`` value (``LATENCY_SPEC``) do not import it.
__getattr__, __dir__ = lazy_names(__name__, {
    "MeasuredLatency": "measure", "arch_latency": "measure",
    "measure_latency": "measure", "threads": "runtime", "RUNTIMES": "runtime",
    "OnnxRuntime": "runtime", "OnnxRuntimeInt8": "runtime", "Runtime": "runtime",
    "TorchEager": "runtime", "make_runtime": "runtime", "LatencyTable": "table",
    "TableConfig": "table", "build_table": "table", "build_table_file": "table",
    "OnnxModel": "quantize", "QuantSettings": "quantize", "quant_settings": "quantize",
    "quantize_module": "quantize", "quantize_onnx": "quantize"})

__all__ = ["LatencyModel", "MeasuredLatency", "LatencyTable", "TableConfig", "Runtime",
           "TorchEager", "OnnxRuntime", "OnnxRuntimeInt8", "RUNTIMES", "arch_latency",
           "build_table", "build_table_file", "make_latency_model", "make_runtime",
           "measure_latency", "threads",
           "LATENCY_SPEC", "INT8", "OnnxModel", "QuantSettings", "quant_settings",
           "quantize_module", "quantize_onnx"]

#: The int8 runtime's name, as ``--latency`` spells it.
INT8 = "onnxruntime-int8"
#: What ``--latency`` accepts (``measure`` is the older name of ``torch``).
LATENCY_SPEC = r"torch|onnxruntime|onnxruntime-int8|measure|lut:.+"


def make_latency_model(spec: str, repeats: int = 3, num_threads: int = 1,
                       calibration=None) -> LatencyModel:
    """The backend a ``--latency`` value names: a runtime to measure in (``torch``,
    ``onnxruntime``, ``onnxruntime-int8``; ``measure`` means ``torch``) or ``lut:PATH``, a
    table built by ``nas latency build`` (its runtime and threads are the table's).

    ``calibration``: ``[n, C, R, R]`` float inputs at the target input (training images,
    :func:`nas.train.calibration_inputs`) that ``onnxruntime-int8`` calibrates each
    measured network on; ignored by the others.
    """
    from .measure import MeasuredLatency
    from .runtime import RUNTIMES
    from .table import LatencyTable

    if spec in RUNTIMES or spec == "measure":
        return MeasuredLatency("torch" if spec == "measure" else spec, repeats=repeats,
                               threads=num_threads, calibration=calibration)
    if spec.startswith("lut:"):
        return LatencyTable.load(spec[len("lut:"):])
    raise UsageError(f"--latency must be torch, onnxruntime, onnxruntime-int8 or lut:PATH, "
                     f"got {spec!r}")
