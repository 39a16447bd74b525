"""Image folders (ImageFolder layout: ``train/`` and ``test/``, one folder per class), or a
``.tar.gz`` of one, decoded once with Pillow into a uint8 cache under :func:`cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset, ImageSet, cache_dir

__all__ = ["load_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


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
