"""Images in memory: uint8 tensors ``[N, C, H, W]`` with labels, their splits and statistics.

The validation split is carved from the training data with a seed; the test split is
kept apart and never used by search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import torch

from ..errors import DataError

__all__ = ["ImageSet", "Dataset", "cache_dir", "image_stats", "train_val_split"]


def cache_dir() -> Path:
    """``$NAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nas``, else ``~/.cache/nas``."""
    if os.environ.get("NAS_CACHE_DIR"):
        return Path(os.environ["NAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nas"


@dataclass
class ImageSet:
    """uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class Dataset:
    """Train and test splits of one dataset, with its class names."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: List[str]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def resolution(self) -> int:
        return self.train.images.shape[2]

    def stats(self) -> Tuple[List[float], List[float]]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        return image_stats(self.train)


def image_stats(images: "ImageSet", chunk: int = 4096) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std in [0, 1] units, in chunks (no float copy of the whole set)."""
    c = images.images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    square = torch.zeros(c, dtype=torch.float64)
    n = 0
    for start in range(0, len(images), chunk):
        x = images.images[start:start + chunk].to(torch.float64).div_(255)
        total += x.sum((0, 2, 3))
        square += x.pow(2).sum((0, 2, 3))
        n += x.numel() // c
    mean = total / n
    std = (square / n - mean.pow(2)).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def train_val_split(train: ImageSet, val_fraction: float = 0.1,
                    seed: int = 0) -> Tuple[ImageSet, ImageSet]:
    """Carve a seeded validation split out of the training data (search never sees test)."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {val_fraction}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(train) * val_fraction)))
    return train.subset(order[n_val:]), train.subset(order[:n_val])
