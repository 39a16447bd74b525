"""How a search scores architectures: the estimator ``--estimator`` names, built on the
search's data, and what the proxy input cannot see.

The supernet estimator scores on the supernet's own splits; NASWOT and the predictor read
a minibatch of the training split (the seeded validation carve removed, as everywhere).
"""

from __future__ import annotations

from typing import Optional

from ..arch import InputSpec
from ..estimators import EstimatorContext, make_estimator, needs_supernet
from ..space import SearchSpace
from ..space.proxy import blind_decisions, sighted_resolution
from .config import SearchConfig

__all__ = ["build_estimator", "proxy_input", "proxy_warning", "needs_supernet"]


def _task(config: SearchConfig, sn):
    """``(dataset, train split, mean, std)`` the estimators score on."""
    from ..data import image_stats, load_dataset
    from ..train import LoopConfig, data_splits

    if sn is not None:
        train, _ = data_splits(sn.dataset, sn.config)
        return sn.dataset, train, sn.mean, sn.std
    dataset = load_dataset(config.data)
    train, _ = data_splits(dataset, LoopConfig(data=config.data))
    mean, std = image_stats(train)
    return dataset, train, mean, std


def build_estimator(config: SearchConfig, sn=None):
    """``(estimator, proxy input)`` for a search; ``sn`` is its supernet run when it has one."""
    import torch

    from ..data import Loader

    dataset, train, mean, std = _task(config, sn)
    resolution = config.resolution or None

    def images(n: int):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))
        batch = train.subset(order[:n])
        return next(iter(Loader(batch, n, mean, std, resolution=resolution).epoch(0)))[0]

    calib_images = config.recalibration_batches * (sn.config.batch_size if sn else 64)
    context = EstimatorContext(num_classes=len(dataset.classes), images=images,
                               supernets=(lambda: [sn]) if sn is not None else None,
                               calib_images=calib_images, val_images=config.val_images,
                               resolution=resolution, seed=config.seed)
    # the side every trial is scored at: a supernet's own (the search refuses another)
    side = sn.resolution if sn is not None else resolution or dataset.resolution
    proxy = InputSpec(dataset.channels, side, len(dataset.classes))
    return make_estimator(config.estimator, context), proxy


def proxy_input(config: SearchConfig, sn=None) -> int:
    """The side of the images the estimator scores at."""
    return config.resolution or (sn.dataset.resolution if sn is not None else 0)


def proxy_warning(space: SearchSpace, resolution: int) -> Optional[str]:
    """A note naming the decisions a ``resolution`` proxy cannot tell apart, or None."""
    blind = blind_decisions(space, resolution)
    if not blind:
        return None
    always = [b.decision for b in blind if b.invisible]
    seen = sighted_resolution(space, start=resolution)
    words = (f"note: at {resolution}x{resolution} the accuracy estimate cannot see "
             f"{len(always)} decision(s) at all ({', '.join(always)})" if always else
             f"note: at {resolution}x{resolution} the accuracy estimate cannot see some "
             "alternatives")
    partly = [b.decision for b in blind if not b.invisible]
    if partly:
        words += f" and some alternatives of {len(partly)} more ({', '.join(partly)})"
    words += "; the search decides those by cost alone"
    if seen:
        words += (f". --resolution {seen} sees them all (about "
                  f"{(seen / resolution) ** 2:.0f}x the compute per image)")
    return words + ". `nas space show SPACE --proxy N` lists them."


