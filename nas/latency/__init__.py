"""Latency of architectures on this machine, in torch eager or ONNX Runtime: measured, or
predicted from a lookup table of the space's blocks.

    model = make_latency_model("onnxruntime")      # or "torch", or "lut:PATH" (nas latency build)
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
    "OnnxRuntime": "runtime", "Runtime": "runtime", "TorchEager": "runtime",
    "make_runtime": "runtime", "LatencyTable": "table", "TableConfig": "table",
    "build_table": "table"})

__all__ = ["LatencyModel", "MeasuredLatency", "LatencyTable", "TableConfig", "Runtime",
           "TorchEager", "OnnxRuntime", "RUNTIMES", "arch_latency", "build_table",
           "make_latency_model", "make_runtime", "measure_latency", "threads", "LATENCY_SPEC"]

#: What ``--latency`` accepts (``measure`` is the older name of ``torch``).
LATENCY_SPEC = r"torch|onnxruntime|measure|lut:.+"


def make_latency_model(spec: str, repeats: int = 3, num_threads: int = 1) -> LatencyModel:
    """The backend a ``--latency`` value names: a runtime to measure in (``torch``,
    ``onnxruntime``; ``measure`` means ``torch``) or ``lut:PATH``, a table built by
    ``nas latency build`` (its runtime and threads are the table's)."""
    from .measure import MeasuredLatency
    from .runtime import RUNTIMES
    from .table import LatencyTable

    if spec in RUNTIMES or spec == "measure":
        return MeasuredLatency("torch" if spec == "measure" else spec, repeats=repeats,
                               threads=num_threads)
    if spec.startswith("lut:"):
        return LatencyTable.load(spec[len("lut:"):])
    raise UsageError(f"--latency must be torch, onnxruntime or lut:PATH, got {spec!r}")
