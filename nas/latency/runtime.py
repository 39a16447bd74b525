"""Where a latency is measured: a runtime runs modules at batch 1 and times them.

Two runtimes, the two a deployer of a ``nas export`` is likely to run it in:

* ``torch``: PyTorch eager, the static network as ``nas export`` writes it (split form);
* ``onnxruntime``: ONNX Runtime's CPU execution provider with its default graph
  optimisations, on the network exported in memory by ``torch.onnx.export(dynamo=True)``,
  the exporter behind ``nas export``'s ``model.onnx``. Each measurement exports afresh;
  nothing measured is reused.

The timing protocol is the same for both (:meth:`Runtime.time`): every call runs
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

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Callable, Iterator, List, Sequence

import torch
from torch import nn

from ..errors import UsageError
from ..model import onnx_program
from .runner import time_calls

__all__ = ["Runtime", "TorchEager", "OnnxRuntime", "RUNTIMES", "make_runtime", "threads",
           "onnx_unit_models"]

#: What ``--latency`` (measured) and ``nas latency build --runtime`` accept.
RUNTIMES = ("torch", "onnxruntime")

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

    @abstractmethod
    def compile(self, modules: Sequence[nn.Module],
                inputs: Sequence[torch.Tensor]) -> List[Callable[[], object]]:
        """One argument-free call per module that runs it on its input in this runtime.

        Args:
            modules: eval-mode modules (batch 1).
            inputs: one input tensor per module.
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

    def compile(self, modules, inputs):
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
        try:
            import onnx  # noqa: F401  (the exporter and the extractor)
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise UsageError(f"the onnxruntime latency backend needs {e.name}: "
                             "pip install 'nas[onnx]'") from None

    def _session(self, model_bytes: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def compile(self, modules, inputs):
        calls: List[Callable[[], object]] = []
        for start in range(0, len(modules), ONNX_BUNDLE):
            calls += self._compile_bundle(modules[start:start + ONNX_BUNDLE],
                                          inputs[start:start + ONNX_BUNDLE])
        return calls

    def _compile_bundle(self, modules, inputs):
        parts = onnx_unit_models(modules, inputs)
        names_in = [f"x{i}" for i in range(len(modules))]
        calls = []
        for part, name, x in zip(parts, names_in, inputs):
            session = self._session(part.SerializeToString())
            feed = {name: x.detach().cpu().numpy()}
            calls.append(lambda session=session, feed=feed: session.run(None, feed))
        return calls


def onnx_unit_models(modules: Sequence[nn.Module], inputs: Sequence[torch.Tensor]) -> list:
    """One ONNX model (``onnx.ModelProto``) per module, module ``i`` reading input ``x{i}``
    and writing output ``y{i}``, from one export of them all side by side (the
    exporter's fixed cost per call is seconds; :data:`ONNX_BUNDLE` at a time); a single
    module is exported alone, as ``nas export`` writes a whole network."""
    from onnx.utils import Extractor

    names_in = [f"x{i}" for i in range(len(modules))]
    names_out = [f"y{i}" for i in range(len(modules))]
    if len(modules) == 1:
        return [onnx_program(modules[0].eval(), inputs, names_in, names_out).model_proto]
    graph = onnx_program(_Bundle(modules).eval(), inputs, names_in, names_out).model_proto
    extractor = Extractor(graph)
    return [extractor.extract_model([i], [o]) for i, o in zip(names_in, names_out)]


def make_runtime(name: str, threads: int = 1) -> Runtime:
    """The runtime ``name`` (one of :data:`RUNTIMES`) with ``threads`` threads."""
    if name == "torch":
        return TorchEager(threads)
    if name == "onnxruntime":
        return OnnxRuntime(threads)
    raise UsageError(f"unknown latency runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
