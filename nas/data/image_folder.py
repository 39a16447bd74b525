"""Image folders (ImageFolder layout: ``train/`` and ``test/``, one folder per class), or a
``.tar.gz`` of one, decoded once with Pillow into a uint8 cache under :func:`cache_dir`.

What a dataset is made of is decided from **every** image, never from the first one:

* **entries**: hidden files and folders (a leading dot: ``.ipynb_checkpoints/``,
  ``.DS_Store``, macOS's ``._name`` AppleDouble files) and the metadata operating systems
  and archivers leave (``__MACOSX/``, ``Thumbs.db``, ``desktop.ini``, ``@eaDir/``, ...) are
  not data, in folders and archives alike. Images in sub-folders of a class folder belong
  to that class (as torchvision's ``ImageFolder``); other files are skipped with a note.
* **channels**: RGB when any image has colour (greyscale ones are replicated, with a
  note), otherwise one channel. A palette image is colour only if its palette is.
* **value range**: 8-bit modes keep their values (alpha is dropped, as Pillow's
  ``convert`` does). High-bit-depth modes (16-bit ``I;16*``, 32-bit ``I`` and ``F``) are
  mapped linearly to 0..255 with **one** range for the whole dataset, from
  ``min(0, smallest value)`` to the largest value of its high-depth images, so brightness
  differences between images survive. A mode Pillow cannot convert is refused by name.
* **size**: kept when every image has the same square size. Otherwise every image is
  resized (bilinear, antialiased) so its shorter side is ``S`` and centre-cropped to
  ``S x S``, with ``S`` the median shorter side of the training images (the usual
  resize-and-centre-crop of image classification), with a note.

The notes are logged (logger ``nas.data``) and kept in :attr:`Dataset.notes`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import DataError
from ..files import write_json
from .dataset import Dataset, ImageSet, cache_dir, note

__all__ = ["load_image_folder", "IMAGE_SUFFIXES", "is_metadata"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm", ".pbm", ".pnm"}
# Left by operating systems, file managers, NAS boxes and archivers; never data.
SYSTEM_NAMES = {"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "@eadir",
                "$recycle.bin", "system volume information", "lost+found", "icon\r"}
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
# Bump when the decoding rules change: cached decodes of the old rules are not reused.
DECODE_RULES = "2"


def is_metadata(name: str) -> bool:
    """Whether a directory entry is a hidden or system file rather than data."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def _extract(archive: Path) -> Path:
    """Extract a .tar.gz into the cache once; returns the folder holding train/ and test/."""
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_dir() / "extracted" / key.hexdigest()[:16]
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)  # a half-done extraction of a killed run
        try:
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
            (target / ".complete").touch()
        except (tarfile.TarError, OSError, EOFError) as e:
            shutil.rmtree(target, ignore_errors=True)  # nothing half-extracted stays
            raise DataError(f"{archive}: cannot extract into {target} ({e})") from None
    candidates = [target, *sorted(p for p in target.iterdir()
                                  if p.is_dir() and not is_metadata(p.name))]
    for candidate in candidates:
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{archive}: no train/ folder inside")


