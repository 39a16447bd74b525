"""Datasets without torchvision, and the loader that batches them.

Images live in memory as uint8 tensors ``[N, C, H, W]``; :class:`Loader` turns them into
augmented, normalised float batches on the fly. Data sources, by the ``--data`` value:

* ``fashion-mnist`` (default): IDX files from ``$NAS_DATA_DIR``, the Debian package path
  ``/usr/share/datasets/fashion-mnist``, or the cache ``~/.cache/nas/fashion-mnist``, where
  they are downloaded (checksummed) when online;
* a directory with ``train/`` and ``test/`` subfolders, each with one folder per class of
  JPEG/PNG images (ImageFolder layout), decoded once into a uint8 cache;
* a ``.tar.gz`` of such a directory, extracted once into the cache first.
"""

from __future__ import annotations

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
    "is_metadata": "image_folder", "load_image_folder": "image_folder",
    "Loader": "loader"})
if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["DataError", "Dataset", "ImageSet", "Loader", "cache_dir", "check_dataset",
           "data_location", "image_stats", "is_metadata", "load_dataset", "load_fashion_mnist",
           "load_image_folder", "note", "read_idx", "require_classes", "train_val_split"]

FASHION_MNIST_NAMES = ("fashion-mnist", "fmnist", "fashion_mnist")


def data_location(spec: str) -> Optional[Tuple[str, str]]:
    """``("", path)`` when a ``--data`` value names a file or folder, None for a dataset name
    (what :class:`nas.config.Settings` needs to store the path independently of the
    working directory)."""
    return None if spec in FASHION_MNIST_NAMES or not spec else ("", spec)


def load_dataset(spec: str = "fashion-mnist") -> Dataset:
    """``fashion-mnist``, an ImageFolder directory, or a ``.tar.gz`` of one.

    Raises:
        DataError: missing or malformed data, or data that cannot rank architectures
            (:func:`check_dataset`).
    """
    from .dataset import check_dataset
    from .fashion_mnist import load_fashion_mnist
    from .image_folder import load_image_folder

    if spec in FASHION_MNIST_NAMES:
        return check_dataset(load_fashion_mnist(), "fashion-mnist")
    path = Path(spec)
    if not path.exists():
        raise DataError(f"no dataset '{spec}': use fashion-mnist, a folder with train/ and "
                        "test/ class folders, or a .tar.gz of one")
    return check_dataset(load_image_folder(path), str(path))
