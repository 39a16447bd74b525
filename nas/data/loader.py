"""Batches: augmented, normalised float tensors, from images in memory or from files.

:class:`Loader` batches an in-memory :class:`~nas.data.dataset.ImageSet` (small images: the
whole set decoded once) with the small-image recipe vectorised over the batch in torch
(pad-and-crop, flips, the resize to ``recipe.resolution``), in the training process: for
28-32 px images that is faster than any worker. :func:`make_loader` picks it or the
streamed :class:`~nas.data.stream.StreamLoader` by what the split is. Every batch is
reproducible from (seed, epoch, index), so a resumed run draws the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .batches import Batches, item_seed, mix
from .dataset import ImageSet
from .recipe import Recipe, parse_aa

__all__ = ["Loader", "make_loader", "sample_batch"]


@dataclass
class Loader(Batches):
    """Batches of an :class:`ImageSet` (images in memory) as normalised float tensors; the
    arguments are :class:`~nas.data.batches.Batches`' (``data``: an :class:`ImageSet`)."""

    def __post_init__(self):
        super().__post_init__()
        recipe = self.recipe
        self.resolution = recipe.resolution if recipe is not None else None
        self.pad = recipe.pad if recipe is not None and self.augment else 0
        self.flip = recipe.hflip if recipe is not None and self.augment else 0.0
        aa = parse_aa(recipe.aa) if recipe is not None and self.augment else None
        self._aa = None
        if aa is not None:
            from torchvision.transforms import v2

            self._aa = v2.RandAugment(num_ops=aa[0], magnitude=aa[1])

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch ``epoch``, from batch index ``start`` (for exact resume)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        cuda = self.device.type == "cuda"
        for i in range(start, len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            # Per-batch generator: a resumed epoch draws the same augmentation.
            bg = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 100_003 + i)
            images = self.data.images[index]
            if self._aa is not None:
                images = self._rand_augment(images, epoch, index)
            x = self.transform(images, bg)
            y = self.data.labels[index]
            if cuda:
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(self.device, non_blocking=cuda), y.to(self.device, non_blocking=cuda)
            x, y = mix(self._mixer, x, y, self.seed, epoch, i)
            yield x.contiguous(memory_format=self.memory_format), y

    def _rand_augment(self, images: torch.Tensor, epoch: int, index: torch.Tensor):
        out = torch.empty_like(images)
        with torch.random.fork_rng(devices=[]):
            for k, j in enumerate(index.tolist()):
                torch.manual_seed(item_seed(self.seed, epoch, j))
                out[k] = self._aa(images[k])
        return out

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images.float().div_(255)
        if self.pad:
            x = _pad_crop(x, self.pad, generator)
        if self.flip:
            flip = torch.rand(x.shape[0], generator=generator) < self.flip
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.resolution and self.resolution != x.shape[-1]:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                              align_corners=False, antialias=self.resolution < x.shape[-1])
        return (x - self._mean) / self._std


def _pad_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back to size at a random offset per image."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = oy[:, None] + torch.arange(h)  # [b, h]
    cols = ox[:, None] + torch.arange(w)  # [b, w]
    batch = torch.arange(b)[:, None, None]
    # padded[b, :, rows[b, i], cols[b, j]] -> [b, h, w, c]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def make_loader(split, batch_size: int, mean: Sequence[float], std: Sequence[float], *,
                recipe: Recipe, train: bool = False,
                augment: Optional[bool] = None, seed: int = 0, device="cpu",
                channels_last: bool = False, workers: int = -1, keep: bool = False,
                num_classes: int = 0, part: Tuple[int, int] = (0, 1)):
    """The loader of a split: :class:`Loader` for images in memory, a
    :class:`~nas.data.stream.StreamLoader` for files (``form`` needed; ``workers``,
    ``keep`` and ``part`` apply to it only). Arguments as theirs."""
    if isinstance(split, ImageSet):
        return Loader(split, batch_size, mean, std, train=train, recipe=recipe, augment=augment,
                      seed=seed, device=device, channels_last=channels_last,
                      num_classes=num_classes)
    from .shards import ShardSet

    if isinstance(split, ShardSet):
        from .shards import ShardLoader

        return ShardLoader(split, batch_size, mean, std, recipe=recipe, train=train,
                           augment=augment, seed=seed, device=device,
                           channels_last=channels_last, workers=workers, keep=keep,
                           num_classes=num_classes, part=part)
    from .stream import StreamLoader

    return StreamLoader(split, batch_size, mean, std, recipe=recipe, train=train,
                        augment=augment, seed=seed, device=device, channels_last=channels_last,
                        workers=workers, keep=keep, num_classes=num_classes, part=part)


def sample_batch(split, n: int, mean: Sequence[float], std: Sequence[float], recipe: Recipe,
                 seed: int) -> torch.Tensor:
    """``n`` images of ``split`` (a seeded draw) as one normalised batch ``[n, C, R, R]`` in
    the recipe's evaluation form (what zero-cost scores and calibration read)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    batch = split.subset(order[:n])
    loader = make_loader(batch, max(1, len(batch)), mean, std, recipe=recipe, workers=0)
    return next(iter(loader.epoch(0)))[0]