def _images_under(folder: Path, skipped: Dict[str, int]) -> List[Path]:
    """Image files under ``folder`` (sub-folders included, metadata pruned), sorted."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not is_metadata(d)]
        for name in files:
            if is_metadata(name):
                continue
            path = Path(here) / name
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
            else:
                skipped[path.suffix.lower() or "(no suffix)"] = skipped.get(
                    path.suffix.lower() or "(no suffix)", 0) + 1
    return sorted(found)


def _list_folder(root: Path, notes: List[str]) -> Tuple[List[str], List[Tuple[Path, int]]]:
    if not root.is_dir():
        raise DataError(f"{root}: no such image folder")
    entries = [p for p in root.iterdir() if not is_metadata(p.name)]
    classes = sorted(p.name for p in entries if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (expected one folder per class)")
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        notes.append(f"{root}: {len(loose)} image(s) outside the class folders are not used "
                     f"(e.g. {loose[0].name})")
    items: List[Tuple[Path, int]] = []
    skipped: Dict[str, int] = {}
    for index, name in enumerate(classes):
        files = _images_under(root / name, skipped)
        if not files:
            raise DataError(f"{root / name}: class folder has no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        items += [(p, index) for p in files]
    if skipped:
        what = ", ".join(f"{n} {s}" for s, n in sorted(skipped.items()))
        notes.append(f"{root}: files that are not images are skipped ({what})")
    return classes, items


@dataclass
class _Header:
    """What the whole-dataset decisions need to know of one image."""

    size: Tuple[int, int]
    colour: bool
    extrema: Optional[Tuple[float, float]]  # high-depth images only


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None


def _is_colour(img) -> bool:
    if img.mode in GREY_MODES:
        return False
    if img.mode in ("P", "PA"):
        palette = img.getpalette("RGB") or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2]
                   for i in range(0, len(palette) - 2, 3))
    return True


def _header(path: Path) -> _Header:
    from PIL import UnidentifiedImageError

    with _open(path) as img:
        try:
            extrema = None
            if img.mode in HIGH_DEPTH_MODES:
                lo, hi = img.getextrema()  # decodes: only for high-depth images
                extrema = (float(lo), float(hi))
            return _Header(img.size, _is_colour(img), extrema)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{path}: cannot decode image ({e})") from None


@dataclass(frozen=True)
class _Form:
    """The common form every image is decoded to."""

    channels: int
    side: Optional[int]  # None: every image already has one square size
    value_range: Optional[Tuple[float, float]]  # of the high-depth images


def _common_form(root: Path, train: List[_Header], test: List[_Header],
                 notes: List[str]) -> _Form:
    every = train + test
    colour = sum(h.colour for h in every)
    channels = 3 if colour else 1
    if 0 < colour < len(every):
        notes.append(f"{root}: {len(every) - colour} of {len(every)} images are greyscale "
                     "and the others colour: the greyscale ones are converted to RGB")
    sizes = {h.size for h in every}
    side = None
    if len(sizes) > 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
        side = int(statistics.median_low(min(h.size) for h in train))
        shown = sorted(sizes, key=lambda s: s[0] * s[1])
        notes.append(f"{root}: images have {len(sizes)} size(s) ({shown[0][0]}x{shown[0][1]}"
                     + (f" .. {shown[-1][0]}x{shown[-1][1]}" if len(shown) > 1 else "")
                     + f"): each is resized to a shorter side of {side} and centre-cropped "
                     f"to {side}x{side} (the median shorter side of the training images)")
    deep = [h.extrema for h in every if h.extrema is not None]
    value_range = None
    if deep:
        lo = min(0.0, min(e[0] for e in deep))
        hi = max(e[1] for e in deep)
        value_range = (lo, hi if hi > lo else lo + 1)
        notes.append(f"{root}: {len(deep)} high-bit-depth image(s) are mapped linearly to "
                     f"0..255 from {value_range[0]:g}..{value_range[1]:g}, the range of the "
                     "dataset's high-depth images")
    return _Form(channels, side, value_range)


def _to_form(img, form: _Form):
    """``img`` (a Pillow image) in the common form, as a Pillow image of mode L or RGB."""
    from PIL import Image

    if img.mode in HIGH_DEPTH_MODES:
        lo, hi = form.value_range
        values = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint((values - lo) * (255.0 / (hi - lo))), 0, 255)
                              .astype(np.uint8), mode="L")
    if img.mode == "La":  # premultiplied alpha: Pillow converts it only via LA
        img = img.convert("LA")
    img = img.convert("RGB" if form.channels == 3 else "L")
    if form.side is not None and img.size != (form.side, form.side):
        w, h = img.size
        scale = form.side / min(w, h)
        new = (max(form.side, round(w * scale)), max(form.side, round(h * scale)))
        img = img.resize(new, Image.BILINEAR)
        left, top = (new[0] - form.side) // 2, (new[1] - form.side) // 2
        img = img.crop((left, top, left + form.side, top + form.side))
    return img


def _decode(root: Path, items, form: _Form, side: int) -> ImageSet:
    from PIL import UnidentifiedImageError
    from tqdm import tqdm

    c = form.channels
    images = np.empty((len(items), side, side, c), dtype=np.uint8)
    for i, (path, _) in enumerate(tqdm(items, desc=f"decoding {root.name}", unit="img",
                                       leave=False, disable=None)):
        with _open(path) as img:
            try:
                images[i] = np.asarray(_to_form(img, form)).reshape(side, side, c)
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise DataError(f"{path}: cannot decode image mode {img.mode!r} ({e})") from None
    labels = np.array([label for _, label in items], dtype=np.int64)
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                    torch.from_numpy(labels))


def _cached_meta(cache: Path) -> Optional[dict]:
    try:
        meta = json.loads((cache / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _save_npz(path: Path, data: ImageSet) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=data.images.numpy(), labels=data.labels.numpy())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_image_folder(path: Path) -> Dataset:
    """An ImageFolder dataset (train/ and test/), decoded once into a uint8 cache.

    Raises:
        DataError: no train/ or test/ folder, a class folder without images, train/ and
            test/ with other classes, an image Pillow cannot decode or convert.
    """
    path = Path(path)
    root = _extract(path) if path.is_file() else path
    if not (root / "train").is_dir():
        raise DataError(f"{root}: expected train/ and test/ folders with one folder per class")
    notes: List[str] = []
    classes, train_items = _list_folder(root / "train", notes)
    test_classes, test_items = _list_folder(root / "test", notes)
    if test_classes != classes:
        only = sorted(set(classes) ^ set(test_classes))
        raise DataError(f"{root}: train/ and test/ have different class folders "
                        f"({', '.join(only)} in only one of them)")
    listing = "\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                        for p, _ in train_items + test_items)
    key = hashlib.sha256(f"{root.resolve()}|{DECODE_RULES}|{listing}".encode()).hexdigest()[:16]
    cache = cache_dir() / "imagefolder" / key
    sets = {}
    meta = _cached_meta(cache)
    if meta is not None:
        notes = list(meta.get("notes", []))
        for split in ("train", "test"):
            with np.load(cache / f"{split}.npz", allow_pickle=False) as z:
                sets[split] = ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]))
    else:
        headers = {split: [_header(p) for p, _ in items]
                   for split, items in (("train", train_items), ("test", test_items))}
        form = _common_form(root, headers["train"], headers["test"], notes)
        side = form.side or headers["train"][0].size[0]
        sets["train"] = _decode(root / "train", train_items, form, side)
        sets["test"] = _decode(root / "test", test_items, form, side)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            for split, data in sets.items():
                _save_npz(cache / f"{split}.npz", data)
            # Written last and atomically: it marks the cache complete.
            write_json(cache / "meta.json", {"root": str(root), "classes": classes,
                                             "notes": notes})
        except OSError as e:  # a full cache disk costs a decode next time, nothing else
            shutil.rmtree(cache, ignore_errors=True)
            notes.append(f"cannot cache the decoded images in {cache} ({e.strerror or e})")
    for line in notes:
        note(line)
    return Dataset(root.name, sets["train"], sets["test"], classes, notes)
