"""What every latency backend answers: milliseconds of an architecture on this machine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Dict

from ..arch import Architecture

__all__ = ["LatencyModel"]


class LatencyModel(ABC):
    """Latency of an architecture's static network at batch 1 and its target input.

    The contract (``tests/latency_tests/test_contract.py`` runs it over every backend):
    :meth:`predict` returns a finite positive number of milliseconds, the same architecture
    gives the same order of magnitude every time, and a larger network of the same family
    is not predicted faster than a much smaller one; ``backend`` names the runtime whose
    latency it is and ``source`` how it is obtained, so that the search and the report can
    say which backend measured. A backend is not thread-safe.
    """

    #: Short name for logs: the runtime, and ``table`` for a prediction.
    name: str = ""
    #: The runtime whose latency this is (``torch``, ``onnxruntime``, ``onnxruntime-int8``).
    backend: str = ""
    #: ``measured`` (every architecture timed) or ``table`` (predicted from a lookup table).
    source: str = "measured"

    @abstractmethod
    def predict(self, arch: Architecture) -> float:
        """Milliseconds of ``arch`` at batch 1, its target input."""

    def used(self) -> Dict[str, float]:
        """What the last :meth:`predict` cost beyond timing, for the trial's record (e.g.
        ``{"latency_quantise_s": 5.1}``: an int8 network's calibration and quantisation)."""
        return {}

    def describe(self) -> str:
        """One line for logs and reports: the backend and its settings."""
        return self.name

    def check(self, space) -> None:
        """Refuse to serve a search of ``space`` (a :class:`~nas.space.SearchSpace`) when
        this backend cannot, before anything is trained. Measuring serves any space.

        Raises:
            NasError: why, in one line.
        """
        return None
