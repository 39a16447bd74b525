"""Images for int8 calibration and for checking a quantised network: the one place they
are drawn from a data set.

Every int8 quantisation of ``nas`` (the ``onnxruntime-int8`` latency of a search,
``nas export --int8``, the re-ranking's int8 accuracy) calibrates on
:func:`calibration_inputs`: training images (the training split less the seeded
validation carve, so never an image that is scored), without augmentation, normalised
as training normalises them (the training split's per-channel mean and std). What a
quantised network is checked on, its logit difference from float and its accuracy, is
:func:`heldout_batches`: the validation carve, never the test split.

Both read the data through ``nas.data``'s face (:func:`~nas.data.load_dataset`,
:func:`~nas.data.image_stats`, :class:`~nas.data.Loader`) and the training loop's carve
(:func:`~nas.train.loop.data_splits`); the last data set loaded is kept for the next
call, since a re-ranking asks for the same data once per candidate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator, Optional, Tuple

import torch

from ..data import Loader, image_stats, load_dataset
from .loop import LoopConfig, data_splits

__all__ = ["calibration_inputs", "heldout_batches"]


@lru_cache(maxsize=1)
def _splits(data_spec: str, val_fraction: float, split_seed: int):
    """``(train, validation, mean, std)`` of ``data_spec`` as training carves and normalises."""
    dataset = load_dataset(data_spec)
    train, val = data_splits(dataset, LoopConfig(data=data_spec, val_fraction=val_fraction,
                                                  split_seed=split_seed))
    mean, std = image_stats(train)  # as the trainers: the training split's statistics
    return train, val, mean, std


def _fit_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """``x`` with ``channels`` channels: repeated cyclically (grey images for an RGB
    network) or cut; unchanged when None."""
    if channels is None or channels == x.shape[1]:
        return x
    return x[:, torch.arange(channels) % x.shape[1]]


def calibration_inputs(data_spec: str, n: int, resolution: Optional[int] = None, seed: int = 0,
                       *, channels: Optional[int] = None, val_fraction: float = 0.1,
                       split_seed: int = 0) -> torch.Tensor:
    """``n`` training images of ``data_spec`` to calibrate an int8 network on.

    Args:
        data_spec: a ``--data`` value (``fashion-mnist``, an ImageFolder, a ``.tar.gz``).
        n: how many (fewer when the training split holds fewer).
        resolution: side to resize to (bilinear, antialiased when shrinking, as the
            loader's proxy resolution); None keeps the data's own.
        seed: which images: a seeded draw without replacement from the training split.
        channels: the network's input channels, when they differ from the data's (e.g. a
            3-channel target network priced on Fashion-MNIST): channels are repeated or cut.
        val_fraction, split_seed: the validation carve to leave out (the trainers'
            ``--val-fraction`` and ``--split-seed``).

    Returns:
        ``[n, C, H, W]`` float32, normalised with the training split's mean and std.

    Raises:
        DataError: missing or malformed data, or a carve too small to rank architectures.
    """
    train, _, mean, std = _splits(data_spec, val_fraction, split_seed)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    chosen = train.subset(order[:max(1, n)])
    loader = Loader(chosen, len(chosen), mean, std, resolution=resolution)
    return _fit_channels(next(iter(loader))[0], channels)


def heldout_batches(data_spec: str, resolution: Optional[int] = None, *, batch_size: int = 256,
                    limit: Optional[int] = None, channels: Optional[int] = None,
                    val_fraction: float = 0.1,
                    split_seed: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """The validation carve of ``data_spec`` in order, as ``(images, labels)`` batches
    (``[B, C, H, W]`` float32 normalised as :func:`calibration_inputs`, ``[B]`` int64):
    the images ``nas train`` and the re-ranking report validation accuracy on.

    Args:
        limit: only the first ``limit`` images (None: all).
        the others: as :func:`calibration_inputs`.
    """
    _, val, mean, std = _splits(data_spec, val_fraction, split_seed)
    if limit is not None:
        val = val.subset(torch.arange(min(limit, len(val))))
    for x, y in Loader(val, batch_size, mean, std, resolution=resolution):
        yield _fit_channels(x, channels), y

