"""Data sets, their recipe and the loaders that batch them.

Data sources, by the ``--data`` value:

* ``fashion-mnist`` (default): IDX files from ``$NAS_DATA_DIR``, the Debian package path
  ``/usr/share/datasets/fashion-mnist``, or the cache ``~/.cache/nas/fashion-mnist``, where
  they are downloaded (checksummed) when online;
* a directory with ``train/`` and ``test/`` subfolders, each with one folder per class of
  JPEG/PNG images (ImageFolder layout), indexed once (file list and headers);
* a ``.tar.gz`` of such a directory, extracted once into the cache first;
* a folder of tar shards in the WebDataset layout with timm's ``_info.json``
  (:mod:`nas.data.shards`; ``nas data shards`` writes one from an image folder).

Two paths behind one face (:func:`make_loader`): small images that fit a memory budget are
held in memory as uint8 tensors and batched in the training process (:class:`Loader`);
everything else is streamed, decoded per image in ``DataLoader`` workers
(:class:`~nas.data.stream.StreamLoader`). :class:`~nas.data.recipe.Recipe` says how images
become inputs (timm's names and defaults).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

from ..errors import DataError
from ..lazy import lazy_names

# The rest of the face needs torch: imported on first use, so that settings which only name
# a dataset (``data_location``) do not import it.
__getattr__, __dir__ = lazy_names(__name__, {
    "Dataset": "dataset", "ImageSet": "dataset", "cache_dir": "dataset",
    "check_dataset": "dataset", "image_stats": "dataset", "note": "dataset",
    "require_classes": "dataset", "train_val_split": "dataset",
    "load_fashion_mnist": "fashion_mnist", "read_idx": "fashion_mnist",
    "is_metadata": "index", "FileSet": "index", "load_image_folder": "image_folder",
    "Loader": "loader", "make_loader": "loader", "sample_batch": "loader", "Recipe": "recipe",
    "StreamLoader": "stream"})
if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["DataError", "Dataset", "FileSet", "ImageSet", "Loader", "Recipe", "StreamLoader",
           "cache_dir", "check_dataset", "data_location", "image_stats", "is_metadata",
           "load_dataset", "load_fashion_mnist", "load_image_folder", "make_loader", "note",
           "read_idx", "require_classes", "sample_batch", "same_data", "train_val_split",
           "DATA_MODES"]

FASHION_MNIST_NAMES = ("fashion-mnist", "fmnist", "fashion_mnist")
#: ``--data-mode``: decide by size (auto), or hold images in memory, or stream them.
DATA_MODES = ("auto", "memory", "stream")


def same_data(a: str, b: str) -> bool:
    """Whether two ``--data`` values name the same data: one of Fashion-MNIST's names each,
    or the same file or folder."""
    if a in FASHION_MNIST_NAMES or b in FASHION_MNIST_NAMES:
        return a in FASHION_MNIST_NAMES and b in FASHION_MNIST_NAMES
    return os.path.realpath(a) == os.path.realpath(b)


def data_location(spec: str) -> Optional[Tuple[str, str]]:
    """``("", path)`` when a ``--data`` value names a file or folder, None for a dataset name
    (what :class:`nas.config.Settings` needs to store the path independently of the
    working directory)."""
    return None if spec in FASHION_MNIST_NAMES or not spec else ("", spec)


def load_dataset(spec: str = "fashion-mnist", mode: str = "auto") -> Dataset:
    """``fashion-mnist``, an ImageFolder directory, or a ``.tar.gz`` of one.

    Args:
        spec: the ``--data`` value.
        mode: ``auto``, ``memory`` or ``stream`` (:data:`DATA_MODES`; Fashion-MNIST is
            always in memory).

    Raises:
        DataError: missing or malformed data, or data that cannot rank architectures
            (:func:`check_dataset`).
        UsageError: a ``mode`` the data cannot take.
    """
    from .dataset import check_dataset
    from .fashion_mnist import load_fashion_mnist
    from .image_folder import load_image_folder

    if spec in FASHION_MNIST_NAMES:
        if mode == "stream":
            from ..errors import UsageError

            raise UsageError("--data-mode stream: fashion-mnist is read from its IDX files "
                             "into memory; streaming is for image folders")
        return check_dataset(load_fashion_mnist(), "fashion-mnist")
    path = Path(spec)
    if not path.exists():
        raise DataError(f"no dataset '{spec}': use fashion-mnist, a folder with train/ and "
                        "test/ class folders, a .tar.gz of one, or a folder of tar shards "
                        "with _info.json")
    from .shards import is_shards

    if path.is_dir() and is_shards(path):
        return check_dataset(_load_shards(path, mode), str(path))
    return check_dataset(load_image_folder(path, mode), str(path))


def _load_shards(path: Path, mode: str) -> Dataset:
    from ..errors import UsageError
    from .dataset import Dataset, note
    from .shards import load_shards

    if mode == "memory":
        raise UsageError(f"--data-mode memory: {path} holds tar shards, which are streamed")
    train, test, classes, form, native, small = load_shards(path)
    line = (f"{path}: tar shards, {len(train):,} + {len(test):,} images streamed by loader "
            "workers, each torchrun rank reading its own shards")
    note(line)
    return Dataset(path.name, train, test, classes, [line], channels=form.channels,
                   native=native, small=small)
