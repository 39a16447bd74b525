"""Fashion-MNIST from IDX files: ``$NAS_DATA_DIR``, the Debian package path, or the cache.

The Debian package ``dataset-fashion-mnist`` installs the files under
``/usr/share/datasets/fashion-mnist``; without it they are downloaded into
``~/.cache/nas/fashion-mnist`` when online, and checked against their SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
import zlib
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..errors import DataError
from ..files import atomic_write_bytes
from .dataset import Dataset, ImageSet, cache_dir

__all__ = ["load_fashion_mnist", "read_idx", "FMNIST_CLASSES", "DEBIAN_FMNIST"]

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_URL = os.environ.get(
    "NAS_FMNIST_URL", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
# sha256 of the *decompressed* IDX files: the data, whatever the compression.
FMNIST_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FMNIST_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                  "sneaker", "bag", "ankle boot"]

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its header against its size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: truncated or padded IDX file: {len(data)} bytes, header "
                        f"promises {expected} for shape {tuple(shape)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _fmnist_folders() -> List[Path]:
    folders = []
    if os.environ.get("NAS_DATA_DIR"):
        folders.append(Path(os.environ["NAS_DATA_DIR"]))
    return folders + [DEBIAN_FMNIST, cache_dir() / "fashion-mnist"]


def _download_fmnist(folder: Path) -> None:
    """Fetch the four IDX files into ``folder``, verifying their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, digest in FMNIST_FILES.items():
        target = folder / (stem + ".gz")
        if target.exists():
            continue
        with urllib.request.urlopen(FMNIST_URL + stem + ".gz", timeout=30) as response:
            blob = response.read()
        try:
            raw = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error):  # truncated or not gzip at all
            raw = b""
        if hashlib.sha256(raw).hexdigest() != digest:
            raise DataError(f"downloaded {stem}.gz does not match its checksum")
        atomic_write_bytes(target, blob)  # a full disk leaves no torn file behind


def load_fashion_mnist(download: bool = True) -> Dataset:
    """Fashion-MNIST from the first folder that has all four IDX files."""
    searched = _fmnist_folders()
    for folder in searched:
        paths = {stem: _find_idx(folder, stem) for stem in FMNIST_FILES}
        if all(paths.values()):
            break
        if any(paths.values()):
            missing = [s for s, p in paths.items() if p is None]
            raise DataError(f"{folder}: incomplete Fashion-MNIST, missing {', '.join(missing)}")
    else:
        folder = searched[-1]
        how = ("Install the Debian package (apt-get install dataset-fashion-mnist) or set "
               "NAS_DATA_DIR to a folder with the four IDX files.")
        if not download:
            raise DataError("Fashion-MNIST not found in " + ", ".join(map(str, searched)) +
                            ". " + how)
        try:
            _download_fmnist(folder)
        except OSError as e:
            raise DataError("Fashion-MNIST not found in " + ", ".join(map(str, searched)) +
                            f" and the download failed ({e}). " + how) from None
        paths = {stem: _find_idx(folder, stem) for stem in FMNIST_FILES}
    arrays = {stem: read_idx(path) for stem, path in paths.items()}

    def split(prefix: str) -> ImageSet:
        images = arrays[f"{prefix}-images-idx3-ubyte"]
        labels = arrays[f"{prefix}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {prefix} images {images.shape} and labels "
                            f"{labels.shape} do not match")
        if labels.max() >= len(FMNIST_CLASSES):
            raise DataError(f"{folder}: {prefix} labels outside 0..9")
        return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)))

    return Dataset("fashion-mnist", split("train"), split("t10k"), list(FMNIST_CLASSES))
