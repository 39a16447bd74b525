"""What every latency backend answers: milliseconds of an architecture on this machine."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..arch import Architecture

__all__ = ["LatencyModel"]


class LatencyModel(ABC):
    """Latency of an architecture's static network at batch 1 and its target input.

    The contract (``tests/latency_tests/test_contract.py`` runs it over every backend):
    :meth:`predict` returns a finite positive number of milliseconds, the same architecture
    gives the same order of magnitude every time, and a larger network of the same family
    is not predicted faster than a much smaller one. A backend is not thread-safe.
    """

    #: Short name written next to every latency the search stores and the report shows.
    name: str = ""

    @abstractmethod
    def predict(self, arch: Architecture) -> float:
        """Milliseconds of ``arch`` at batch 1, its target input."""

    def describe(self) -> str:
        """One line for logs and reports: the backend and its settings."""
        return self.name
