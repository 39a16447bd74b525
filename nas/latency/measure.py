"""Latency measured on this machine: a whole network at batch 1 and its target input.

Measured on the static network (what is exported) in one of the runtimes of
:mod:`nas.latency.runtime`, with a fixed number of threads, warm-up runs, and the fastest
of a few timed runs (:meth:`nas.latency.runtime.Runtime.time` says why).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..arch import Architecture
from ..model import build_model
from .base import LatencyModel
from .runtime import Runtime, make_runtime, threads

__all__ = ["measure_latency", "arch_latency", "threads", "MeasuredLatency"]


def measure_latency(model: nn.Module, shape, warmup: int = 2, repeats: int = 5,
                    num_threads: int = 1, runtime: "str | Runtime" = "torch",
                    calibration: Optional[torch.Tensor] = None) -> float:
    """Milliseconds of ``model(torch.randn(*shape))`` in eval mode: the fastest of
    ``repeats`` runs after ``warmup`` runs, in ``runtime`` (a name or a :class:`Runtime`).
    ``calibration``: ``[n, *shape[1:]]`` inputs an int8 runtime calibrates on (default:
    seeded noise); the others ignore it."""
    if isinstance(runtime, str):
        runtime = make_runtime(runtime, num_threads)
    calls = runtime.compile([model.eval()], [torch.randn(*shape)], [calibration])
    return runtime.time(calls, warmup, repeats)[0]


def arch_latency(arch: Architecture, warmup: int = 2, repeats: int = 5,
                 num_threads: int = 1, runtime: "str | Runtime" = "torch",
                 calibration: Optional[torch.Tensor] = None) -> float:
    """Milliseconds of the static network of ``arch`` at its target input, batch 1.

    The weights do not change the latency, so a freshly built network is timed (in int8,
    calibrated on ``calibration``: ``[n, C, R, R]`` at the target input).
    """
    model = build_model(arch)
    shape = (1, arch.input.channels, arch.input.resolution, arch.input.resolution)
    return measure_latency(model, shape, warmup, repeats, num_threads, runtime, calibration)


class MeasuredLatency(LatencyModel):
    """Times every architecture it is asked about, in ``runtime`` (``torch``,
    ``onnxruntime`` or ``onnxruntime-int8``), ``threads`` threads, fastest of ``repeats``
    after 2 warm-up runs.

    With ``onnxruntime`` each call exports the network to ONNX first (seconds of CPU
    time), and ``onnxruntime-int8`` also calibrates and quantises it (seconds more:
    :meth:`used` says how many); a table (:class:`nas.latency.LatencyTable`) answers in
    microseconds.

    Args:
        runtime: the runtime's name.
        repeats: timed runs (the fastest is kept).
        threads: intra-op threads.
        calibration: ``[n, C, R, R]`` inputs at the architectures' target input that an
            int8 runtime calibrates on (the search's training images); None: seeded noise.
    """

    def __init__(self, runtime: str = "torch", repeats: int = 3, threads: int = 1,
                 calibration: Optional[torch.Tensor] = None):
        self.runtime = make_runtime(runtime, threads)
        self.repeats, self.threads = repeats, threads
        self.calibration = calibration
        self.backend = self.name = self.runtime.name

    def predict(self, arch: Architecture) -> float:
        return arch_latency(arch, repeats=self.repeats, num_threads=self.threads,
                            runtime=self.runtime, calibration=self.calibration)

    def used(self) -> Dict[str, float]:
        if self.runtime.name != "onnxruntime-int8":
            return {}
        return {"latency_quantise_s": round(self.runtime.prepare_s, 3)}

    def describe(self) -> str:
        calibrated = ""
        if self.runtime.name == "onnxruntime-int8":
            calibrated = (f", calibrated on {len(self.calibration)} training images"
                          if self.calibration is not None else ", calibrated on noise")
        return (f"measured, {self.runtime.describe()}{calibrated}, batch 1, fastest of "
                f"{self.repeats} runs")
