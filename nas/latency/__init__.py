"""Latency of architectures on this machine, in torch eager or ONNX Runtime: measured, or
predicted from a lookup table of the space's blocks.

    model = make_latency_model("onnxruntime")      # or "torch", or "lut:PATH" (nas latency build)
    model.predict(arch)                            # ms at batch 1, the space's target input
    model.backend, model.source                    # "onnxruntime", "measured"
"""

from __future__ import annotations

from ..errors import UsageError
from .base import LatencyModel
from .measure import MeasuredLatency, arch_latency, measure_latency, threads
from .runtime import RUNTIMES, OnnxRuntime, Runtime, TorchEager, make_runtime
from .table import LatencyTable, TableConfig, build_table

__all__ = ["LatencyModel", "MeasuredLatency", "LatencyTable", "TableConfig", "Runtime",
           "TorchEager", "OnnxRuntime", "RUNTIMES", "arch_latency", "build_table",
           "make_latency_model", "make_runtime", "measure_latency", "threads", "LATENCY_SPEC"]

#: What ``--latency`` accepts (``measure`` is the older name of ``torch``).
LATENCY_SPEC = r"torch|onnxruntime|measure|lut:.+"


def make_latency_model(spec: str, repeats: int = 3, num_threads: int = 1) -> LatencyModel:
    """The backend a ``--latency`` value names: a runtime to measure in (``torch``,
    ``onnxruntime``; ``measure`` means ``torch``) or ``lut:PATH``, a table built by
    ``nas latency build`` (its runtime and threads are the table's)."""
    if spec in RUNTIMES or spec == "measure":
        return MeasuredLatency("torch" if spec == "measure" else spec, repeats=repeats,
                               threads=num_threads)
    if spec.startswith("lut:"):
        return LatencyTable.load(spec[len("lut:"):])
    raise UsageError(f"--latency must be torch, onnxruntime or lut:PATH, got {spec!r}")
