"""A data set's splits, their carve, statistics and checks, for both kinds of split.

A split is an :class:`ImageSet` (small images decoded once into uint8 tensors
``[N, C, H, W]``) or a :class:`~nas.data.index.FileSet` (files decoded per item when
batched); both have ``labels``, ``len()``, ``subset(index)`` and ``image(i)``.

The validation split is carved from the training data with a seed; the test split is
kept apart and never used by search. Data that cannot rank architectures is refused
(:func:`check_dataset`, :func:`require_classes`): one class, identical images, a split
too small to hold one image per class. Statistics and checks hold at most one image of a
file split at a time: mean and std come from a seeded sample of :data:`STATS_SAMPLE`
images, and the identical-images check hashes that sample before it ever reads more.
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
           "check_dataset", "require_classes", "STATS_SAMPLE", "memory_budget"]

log = logging.getLogger("nas.data")
_noted: set = set()
#: Images of a file split that mean and std are estimated from (seeded, one at a time).
STATS_SAMPLE = 2000
# The side file images are decoded at for statistics and checks (JPEG draft mode makes
# this several times cheaper than full size; per-channel means barely depend on scale).
_CHECK_SIDE = 64


def memory_budget() -> int:
    """Bytes a data set may take decoded in memory: min(2 GiB, 10% of this machine's RAM)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2 ** 30
    return min(2 * 2 ** 30, ram // 10)


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

    def subset(self, index) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index])

    def image(self, i: int) -> torch.Tensor:
        """Image ``i`` as uint8 ``[C, H, W]``."""
        return self.images[i]


@dataclass
class Dataset:
    """Train and test splits of one dataset, with its class names and what was done to
    make its images one form (:mod:`nas.data.image_folder`).

    Attributes:
        name: the data set's name (its folder's, or fashion-mnist).
        train, test: the splits (:class:`ImageSet` in memory, or file splits streamed).
        classes: class names; labels index them.
        notes: what was done to the user's images, in words.
        channels: 1 or 3.
        native: small images: the side they are stored at; photos: their median shorter
            side (information only: photos train at :attr:`resolution`).
        small: whether the small-image recipe applies (:mod:`nas.data.recipe`).
    """

    name: str
    train: "object"
    test: "object"
    classes: List[str]
    notes: List[str] = field(default_factory=list)
    channels: int = 0
    native: int = 0
    small: bool = True

    def __post_init__(self):
        if isinstance(self.train, ImageSet):
            self.channels = self.channels or self.train.images.shape[1]
            self.native = self.native or self.train.images.shape[2]

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, ImageSet)

    @property
    def resolution(self) -> int:
        """The side it trains at without ``--resolution``: small images' own, photos' the
        recipe's default (:data:`~nas.data.recipe.DEFAULT_PHOTO_RESOLUTION`)."""
        return self.recipe().resolution

    def recipe(self, resolution: int = 0, **options):
        """Its :class:`~nas.data.recipe.Recipe` at ``resolution`` (0: the default side);
        ``options`` as :func:`~nas.data.recipe.make_recipe`'s."""
        from .recipe import make_recipe

        return make_recipe(self.native, self.small, resolution, **options)

    def stats(self) -> Tuple[List[float], List[float]]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        return image_stats(self.train)


def _sample_order(n: int, limit: int) -> List[int]:
    """The first ``limit`` of a seeded permutation of ``range(n)`` (all of it if fewer)."""
    if n <= limit:
        return list(range(n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].tolist()


def image_stats(images, chunk: int = 0) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std in [0, 1] units: over every image of an :class:`ImageSet`
    (in chunks of about 64 MB of float64, or ``chunk`` images), over a seeded sample of
    :data:`STATS_SAMPLE` images of a file split (decoded one at a time)."""
    if hasattr(images, "first_images"):  # tar shards: the first images in file order
        return _stream_stats(images.first_images(STATS_SAMPLE, _CHECK_SIDE),
                             images.form.channels)
    if not isinstance(images, ImageSet):
        return _file_stats(images)
    c = images.images.shape[1]
    if not chunk:
        per_image = max(1, images.images[:1].numel()) * 8
        chunk = max(1, (64 << 20) // per_image)
    total = torch.zeros(c, dtype=torch.float64)
    square = torch.zeros(c, dtype=torch.float64)
    n = 0
    for start in range(0, len(images), chunk):
        x = images.images[start:start + chunk].to(torch.float64).div_(255)
        total += x.sum((0, 2, 3))
        square += x.pow(2).sum((0, 2, 3))
        n += x.numel() // c
    return _mean_std(total, square, n)


def _file_stats(files) -> Tuple[List[float], List[float]]:
    from tqdm import tqdm

    order = tqdm(_sample_order(len(files), STATS_SAMPLE), desc="mean and std", unit="img",
                 leave=False, disable=None)
    return _stream_stats((files.image(i, _CHECK_SIDE) for i in order), files.form.channels)


def _stream_stats(images, c: int) -> Tuple[List[float], List[float]]:
    """Mean and std of uint8 ``[C, H, W]`` images given one at a time."""
    total = torch.zeros(c, dtype=torch.float64)
    square = torch.zeros(c, dtype=torch.float64)
    n = 0
    for image in images:
        x = image.to(torch.float64).div_(255)
        total += x.sum((1, 2))
        square += x.pow(2).sum((1, 2))
        n += x.numel() // c
    return _mean_std(total, square, n)


def _mean_std(total: torch.Tensor, square: torch.Tensor, n: int):
    mean = total / max(n, 1)
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
    if not hasattr(data.train, "labels"):  # tar shards: labels are inside every shard
        note(f"{where}: tar shards: class balance and identical images are not checked "
             "(it would read every shard)")
        return data
    labels = data.train.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= len(data.classes)):
        raise DataError(f"{where}: labels outside 0..{len(data.classes) - 1}")
    require_classes(data.train, data.classes, f"{where}: the training split",
                    "add images of the other classes")
    if _all_identical(data.train):
        raise DataError(f"{where}: every training image is the same: no architecture can "
                        "tell the classes apart, so nothing can be ranked")
    return data


def _all_identical(split) -> bool:
    """Whether every image of ``split`` is the same. A file split is hashed one image at a
    time: a seeded sample first (different data stops there), every image only when the
    whole sample was one image."""
    if isinstance(split, ImageSet):
        images = split.images
        first = images[:1]
        return all(bool((images[s:s + 4096] == first).all())
                   for s in range(0, len(images), 4096))
    import hashlib

    def digest(i: int) -> bytes:
        try:
            return hashlib.sha1(split.image(i, _CHECK_SIDE).numpy().tobytes()).digest()
        except DataError:  # an undecodable file is for the loader to replace
            return b""

    sample = _sample_order(len(split), STATS_SAMPLE)
    seen = {digest(i) for i in sample} - {b""}
    if len(seen) != 1:
        return False
    rest = sorted(set(range(len(split))) - set(sample))
    return all(digest(i) in seen | {b""} for i in rest)


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
    if not hasattr(split, "labels"):  # tar shards: only the count is known
        if n < len(classes):
            raise DataError(f"{what} holds {n} image(s) for {len(classes)} classes; {fix}")
        return
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
    if hasattr(train, "split"):  # tar shards: a per-sample hash carve, nothing read
        rest, val = train.split(val_fraction, seed)
        if classes is not None:
            carve = f"{val_fraction:g} of {len(train)} training images"
            require_classes(val, classes, f"the validation split ({carve})",
                            "raise --val-fraction or add images")
        return rest, val
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
