"""Where a latency is measured: a runtime runs modules at batch 1 and times them.

Three runtimes, those a deployer of a ``nas export`` is likely to run it in:

* ``torch``: PyTorch eager, the static network as ``nas export`` writes it (split form);
* ``onnxruntime``: ONNX Runtime's CPU execution provider with its default graph
  optimisations, on the network exported in memory by ``torch.onnx.export(dynamo=True)``,
  the exporter behind ``nas export``'s ``model.onnx``. Each measurement exports afresh;
  nothing measured is reused.
* ``onnxruntime-int8``: the same, on the network statically quantised to int8 as
  ``nas export --int8`` writes ``model.int8.onnx`` (:mod:`nas.latency.quantize`: BatchNorm
  folded, QDQ, per-channel weights, calibrated on the inputs the caller gives, else on
  seeded normal noise). Quantising costs seconds per network on top of the export.

The timing protocol is the same for all (:meth:`Runtime.time`): every call runs
``warmup`` times untimed, then ``repeats`` timed rounds, and the figure is the fastest
round. With one thread the clock is the calling thread's CPU time (both runtimes compute
a one-thread call on the caller's thread): on a shared machine most of the spread between
wall-clock runs is time the OS gave the core to other processes, which CPU time does not
count, and the fastest of a few runs is the one least slowed by what remains (caches and
memory bandwidth shared with others). With more threads the work runs on a thread pool,
so the clock is wall time. ``experiments/bench/latency.py`` reports how repeatable this
is on the machine it runs on.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Sequence

import torch
from torch import nn

from ..errors import UsageError
from ..model import fold_batchnorm, onnx_program
from .quantize import OnnxModel, QuantSettings, quant_settings, quantize_onnx, require_onnxruntime
from .runner import time_calls

__all__ = ["Runtime", "TorchEager", "OnnxRuntime", "OnnxRuntimeInt8", "RUNTIMES",
           "make_runtime", "threads", "onnx_unit_models"]

#: What ``--latency`` (measured) and ``nas latency build --runtime`` accept.
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")

#: Optional per-module calibration inputs (``[n, *input shape[1:]]``) of :meth:`Runtime.compile`.
Calibration = Optional[Sequence[Optional[torch.Tensor]]]

#: Units exported together by one ``torch.onnx.export`` call: the exporter's fixed cost
#: per call is seconds, so a table's thousands of blocks are exported in bundles.
ONNX_BUNDLE = 48


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Runtime(ABC):
    """Runs modules in one runtime with a fixed number of threads, and times them.

    Args:
        threads: intra-op threads (torch threads; ONNX Runtime's intra-op pool).
    """

    #: The runtime's name as ``--latency`` spells it, stored next to every latency.
    name: str = ""

    def __init__(self, threads: int = 1):
        if threads < 1:
            raise UsageError(f"latency threads must be at least 1, got {threads}")
        self.threads = threads

    #: Seconds the last :meth:`compile` spent preparing beyond exporting (an int8
    #: runtime's calibration and quantisation; 0 for the others).
    prepare_s: float = 0.0

    @abstractmethod
    def compile(self, modules: Sequence[nn.Module], inputs: Sequence[torch.Tensor],
                calibration: Calibration = None) -> List[Callable[[], object]]:
        """One argument-free call per module that runs it on its input in this runtime.

        Args:
            modules: eval-mode modules (batch 1).
            inputs: one input tensor per module.
            calibration: for a runtime that quantises, one entry per module: ``[n, ...]``
                inputs like those it will see (e.g. training images), or None for seeded
                normal noise of its input's shape; the others ignore it.
        """

    @contextmanager
    def _running(self) -> Iterator[None]:
        """The process state the calls run in."""
        yield

    def time(self, calls: Sequence[Callable[[], object]], warmup: int = 2,
             repeats: int = 5) -> List[float]:
        """Milliseconds of each call: the fastest of ``repeats`` timed rounds.

        The calls run round-robin, one run of each per round, so a call never follows
        itself: like a block inside a network, it finds its weights evicted by the
        others' work, not left hot in cache by its own previous run. (Timed one after
        another, the blocks of 12 networks summed to 23% less than the network in torch
        eager, a ratio that spread by 10% between networks; timed round-robin, by 4% in
        ONNX Runtime and 8% in torch, on a machine whose own noise was 2% and 10%.)
        """
        with self._running():
            # the device runner's own loop: a table timed there follows this protocol
            return time_calls(calls, warmup, repeats, self.threads)

    def describe(self) -> str:
        return f"{self.name}, {self.threads} thread(s)"


class TorchEager(Runtime):
    """PyTorch eager execution, ``torch.no_grad()``."""

    name = "torch"

    def compile(self, modules, inputs, calibration=None):
        def call(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
            return lambda: module(x)

        return [call(m.eval(), x) for m, x in zip(modules, inputs)]

    @contextmanager
    def _running(self):
        with threads(self.threads), torch.no_grad():
            yield


class _Bundle(nn.Module):
    """Several modules side by side, each on its own input: one export for all of them."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        self.units = nn.ModuleList(modules)

    def forward(self, *xs):
        return tuple(m(x) for m, x in zip(self.units, xs))


