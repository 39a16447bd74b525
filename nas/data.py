"""Datasets without torchvision: Fashion-MNIST (IDX files) and image folders (Pillow).

Images live in memory as uint8 tensors ``[N, C, H, W]``; :class:`Loader` turns them
into augmented, normalised float batches on the fly (pad-and-crop, horizontal flip,
optional resize to a proxy resolution). The validation split is carved from the
training data with a seed; the test split is kept apart and never used by search.

Data sources, by the ``--data`` value:

* ``fashion-mnist`` (default): IDX files (``.gz`` or raw) from ``$NAS_DATA_DIR``, the
  Debian package path ``/usr/share/datasets/fashion-mnist``, or the cache
  ``~/.cache/nas/fashion-mnist``, where they are downloaded (checksummed) when online.
* a directory with ``train/`` and ``test/`` subfolders, each with one folder per
  class of JPEG/PNG images (ImageFolder layout); decoded once into a uint8 cache.
* a ``.tar.gz`` of such a directory: extracted once into the cache first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DataError", "ImageSet", "Dataset", "Loader", "load_dataset", "cache_dir", "image_stats",
           "read_idx", "train_val_split", "load_fashion_mnist", "load_image_folder"]

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
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


class DataError(ValueError):
    """Missing or malformed data; the message says what and how to fix it."""


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


# ------------------------------------------------------------------ IDX (Fashion-MNIST)
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
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, target)


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
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {prefix} images {images.shape} and labels "
                            f"{labels.shape} do not match")
        if labels.max() >= len(FMNIST_CLASSES):
            raise DataError(f"{folder}: {prefix} labels outside 0..9")
        return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)))

    return Dataset("fashion-mnist", split("train"), split("t10k"), list(FMNIST_CLASSES))


# ------------------------------------------------------------------ image folders
def _extract(archive: Path) -> Path:
    """Extract a .tar.gz into the cache once; returns the folder holding train/ and test/."""
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_dir() / "extracted" / key.hexdigest()[:16]
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{archive}: cannot extract ({e})") from None
        (target / ".complete").touch()
    for candidate in [target, *sorted(p for p in target.iterdir() if p.is_dir())]:
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{archive}: no train/ folder inside")


def _list_folder(root: Path) -> Tuple[List[str], List[Tuple[Path, int]]]:
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (expected one folder per class)")
    items = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{root / name}: class folder has no images (.jpg/.png)")
        items += [(p, index) for p in files]
    return classes, items


def _decode_folder(root: Path, classes: List[str], items, size: Tuple[int, int],
                   mode: str) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    from tqdm import tqdm

    channels = 1 if mode == "L" else 3
    images = np.empty((len(items), size[1], size[0], channels), dtype=np.uint8)
    for i, (path, _) in enumerate(tqdm(items, desc=f"decoding {root.name}", unit="img",
                                       leave=False, disable=None)):
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if img.size != size:
                    img = img.resize(size, Image.BILINEAR)
                images[i] = np.asarray(img).reshape(size[1], size[0], channels)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path}: cannot decode image ({e})") from None
    labels = np.array([label for _, label in items], dtype=np.int64)
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                    torch.from_numpy(labels))


def load_image_folder(path: Path) -> Dataset:
    """An ImageFolder dataset (train/ and test/), decoded once into a uint8 cache."""
    path = Path(path)
    root = _extract(path) if path.is_file() else path
    if not (root / "train").is_dir():
        raise DataError(f"{root}: expected train/ and test/ folders with one folder per class")
    classes, train_items = _list_folder(root / "train")
    test_classes, test_items = _list_folder(root / "test")
    if test_classes != classes:
        raise DataError(f"{root}: train/ and test/ have different class folders")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(train_items[0][0]) as first:
            size, mode = first.size, ("L" if first.mode in ("L", "1", "I;16") else "RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{train_items[0][0]}: cannot decode image ({e})") from None
    listing = "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                        for p, _ in train_items + test_items)
    key = hashlib.sha256(f"{root.resolve()}|{size}|{mode}|{listing}".encode()).hexdigest()[:16]
    cache = cache_dir() / "imagefolder" / key
    sets = {}
    if (cache / "meta.json").exists():
        for split in ("train", "test"):
            with np.load(cache / f"{split}.npz", allow_pickle=False) as z:
                sets[split] = ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]))
    else:
        sets["train"] = _decode_folder(root / "train", classes, train_items, size, mode)
        sets["test"] = _decode_folder(root / "test", classes, test_items, size, mode)
        cache.mkdir(parents=True, exist_ok=True)
        for split, data in sets.items():
            fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=data.images.numpy(), labels=data.labels.numpy())
            os.replace(tmp, cache / f"{split}.npz")
        (cache / "meta.json").write_text(json.dumps({"root": str(root), "classes": classes}))
    return Dataset(root.name, sets["train"], sets["test"], classes)


def load_dataset(spec: str = "fashion-mnist") -> Dataset:
    """``fashion-mnist``, an ImageFolder directory, or a ``.tar.gz`` of one."""
    if spec in ("fashion-mnist", "fmnist", "fashion_mnist"):
        return load_fashion_mnist()
    path = Path(spec)
    if not path.exists():
        raise DataError(f"no dataset '{spec}': use fashion-mnist, a folder with train/ and "
                        "test/ class folders, or a .tar.gz of one")
    return load_image_folder(path)


def train_val_split(train: ImageSet, val_fraction: float = 0.1,
                    seed: int = 0) -> Tuple[ImageSet, ImageSet]:
    """Carve a seeded validation split out of the training data (search never sees test)."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {val_fraction}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(train) * val_fraction)))
    return train.subset(order[n_val:]), train.subset(order[:n_val])


# ------------------------------------------------------------------ batches
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
