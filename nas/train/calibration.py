"""Images for int8 calibration and for checking a quantised network: the one place they
are drawn from a data set.

Every int8 quantisation of ``nas`` (the ``onnxruntime-int8`` latency of a search,
``nas export --int8``, the re-ranking's int8 accuracy) calibrates on
:func:`calibration_inputs`: training images (the training split less the seeded
validation carve, so never an image that is scored), without augmentation, normalised
as training normalises them (the training split's per-channel mean and std). What a
quantised network is checked on, its logit difference from float and its accuracy, is
:func:`heldout_batches`: the validation carve, never the test split.

Both read the data as training does (:func:`~nas.train.loop.load_data`, the carve of
:func:`~nas.train.loop.data_splits`, the training split's statistics) in the evaluation
form of the training recipe (:func:`~nas.train.loop.recipe_of`: photos resized to
``resolution / crop_pct`` and centre-cropped, small images as they are), held or streamed
as ``data_mode`` says; the last data set indexed is kept for the next call, since a
re-ranking asks for the same data once per candidate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator, Optional, Tuple

import torch

from ..data import image_stats, make_loader, sample_batch
from .loop import LoopConfig, data_splits, load_data, recipe_of

__all__ = ["calibration_inputs", "heldout_batches"]


def _splits(config: LoopConfig):
    """``(dataset, train, validation, mean, std)`` as training carves and normalises."""
    return _carved(config.data, config.val_fraction, config.split_seed, config.data_mode)


@lru_cache(maxsize=1)
def _carved(data: str, val_fraction: float, split_seed: int, data_mode: str):
    config = LoopConfig(data=data, val_fraction=val_fraction, split_seed=split_seed,
                        data_mode=data_mode)
    dataset = load_data(config)
    train, val = data_splits(dataset, config)
    mean, std = image_stats(train)  # as the trainers: the training split's statistics
    return dataset, train, val, mean, std


def _config(data_spec: str, resolution: Optional[int], **carve) -> LoopConfig:
    return LoopConfig(data=data_spec, resolution=resolution or 0, **carve).validate()


def _fit_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """``x`` with ``channels`` channels: repeated cyclically (grey images for an RGB
    network) or cut; unchanged when None."""
    if channels is None or channels == x.shape[1]:
        return x
    return x[:, torch.arange(channels) % x.shape[1]]


def calibration_inputs(data_spec: str, n: int, resolution: Optional[int] = None, seed: int = 0,
                       *, channels: Optional[int] = None, val_fraction: float = 0.1,
                       split_seed: int = 0, crop_pct: float = 0.875,
                       data_mode: str = "auto") -> torch.Tensor:
    """``n`` training images of ``data_spec`` to calibrate an int8 network on.

    Args:
        data_spec: a ``--data`` value (``fashion-mnist``, an ImageFolder, a ``.tar.gz``).
        n: how many (fewer when the training split holds fewer).
        resolution: the training resolution (None or 0: the recipe's default, the
            native size of small images).
        seed: which images: a seeded draw without replacement from the training split.
        channels: the network's input channels, when they differ from the data's (e.g. a
            3-channel target network priced on Fashion-MNIST): channels are repeated or cut.
        val_fraction, split_seed: the validation carve to leave out (the trainers'
            ``--val-fraction`` and ``--split-seed``).
        crop_pct, data_mode: the trainers' ``--crop-pct`` and ``--data-mode``.

    Returns:
        ``[n, C, H, W]`` float32, normalised with the training split's mean and std.

    Raises:
        DataError: missing or malformed data, or a carve too small to rank architectures.
    """
    config = _config(data_spec, resolution, val_fraction=val_fraction, split_seed=split_seed,
                     crop_pct=crop_pct, data_mode=data_mode)
    dataset, train, _, mean, std = _splits(config)
    batch = sample_batch(train, max(1, n), mean, std, recipe_of(dataset, config), seed)
    return _fit_channels(batch, channels)


def heldout_batches(data_spec: str, resolution: Optional[int] = None, *, batch_size: int = 256,
                    limit: Optional[int] = None, channels: Optional[int] = None,
                    val_fraction: float = 0.1, split_seed: int = 0, crop_pct: float = 0.875,
                    data_mode: str = "auto") -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """The validation carve of ``data_spec`` in order, as ``(images, labels)`` batches
    (``[B, C, H, W]`` float32 normalised as :func:`calibration_inputs`, ``[B]`` int64):
    the images ``nas train`` and the re-ranking report validation accuracy on.

    Args:
        limit: only the first ``limit`` images (None: all).
        the others: as :func:`calibration_inputs`.
    """
    config = _config(data_spec, resolution, val_fraction=val_fraction, split_seed=split_seed,
                     crop_pct=crop_pct, data_mode=data_mode)
    dataset, _, val, mean, std = _splits(config)
    if limit is not None:
        val = val.subset(torch.arange(min(limit, len(val))))
    loader = make_loader(val, batch_size, mean, std, recipe=recipe_of(dataset, config))
    for x, y in loader:
        yield _fit_channels(x, channels), y