class OnnxRuntime(Runtime):
    """ONNX Runtime, CPU execution provider, default (full) graph optimisation, sequential
    execution, ``threads`` intra-op threads.

    Raises:
        UsageError: onnxruntime (or torch's ONNX exporter's onnxscript) is not installed.
    """

    name = "onnxruntime"

    def __init__(self, threads: int = 1):
        super().__init__(threads)
        require_onnxruntime(f"the {self.name} latency backend")

    def compile(self, modules, inputs, calibration=None):
        self.prepare_s = 0.0
        calibration = list(calibration) if calibration is not None else [None] * len(modules)
        calls: List[Callable[[], object]] = []
        for start in range(0, len(modules), ONNX_BUNDLE):
            end = start + ONNX_BUNDLE
            calls += self._compile_bundle(modules[start:end], inputs[start:end],
                                          calibration[start:end])
        return calls

    def _convert(self, graph, names: Sequence[str], inputs: Sequence[torch.Tensor],
                 calibration: Sequence[Optional[torch.Tensor]]):
        """The graph the runtime runs, made from the exported float ``graph`` whose inputs
        ``names`` take ``inputs``: the graph itself here."""
        return graph

    def _compile_bundle(self, modules, inputs, calibration):
        names_in = [f"x{i}" for i in range(len(modules))]
        parts = onnx_unit_models(modules, inputs, lambda graph: self._convert(
            graph, names_in, inputs, calibration))
        calls = []
        for part, name, x in zip(parts, names_in, inputs):
            session = OnnxModel(part, self.threads)
            feed = {name: x.detach().cpu().numpy()}
            calls.append(lambda session=session, feed=feed: session.run(feed))
        return calls


def onnx_unit_models(modules: Sequence[nn.Module], inputs: Sequence[torch.Tensor],
                     convert: Optional[Callable[[Any], Any]] = None) -> list:
    """One ONNX model (``onnx.ModelProto``) per module, module ``i`` reading input ``x{i}``
    and writing output ``y{i}``, from one export of them all side by side (the
    exporter's fixed cost per call is seconds; :data:`ONNX_BUNDLE` at a time); a single
    module is exported alone, as ``nas export`` writes a whole network. ``convert`` turns
    the exported float graph into the one to run (int8: quantised), before it is cut
    apart, so modules exported together are converted together."""
    from onnx.utils import Extractor

    convert = convert or (lambda graph: graph)
    names_in = [f"x{i}" for i in range(len(modules))]
    names_out = [f"y{i}" for i in range(len(modules))]
    if len(modules) == 1:
        return [convert(onnx_program(modules[0].eval(), inputs, names_in, names_out).model_proto)]
    graph = onnx_program(_Bundle(modules).eval(), inputs, names_in, names_out).model_proto
    extractor = Extractor(convert(graph))
    return [extractor.extract_model([i], [o]) for i, o in zip(names_in, names_out)]


class OnnxRuntimeInt8(OnnxRuntime):
    """ONNX Runtime as :class:`OnnxRuntime`, on each module statically quantised to int8
    (:mod:`nas.latency.quantize`): BatchNorm folded, QDQ, uint8 activations, int8 weights
    per channel, ``reduce_range`` where the CPU needs it, MinMax ranges from the
    calibration inputs :meth:`compile` is given (else ``settings.calibration_inputs``
    samples of seeded normal noise: the latency of a quantised network does not depend on
    its ranges' values, only on where quantise and dequantise steps are).

    Modules compiled together (a table's group of blocks) are quantised together, in one
    call of the quantiser, then cut apart: each block alone then quantises its input and
    dequantises its output, steps a whole int8 network does once, which the table's scale
    (fitted on whole networks) absorbs.

    Args:
        threads: intra-op threads.
        settings: quantisation choices (default: detected for this CPU,
            :func:`nas.latency.quantize.quant_settings`).
    """

    name = "onnxruntime-int8"

    def __init__(self, threads: int = 1, settings: Optional[QuantSettings] = None):
        super().__init__(threads)
        self.settings = settings or quant_settings()

    def compile(self, modules, inputs, calibration=None):
        return super().compile([fold_batchnorm(m) for m in modules], inputs, calibration)

    def _convert(self, graph, names, inputs, calibration):
        start = time.perf_counter()
        noise = torch.Generator().manual_seed(0)
        samples = []
        for x, given in zip(inputs, calibration):
            if given is None:
                given = torch.randn((self.settings.calibration_inputs, *x.shape[1:]),
                                    generator=noise)
            if tuple(given.shape[1:]) != tuple(x.shape[1:]):
                raise ValueError(f"calibration inputs of shape {tuple(given.shape)} for a "
                                 f"module whose input is {tuple(x.shape)}")
            samples.append(given.detach().cpu().float())
        n = max(len(s) for s in samples)
        # One feed per sample index; a module with fewer samples than another repeats its own.
        feeds = [{name: s[j % len(s)][None].contiguous().numpy()
                  for name, s in zip(names, samples)} for j in range(n)]
        quantised = quantize_onnx(graph, feeds, self.settings)
        self.prepare_s += time.perf_counter() - start
        return quantised

    def describe(self) -> str:
        return f"{self.name} ({self.settings.describe()}), {self.threads} thread(s)"


def make_runtime(name: str, threads: int = 1) -> Runtime:
    """The runtime ``name`` (one of :data:`RUNTIMES`) with ``threads`` threads."""
    if name == "torch":
        return TorchEager(threads)
    if name == "onnxruntime":
        return OnnxRuntime(threads)
    if name == "onnxruntime-int8":
        return OnnxRuntimeInt8(threads)
    raise UsageError(f"unknown latency runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
