"""Accuracy estimators: what tells the search which architecture will train best.

    est = make_estimator("naswot", context)        # or "supernet", "predictor:PATH"
    est.score([arch1, arch2])                      # one score per architecture, higher better

* :class:`SupernetEstimator`: the weight-sharing supernet's validation accuracy after
  BatchNorm recalibration, optionally averaged over several supernets;
* :class:`NaswotEstimator`: the NASWOT score at initialisation (Mellor et al., ICML 2021):
  one forward pass, no labels, no training;
* :class:`PredictorEstimator`: a scikit-learn model over an architecture encoding (and
  other estimators' scores), trained on a seed-averaged standalone reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

from ..config import Settings, setting
from ..errors import UsageError
from ..lazy import lazy_names
from .base import Estimator

# The estimators need torch or numpy: imported on first use, so that
# settings which only check an ``--estimator`` value (``ESTIMATOR_SPEC``) do not import it.
__getattr__, __dir__ = lazy_names(__name__, {
    "ENCODINGS": "encoding", "feature_table": "encoding", "onehot_features": "encoding",
    "summary_features": "encoding", "rank_correlation": "metrics", "rank_metrics": "metrics",
    "top_k": "metrics", "tau_gain": "metrics", "NaswotEstimator": "naswot",
    "naswot_score": "naswot",
    "MODELS": "predictor", "Predictor": "predictor", "PredictorEstimator": "predictor",
    "save_predictor": "predictor", "read_predictor": "predictor",
    "PredictorConfig": "predictor", "SupernetEstimator": "supernet"})

__all__ = ["Estimator", "SupernetEstimator", "NaswotEstimator", "PredictorEstimator",
           "Predictor", "PredictorConfig", "RankConfig", "EstimatorContext", "make_estimator",
           "naswot_score", "save_predictor", "summary_features", "onehot_features",
           "feature_table", "ENCODINGS", "MODELS", "ESTIMATOR_SPEC", "needs_supernet",
           "check_estimator", "read_predictor", "rank_correlation", "rank_metrics", "top_k",
           "tau_gain"]

#: What ``--estimator`` accepts.
ESTIMATOR_SPEC = r"supernet|naswot|predictor:.+"
NASWOT_IMAGES = 128  # the paper's minibatch


@dataclass
class RankConfig(Settings):
    """How ``nas rank REFERENCE`` scores a reference's architectures: the estimator, and
    what it is built from (:func:`nas.reference.estimator_context`)."""

    estimator: str = setting(pattern=ESTIMATOR_SPEC, metavar="{supernet,naswot,predictor:PATH}",
                             expected="supernet, naswot or predictor:PATH",
                             help="the estimator to rank the reference's architectures with")
    supernet: List[str] = setting([], metavar="PATH",
                                  help="supernet checkpoints for --estimator supernet (their "
                                       "scores averaged)")
    calib_images: int = setting(2048, at_least=0,
                                help="BatchNorm recalibration images of the supernet score")


@dataclass
class EstimatorContext:
    """What estimators are built from, each provided on demand.

    Attributes:
        num_classes: the task's classes.
        images: ``images(n)``: ``n`` normalised training images at the proxy resolution, the
            same ones every call (NASWOT's minibatch).
        supernets: ``supernets()``: the loaded supernet runs (the supernet estimator).
        calib_images, val_images: the supernet estimator's recalibration and scoring images.
        resolution: the proxy resolution (None: the data's own).
        seed: seeds the estimators' own randomness.
    """

    num_classes: int
    images: Callable[[int], object]
    supernets: Optional[Callable[[], List]] = None
    calib_images: int = 2048
    val_images: int = 1000
    resolution: Optional[int] = None
    seed: int = 0


def needs_supernet(spec: str) -> bool:
    """Whether ``spec`` scores with a supernet (the search trains or loads one only then)."""
    return spec == "supernet"


def make_estimator(spec: str, context: EstimatorContext) -> Estimator:
    """The estimator ``spec`` names (``supernet``, ``naswot`` or ``predictor:PATH``)."""
    from .naswot import NaswotEstimator
    from .predictor import PredictorEstimator
    from .supernet import SupernetEstimator

    if spec == "supernet":
        if context.supernets is None:
            raise UsageError("--estimator supernet needs a supernet")
        return SupernetEstimator(context.supernets(), context.calib_images, context.val_images,
                                 context.resolution)
    if spec == "naswot":
        return NaswotEstimator(context.images(NASWOT_IMAGES), context.num_classes,
                               seed=context.seed)
    if spec.startswith("predictor:"):
        path = spec[len("predictor:"):]
        stored = _predictor_file(path)
        images = int(stored.settings.get("naswot_images", NASWOT_IMAGES))
        seed = int(stored.settings.get("naswot_seed", 0))
        extra = {name: NaswotEstimator(context.images(images), context.num_classes, seed=seed)
                 for name in stored.scores}  # naswot only (_predictor_file)
        return PredictorEstimator(path, extra)
    raise UsageError(f"--estimator must be supernet, naswot or predictor:PATH, got {spec!r}")


def check_estimator(spec: str) -> None:
    """Refuse an ``--estimator`` that could not be built, before anything is trained: a
    predictor file that is missing or malformed, or whose extra scores nas cannot compute
    for new architectures. Reads no data.

    Raises:
        CheckpointError, UsageError: the file and what is wrong, in one line.
    """
    if spec.startswith("predictor:"):
        _predictor_file(spec[len("predictor:"):])


def _predictor_file(path: str):
    """The checked contents of a predictor file whose extra scores can be computed."""
    from .predictor import read_predictor

    stored = read_predictor(path)
    for name in stored.scores:
        if name != "naswot":
            raise UsageError(f"{path}: the extra score {name!r} cannot be computed for "
                             "new architectures (only naswot can)")
    return stored
