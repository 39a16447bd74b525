"""Batches: augmented, normalised float tensors made on the fly from uint8 images.

Augmentation (pad-and-crop, horizontal flip) and the optional resize to a proxy
resolution are written here in torch, without torchvision. Every batch is reproducible
from (seed, epoch, index), so a resumed run draws the same batches.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..errors import DataError
from .dataset import ImageSet

__all__ = ["Loader"]


class Loader:
    """Batches of an :class:`ImageSet` as normalised float tensors.

    Args:
        data: the images.
        batch_size: images per batch.
        mean, std: per-channel normalisation (training-set statistics).
        train: shuffle each epoch, apply augmentation, drop the last partial batch.
        resolution: resize to this side (a proxy resolution); None keeps the native size.
        pad: pad-and-crop augmentation margin in native pixels (train only).
        flip: random horizontal flips (train only).
        seed: the shuffle/augmentation seed; epoch ``e`` is reproducible on its own.
        device: where batches go.
        channels_last: emit NHWC-strided batches (2-3x faster depthwise convs on CPU).
    """

    def __init__(self, data: ImageSet, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], train: bool = False, resolution: Optional[int] = None,
                 pad: int = 0, flip: bool = False, seed: int = 0, device="cpu",
                 channels_last: bool = False):
        if batch_size < 1:
            raise DataError(f"batch size must be positive, got {batch_size}")
        self.data, self.batch_size, self.train = data, batch_size, train
        self.resolution, self.pad, self.flip, self.seed = resolution, pad, flip, seed
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch ``epoch``, from batch index ``start`` (for exact resume)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        for i in range(start, len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            # Per-batch generator: a resumed epoch draws the same augmentation.
            bg = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 100_003 + i)
            yield self.transform(self.data.images[index], bg), self.data.labels[index].to(
                self.device)

    def __iter__(self):
        return self.epoch(0)

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images.float().div_(255)
        if self.train and self.pad:
            x = _pad_crop(x, self.pad, generator)
        if self.train and self.flip:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.resolution and self.resolution != x.shape[-1]:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                              align_corners=False, antialias=self.resolution < x.shape[-1])
        x = (x - self.mean) / self.std
        return x.to(self.device).contiguous(memory_format=self.memory_format)


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
