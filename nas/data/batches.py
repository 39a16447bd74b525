"""What every loader of nas shares: its arguments, normalisation and batch mixing.

A loader (:class:`~nas.data.loader.Loader` for images in memory,
:class:`~nas.data.stream.StreamLoader` for files, :class:`~nas.data.shards.ShardLoader` for
tar shards) is this plus how it makes batches: ``len()`` batches per epoch and
``epoch(epoch, start)`` yielding ``(images [B, C, R, R] float, labels)``, labels being
class indices ``[B]`` or, under mixup / cutmix, soft labels ``[B, classes]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import torch

from ..errors import DataError
from .recipe import Recipe

__all__ = ["Batches", "StreamedBatches", "item_seed", "mix"]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of image (or batch) ``index`` in ``epoch``, in any process."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % (2 ** 63)


def mix(mixer, x: torch.Tensor, y: torch.Tensor, seed: int, epoch: int, index: int):
    """Batch ``index`` of ``epoch`` mixed (mixup / cutmix, soft labels ``[B, classes]``) by
    ``mixer``, its draws seeded by the batch; unchanged when ``mixer`` is None."""
    if mixer is None:
        return x, y
    with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        torch.manual_seed(item_seed(seed + 1, epoch, index))
        return mixer(x, y)


@dataclass
class Batches:
    """A loader's arguments.

    Args:
        data: the split (in memory, files or shards).
        batch_size: images per batch (the whole batch, across torchrun ranks).
        mean, std: per-channel normalisation in [0, 1] units (training-set statistics).
        recipe: how images become inputs (:class:`~nas.data.recipe.Recipe`); an in-memory
            loader without one keeps images as they are.
        train: shuffle each epoch and drop the last partial batch.
        augment: apply the recipe's training augmentation (default: ``train``); calibration
            loaders shuffle without augmenting.
        seed: order and augmentation seed; epoch ``e`` is reproducible on its own.
        device: where batches go (CUDA: pinned memory, non-blocking copies).
        channels_last: NHWC-strided batches (2-3x faster depthwise convs on CPU).
        num_classes: for mixup / cutmix (training only).
    """

    data: object
    batch_size: int
    mean: Sequence[float]
    std: Sequence[float]
    recipe: Optional[Recipe] = None
    train: bool = False
    augment: Optional[bool] = None
    seed: int = 0
    device: object = "cpu"
    channels_last: bool = False
    num_classes: int = 0

    sharded = False  # each torchrun rank gets the whole batch and keeps its share

    def __post_init__(self):
        if self.batch_size < 1:
            raise DataError(f"batch size must be positive, got {self.batch_size}")
        if self.augment is None:
            self.augment = self.train
        self.device = torch.device(self.device)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        self._mixer = (self.recipe.mixer(self.num_classes)
                       if self.recipe is not None and self.train and self.augment
                       and self.num_classes else None)

    def derive(self, **changes) -> "Batches":
        """A loader like this one with some arguments changed (nothing kept is shared)."""
        return replace(self, **changes)

    def __iter__(self):
        return self.epoch(0)

    def finish(self, x: torch.Tensor, y: torch.Tensor, epoch: int, index: int):
        """A uint8 batch and its labels as the model takes them: on the device, in [0, 1],
        normalised, mixed when training asks for it, in the loader's memory format."""
        cuda = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=cuda).float().div_(255)
        x = (x - self._mean.to(x.device)) / self._std.to(x.device)
        y = y.to(self.device, non_blocking=cuda)
        x, y = mix(self._mixer, x, y, self.seed, epoch, index)
        return x.contiguous(memory_format=self.memory_format), y


@dataclass
class StreamedBatches(Batches):
    """A loader that decodes in worker processes.

    Args:
        workers: loader worker processes (-1: one per core; 0: decode in this process).
        keep: keep this many leading batches of epoch 0 as uint8 and replay them (an
            evaluation set or calibration batches read again and again, bounded by this,
            not by the data set).
        part: ``(rank, world)``: this torchrun rank's share of each batch, which is all it
            decodes.
    """

    workers: int = -1
    keep: int = 0
    part: Tuple[int, int] = (0, 1)

    @property
    def sharded(self) -> bool:
        """Whether each batch is already this rank's share (torchrun)."""
        return self.part[1] > 1
