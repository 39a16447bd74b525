"""Latency measured on this machine: batch 1 at the space's target input, in torch eager.

Measured on the static network (what is exported), with a fixed number of threads,
warm-up runs, and the median of repeats, because single timings on a shared machine
are noisy.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..arch import Architecture
from ..model import build_model
from .base import LatencyModel

__all__ = ["measure_latency", "arch_latency", "threads", "MeasuredLatency"]


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def measure_latency(model: nn.Module, shape, warmup: int = 2, repeats: int = 5,
                    num_threads: int = 1) -> float:
    """Median milliseconds of ``model(torch.randn(*shape))`` in eval mode."""
    model = model.eval()
    x = torch.randn(*shape)
    with threads(num_threads):
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def arch_latency(arch: Architecture, warmup: int = 2, repeats: int = 5,
                 num_threads: int = 1) -> float:
    """Median ms of the static network of ``arch`` at its target input, batch 1.

    The weights do not change the latency, so a freshly built network is timed.
    """
    model = build_model(arch)
    shape = (1, arch.input.channels, arch.input.resolution, arch.input.resolution)
    return measure_latency(model, shape, warmup, repeats, num_threads)


class MeasuredLatency(LatencyModel):
    """Times every architecture it is asked about (torch eager, ``threads`` threads,
    median of ``repeats`` after 2 warm-up runs)."""

    def __init__(self, repeats: int = 3, threads: int = 1):
        self.repeats, self.threads = repeats, threads
        self.name = "torch-eager"

    def predict(self, arch: Architecture) -> float:
        return arch_latency(arch, repeats=self.repeats, num_threads=self.threads)

    def describe(self) -> str:
        return (f"measured, torch eager, batch 1, {self.threads} thread(s), median of "
                f"{self.repeats}")
