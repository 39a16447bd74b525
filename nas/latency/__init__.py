"""Latency of architectures on this machine: measured, or predicted from a lookup table.

    model = make_latency_model("measure")          # or "lut:PATH" (``nas latency build``)
    model.predict(arch)                            # ms at batch 1, the space's target input
"""

from __future__ import annotations

from ..errors import UsageError
from .base import LatencyModel
from .measure import MeasuredLatency, arch_latency, measure_latency, threads
from .table import LatencyTable, TableConfig, build_table

__all__ = ["LatencyModel", "MeasuredLatency", "LatencyTable", "TableConfig", "arch_latency",
           "build_table",
           "make_latency_model", "measure_latency", "threads", "LATENCY_SPEC"]

#: What ``--latency`` accepts.
LATENCY_SPEC = r"measure|lut:.+"


def make_latency_model(spec: str, repeats: int = 3, num_threads: int = 1) -> LatencyModel:
    """The backend a ``--latency`` value names: ``measure`` or ``lut:PATH``."""
    if spec == "measure":
        return MeasuredLatency(repeats=repeats, threads=num_threads)
    if spec.startswith("lut:"):
        return LatencyTable.load(spec[len("lut:"):])
    raise UsageError(f"--latency must be measure or lut:PATH, got {spec!r}")
