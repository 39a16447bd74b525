"""Images in memory: uint8 tensors ``[N, C, H, W]`` with labels, their splits and statistics.

The validation split is carved from the training data with a seed; the test split is
kept apart and never used by search. Data that cannot rank architectures is refused
(:func:`check_dataset`, :func:`require_classes`): one class, identical images, a split
too small to hold one image per class.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from ..errors import DataError

__all__ = ["ImageSet", "Dataset", "cache_dir", "image_stats", "train_val_split", "note",
           "check_dataset", "require_classes"]

log = logging.getLogger("nas.data")
_noted: set = set()


def note(message: str) -> None:
    """Tell the user something about their data, once per process (logger ``nas.data``)."""
    if message not in _noted:
        _noted.add(message)
        log.warning(message)


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
    """Train and test splits of one dataset, with its class names and what was done to
    make its images one form (:mod:`nas.data.image_folder`)."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: List[str]
    notes: List[str] = field(default_factory=list)

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
    # A channel constant over the set (e.g. a blue channel that is always 0) carries no
    # information; std 1 normalises it to 0 instead of dividing by zero.
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    return mean.tolist(), std.tolist()


def check_dataset(data: Dataset, where: str) -> Dataset:
    """Refuse data that cannot rank architectures: one class, or identical images.

    Raises:
        DataError: naming ``where`` (the dataset's file or folder) and why.
    """
    if len(data.classes) < 2:
        raise DataError(f"{where}: only one class ({', '.join(data.classes) or 'none'}): a "
                        "classifier needs at least two; with one, every architecture scores "
                        "100% and nothing can be ranked")
    labels = data.train.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= len(data.classes)):
        raise DataError(f"{where}: labels outside 0..{len(data.classes) - 1}")
    require_classes(data.train, data.classes, f"{where}: the training split",
                    "add images of the other classes")
    images = data.train.images
    if bool((images == images[:1]).all()):
        raise DataError(f"{where}: every training image is the same: no architecture can "
                        "tell the classes apart, so nothing can be ranked")
    return data


def require_classes(split: ImageSet, classes: List[str], what: str, fix: str) -> None:
    """Refuse a split that cannot rank architectures: fewer images than classes, or
    images of one class only; note the classes it lacks.

    Args:
        split: the images.
        classes: the dataset's class names (labels index them).
        what: the split, for the message (e.g. "the validation split (10% of 40 images)").
        fix: what the user can do, for the message (names flags).
    """
    n = len(split)
    if n < len(classes):
        raise DataError(f"{what} holds {n} image(s) for {len(classes)} classes, too few to "
                        f"hold one image per class: accuracy on it cannot rank architectures; "
                        f"{fix}")
    present = torch.unique(split.labels).tolist()
    if len(present) < 2:
        raise DataError(f"{what} holds images of one class only ({classes[present[0]]}): "
                        f"accuracy on it cannot rank architectures; {fix}")
    missing = [classes[i] for i in range(len(classes)) if i not in set(present)]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        note(f"{what} holds no image of {len(missing)} of {len(classes)} classes ({shown})")


def train_val_split(train: ImageSet, val_fraction: float = 0.1, seed: int = 0,
                    classes: Optional[List[str]] = None) -> Tuple[ImageSet, ImageSet]:
    """Carve a seeded validation split out of the training data (search never sees test).

    With ``classes``, both parts must be able to rank architectures
    (:func:`require_classes`): the error names ``--val-fraction``.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {val_fraction}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(train) * val_fraction)))
    rest, val = train.subset(order[n_val:]), train.subset(order[:n_val])
    if classes is not None:
        carve = f"{val_fraction:g} of {len(train)} training images"
        require_classes(val, classes, f"the validation split ({carve})",
                        "raise --val-fraction or add images")
        require_classes(rest, classes, f"the training split less the validation carve ({carve})",
                        "lower --val-fraction or add images")
    return rest, val
