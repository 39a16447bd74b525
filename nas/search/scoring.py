"""How a search scores architectures: the estimator ``--estimator`` names, built on the
search's data, and what the proxy input cannot see.

The supernet estimator scores on the supernet's own splits; NASWOT and the predictor read
a minibatch of the training split (the seeded validation carve removed, as everywhere).
"""

from __future__ import annotations

from typing import Optional

from ..arch import InputSpec
from ..estimators import EstimatorContext, make_estimator, needs_supernet
from ..runs import SearchDir
from ..space import SearchSpace
from ..space.proxy import blind_decisions, sighted_resolution
from .config import SearchConfig

__all__ = ["build_estimator", "estimator_spec", "proxy_warning", "needs_supernet"]


def _task(config: SearchConfig, sn):
    """``(dataset, train split, mean, std, recipe)`` the estimators score on."""
    from ..data import image_stats
    from ..train import LoopConfig, data_splits, load_data, recipe_of

    if sn is not None:
        train, _ = data_splits(sn.dataset, sn.config)
        return sn.dataset, train, sn.mean, sn.std, sn.recipe
    loop = LoopConfig(data=config.data, data_mode=config.data_mode,
                      resolution=config.resolution)
    dataset = load_data(loop)
    train, _ = data_splits(dataset, loop)
    mean, std = image_stats(train)
    return dataset, train, mean, std, recipe_of(dataset, loop)


def estimator_spec(config: SearchConfig, run) -> str:
    """What ``--estimator`` names for make_estimator: ``predictor`` is the run's own
    ``RUN/predictor.json`` (:mod:`nas.search.pipeline` fits it)."""
    if config.estimator == "predictor":
        return f"predictor:{SearchDir(run).predictor}"
    return config.estimator


def build_estimator(config: SearchConfig, sn=None, run=None):
    """``(estimator, proxy input)`` for a search; ``sn`` is its supernet run when it has one,
    ``run`` its run directory (where ``--estimator predictor`` keeps its predictor)."""
    dataset, train, mean, std, recipe = _task(config, sn)
    resolution = config.resolution or None

    def images(n: int):
        from ..data import sample_batch

        return sample_batch(train, n, mean, std, recipe.with_resolution(
            resolution or recipe.resolution), config.seed)

    calib_images = config.recalibration_batches * (sn.config.batch_size if sn else 64)
    context = EstimatorContext(num_classes=len(dataset.classes), images=images,
                               supernets=(lambda: [sn]) if sn is not None else None,
                               calib_images=calib_images, val_images=config.val_images,
                               resolution=resolution, seed=config.seed)
    # the side every trial is scored at: a supernet's own (the search refuses another)
    side = sn.resolution if sn is not None else resolution or recipe.resolution
    proxy = InputSpec(dataset.channels, side, len(dataset.classes))
    return make_estimator(estimator_spec(config, run), context), proxy


def proxy_warning(space: SearchSpace, resolution: int) -> Optional[str]:
    """A note naming the decisions a ``resolution`` proxy cannot tell apart, or None."""
    blind = blind_decisions(space, resolution)
    if not blind:
        return None
    always = [b.decision for b in blind if b.invisible]
    seen = sighted_resolution(space, start=resolution)
    partly = [b.decision for b in blind if not b.invisible]
    parts = []
    if always:
        parts.append(f"{len(always)} decision(s) at all ({', '.join(always)})")
    if partly:
        parts.append(f"some alternatives of {len(partly)}{' more' if always else ''} "
                     f"decision(s) ({', '.join(partly)})")
    words = (f"note: at {resolution}x{resolution} the accuracy estimate cannot see "
             + " and ".join(parts))
    words += "; the search decides those by cost alone"
    if seen:
        words += (f". --resolution {seen} sees them all (about "
                  f"{(seen / resolution) ** 2:.0f}x the compute per image)")
    return words + ". `nas space show SPACE --proxy N` lists them."


