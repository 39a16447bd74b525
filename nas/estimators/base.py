"""What every accuracy estimator answers: a score per architecture that ranks them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Dict, List, Optional, Sequence

from ..arch import Architecture

__all__ = ["Estimator"]


class Estimator(ABC):
    """Scores architectures of one space on one task: a higher score, a better network.

    The contract (``tests/estimators_tests/test_contract.py`` runs it over every
    estimator): :meth:`score` returns one finite float per architecture, in order; the same
    architectures get the same scores (each estimator fixes its own randomness); scoring a
    list and scoring its items one by one agree; ``name`` and :meth:`describe` say what it
    is. ``is_accuracy`` says whether scores are accuracies in [0, 1] (the reward adds them to
    cost terms) or only a ranking on a scale of their own.
    """

    #: Short name stored with every trial it scores (``supernet``, ``naswot``, ...).
    name: str = ""
    #: Scores are validation accuracies in [0, 1] (or estimates of them).
    is_accuracy: bool = True

    @abstractmethod
    def score(self, archs: Sequence[Architecture]) -> List[float]:
        """One score per architecture, in order."""

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.name

    def used(self) -> Dict[str, int]:
        """What each score really rests on, as stored with every trial (e.g. the supernet's
        BatchNorm batches and validation images, fewer than asked on a small dataset)."""
        return {}

    def caveat(self, arch: Architecture) -> Optional[str]:
        """Why the score of ``arch`` deserves less trust than most (e.g. a predictor asked
        outside the data it was fitted on), in a few words; None when nothing is known."""
        return None
