"""Latency measured on this machine: a whole network at batch 1 and its target input.

Measured on the static network (what is exported) in one of the runtimes of
:mod:`nas.latency.runtime`, with a fixed number of threads, warm-up runs, and the fastest
of a few timed runs (:meth:`nas.latency.runtime.Runtime.time` says why).
"""

from __future__ import annotations

import torch
from torch import nn

from ..arch import Architecture
from ..model import build_model
from .base import LatencyModel
from .runtime import Runtime, make_runtime, threads

__all__ = ["measure_latency", "arch_latency", "threads", "MeasuredLatency"]


def measure_latency(model: nn.Module, shape, warmup: int = 2, repeats: int = 5,
                    num_threads: int = 1, runtime: "str | Runtime" = "torch") -> float:
    """Milliseconds of ``model(torch.randn(*shape))`` in eval mode: the fastest of
    ``repeats`` runs after ``warmup`` runs, in ``runtime`` (a name or a :class:`Runtime`)."""
    if isinstance(runtime, str):
        runtime = make_runtime(runtime, num_threads)
    calls = runtime.compile([model.eval()], [torch.randn(*shape)])
    return runtime.time(calls, warmup, repeats)[0]


def arch_latency(arch: Architecture, warmup: int = 2, repeats: int = 5,
                 num_threads: int = 1, runtime: "str | Runtime" = "torch") -> float:
    """Milliseconds of the static network of ``arch`` at its target input, batch 1.

    The weights do not change the latency, so a freshly built network is timed.
    """
    model = build_model(arch)
    shape = (1, arch.input.channels, arch.input.resolution, arch.input.resolution)
    return measure_latency(model, shape, warmup, repeats, num_threads, runtime)


class MeasuredLatency(LatencyModel):
    """Times every architecture it is asked about, in ``runtime`` (``torch`` or
    ``onnxruntime``), ``threads`` threads, fastest of ``repeats`` after 2 warm-up runs.

    With ``onnxruntime`` each call exports the network to ONNX first (seconds of CPU
    time); a table (:class:`nas.latency.LatencyTable`) answers in microseconds.
    """

    def __init__(self, runtime: str = "torch", repeats: int = 3, threads: int = 1):
        self.runtime = make_runtime(runtime, threads)
        self.repeats, self.threads = repeats, threads
        self.backend = self.name = self.runtime.name

    def predict(self, arch: Architecture) -> float:
        return arch_latency(arch, repeats=self.repeats, num_threads=self.threads,
                            runtime=self.runtime)

    def describe(self) -> str:
        return (f"measured, {self.runtime.describe()}, batch 1, fastest of {self.repeats} "
                f"runs")
