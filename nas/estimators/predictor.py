"""A learned accuracy predictor: scikit-learn regression on an architecture encoding.

Trained on seed-averaged standalone accuracies (a ``nas reference`` directory), optionally
with other estimators' scores as extra features (NASWOT, the supernet). Two models, both
scikit-learn: ``ridge`` (standardised features, ``RidgeCV`` choosing the penalty by
leave-one-out) and ``gbm`` (``HistGradientBoostingRegressor``, seeded). The reference notes
(reference/RANKING.md) measured ridge on a one-hot encoding at tau 0.71 with 70 archs and
LightGBM at 0.74-0.78 with 120-250 archs in a MobileNet-style band.

A predictor file (``nas predictor fit``) is JSON: the training architectures, their targets
and extra scores, and the settings. Loading it refits the model (a second or less), so the
file holds only data nas validates, never a pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..arch import Architecture
from ..config import Settings, setting
from ..cost import count_cost
from ..errors import CheckpointError, UsageError
from ..files import read_json, write_json
from .base import Estimator
from .encoding import ENCODINGS, feature_table

__all__ = ["Predictor", "PredictorConfig", "PredictorEstimator", "PredictorFile",
           "read_predictor", "MODELS", "FORMAT"]

FORMAT = "nas-predictor/1"
MODELS = ("ridge", "gbm")


def _model(kind: str):
    if kind == "ridge":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))
    if kind == "gbm":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05,
                                             max_leaf_nodes=8, min_samples_leaf=5,
                                             l2_regularization=1.0, random_state=0)
    raise UsageError(f"unknown predictor model {kind!r}: expected one of {', '.join(MODELS)}")


@dataclass
class PredictorConfig(Settings):
    """How ``nas predictor fit`` fits a predictor on references (the file records them)."""

    model: str = setting("ridge", choices=MODELS,
                         help="ridge regression or gradient-boosted trees")
    encoding: str = setting("summary", choices=ENCODINGS,
                            help="per-stage summaries or one indicator per decision")
    naswot: bool = setting(False, help="add the NASWOT score as a feature (computed on the "
                                       "search's data)")
    # measured (experiments/README.md): 80 architectures at one seed each trained a predictor
    # that ranked better than 40 at three seeds; more architectures beat more seeds
    min_seeds: int = setting(1, at_least=1,
                             help="use architectures with at least this many seeds")


class Predictor:
    """Regression from an architecture's features (and extra scores) to its accuracy.

    Args:
        model: ``ridge`` or ``gbm``.
        encoding: ``summary`` or ``onehot`` (:mod:`nas.estimators.encoding`).
        space: the space, for ``onehot``.
        resolution: the proxy resolution the targets were measured at (kernel features are
            taken as that input sees them).
        extra: names of extra score features, given to :meth:`fit` and :meth:`predict`.
    """

    def __init__(self, model: str = "ridge", encoding: str = "summary", space=None,
                 resolution: Optional[int] = None, extra: Sequence[str] = ()):
        if encoding not in ENCODINGS:
            raise UsageError(f"unknown encoding {encoding!r}: expected one of "
                             f"{', '.join(ENCODINGS)}")
        _model(model)
        self.model_kind, self.encoding, self.space = model, encoding, space
        self.resolution, self.extra = resolution, tuple(extra)
        self.names: List[str] = []
        self.fitted = None

    def _matrix(self, archs: Sequence[Architecture],
                extra: Optional[Mapping[str, Sequence[float]]]) -> np.ndarray:
        names, rows = feature_table(archs, self.encoding, self.space, self.resolution)
        x = np.asarray(rows, dtype=float)
        if self.names and names != self.names:
            index = {n: i for i, n in enumerate(names)}
            x = np.asarray([[r[index[n]] if n in index else 0.0 for n in self.names]
                            for r in x.tolist()], dtype=float).reshape(len(archs), -1)
        else:
            self.names = names
        columns = [np.asarray((extra or {})[name], dtype=float)[:, None] for name in self.extra]
        return np.hstack([x, *columns]) if columns else x

    def fit(self, archs: Sequence[Architecture], targets: Sequence[float],
            extra: Optional[Mapping[str, Sequence[float]]] = None) -> "Predictor":
        self.names = []
        x = self._matrix(archs, extra)
        self.fitted = _model(self.model_kind).fit(x, np.asarray(targets, dtype=float))
        return self

    def predict(self, archs: Sequence[Architecture],
                extra: Optional[Mapping[str, Sequence[float]]] = None) -> List[float]:
        if self.fitted is None:
            raise RuntimeError("fit the predictor first")
        return [float(v) for v in self.fitted.predict(self._matrix(archs, extra))]


@dataclass
class PredictorFile:
    """A predictor file's contents, checked (:func:`read_predictor`).

    Attributes:
        archs, targets: the training architectures and their accuracies (fractions).
        scores: ``{name: one extra score per architecture}`` (features other estimators give).
        predictor: the model the file describes, not yet fitted.
        settings: how the file was made (the reference, the extra scores' settings).
    """

    archs: List[Architecture]
    targets: List[float]
    scores: Dict[str, List[float]]
    predictor: Predictor
    settings: Dict


def read_predictor(path) -> PredictorFile:
    """Read and check a predictor file (``nas predictor fit``) without fitting it.

    Raises:
        CheckpointError: missing, not a predictor file, malformed, or its lists differ in
            length.
    """
    path = Path(path)
    data = read_json(path, "predictor file")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    try:
        archs = [Architecture.parse(a) for a in data["archs"]]
        targets = [float(t) for t in data["targets"]]
        scores = {k: [float(v) for v in vs] for k, vs in data.get("extra", {}).items()}
        space = None
        if data["encoding"] == "onehot":
            from ..space import parse_space

            space = parse_space(data["space_text"], data["space"], str(path))
        predictor = Predictor(data["model"], data["encoding"], space, data.get("resolution"),
                              tuple(scores))
        settings = dict(data.get("settings", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: malformed predictor file ({e})") from None
    if len(targets) != len(archs) or any(len(v) != len(archs) for v in scores.values()):
        raise CheckpointError(f"{path}: architectures, targets and scores differ in number")
    if not all(math.isfinite(t) for t in targets):
        raise CheckpointError(f"{path}: non-finite targets")
    return PredictorFile(archs, targets, scores, predictor, settings)


class PredictorEstimator(Estimator):
    """A :class:`Predictor` loaded from a predictor file, with its extra estimators.

    Args:
        path: the predictor file.
        extra: the estimators whose scores the predictor takes as features, by name (the
            caller builds them on the task's data, with the settings the file records).
        architecture_only: fit on the architecture encoding alone, leaving out the file's
            extra scores (and needing no ``extra``): the fast first stage of a search that
            scores too many candidates for a forward pass each (``--sampler evolution``).
    """

    name = "predictor"
    is_accuracy = True

    def __init__(self, path, extra: Optional[Mapping[str, Estimator]] = None,
                 architecture_only: bool = False):
        self.path = Path(path)
        stored = read_predictor(self.path)
        self.predictor, self.settings = stored.predictor, stored.settings
        if architecture_only:
            p = stored.predictor
            stored = replace(stored, scores={})
            self.predictor = Predictor(p.model_kind, p.encoding, p.space, p.resolution, ())
        self.extra = dict(extra or {})
        missing = set(stored.scores) - set(self.extra)
        if missing:
            raise UsageError(f"{self.path} needs the scores {sorted(missing)} for new "
                             "architectures")
        self.predictor.fit(stored.archs, stored.targets, stored.scores)
        self.trained_on = len(stored.archs)
        # Both models extrapolate poorly (ridge linearly, trees flat): say when a network's
        # FLOPs leave the range the training architectures span.
        flops = [count_cost(a).flops for a in stored.archs]
        self.flops_range = (min(flops), max(flops))

    def score(self, archs: Sequence[Architecture]) -> List[float]:
        extra = {name: est.score(archs) for name, est in self.extra.items()}
        return self.predictor.predict(archs, extra)

    def caveat(self, arch: Architecture) -> Optional[str]:
        """Set when ``arch``'s FLOPs lie outside those of the training architectures."""
        lo, hi = self.flops_range
        flops = count_cost(arch).flops
        if lo <= flops <= hi:
            return None
        return (f"{flops / 1e6:.1f}M FLOPs is outside the {lo / 1e6:.1f}-{hi / 1e6:.1f}M "
                f"FLOPs of the predictor's {self.trained_on} training architectures: "
                "its accuracy there is extrapolated")

    def describe(self) -> str:
        extra = f" + {', '.join(self.predictor.extra)}" if self.predictor.extra else ""
        lo, hi = self.flops_range
        return (f"predictor {self.path} ({self.predictor.model_kind} on "
                f"{self.predictor.encoding}{extra}, {self.trained_on} training architectures "
                f"of {lo / 1e6:.1f}-{hi / 1e6:.1f}M FLOPs)")


def save_predictor(path, archs: Sequence[Architecture], targets: Sequence[float], model: str,
                   encoding: str, resolution: Optional[int], extra: Dict[str, List[float]],
                   space=None, settings: Optional[dict] = None) -> None:
    """Write a predictor file (what :class:`PredictorEstimator` loads)."""
    Predictor(model, encoding, space, resolution, tuple(extra))  # validates the names
    data = {"format": FORMAT, "model": model, "encoding": encoding, "resolution": resolution,
            "archs": [str(a) for a in archs], "targets": [float(t) for t in targets],
            "extra": {k: [float(v) for v in vs] for k, vs in extra.items()},
            "settings": settings or {}}
    if encoding == "onehot":
        data.update(space=space.name, space_text=space.text)
    write_json(path, data)
