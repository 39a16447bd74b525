"""Image folders (ImageFolder layout: ``train/`` and ``test/``, one folder per class), or a
``.tar.gz`` of one (extracted once into :func:`cache_dir`).

What a data set is made of is decided from **every** image's header
(:mod:`nas.data.index`), never from the first one, and without holding the images:

* **channels**: RGB when any image has colour (greyscale ones are replicated, with a
  note), otherwise one channel. A palette image is colour only if its palette is.
* **value range**: 8-bit modes keep their values (alpha is dropped, as Pillow's
  ``convert`` does). High-bit-depth modes (16-bit ``I;16*``, 32-bit ``I`` and ``F``) are
  mapped linearly to 0..255 with **one** range for the whole dataset, from
  ``min(0, smallest value)`` to the largest value of its high-depth images, so brightness
  differences between images survive. A mode Pillow cannot convert is refused by name.
* **size and recipe**: images whose median shorter side (training split) is at most
  :data:`~nas.data.recipe.SMALL_SIDE` px keep the small-image recipe; when they differ in
  size each is resized (shorter side) and centre-cropped to that median side, with a note.
  Larger images (photos) keep their own size: the crop recipe's ``RandomResizedCrop`` and
  evaluation resize work on each image as it is, at ``--resolution`` (default: 224, or the
  median shorter side when smaller).

**Where the images live** (``mode``): small images whose decoded set fits
:func:`~nas.data.dataset.memory_budget` are decoded once into a uint8 cache and held in
memory (Fashion-MNIST, CIFAR-10); everything else is streamed from the files by loader
workers (:mod:`nas.data.stream`). The choice is noted; ``--data-mode memory|stream``
overrides it (photos cannot be held in memory: their recipe needs each whole image).

The notes are logged (logger ``nas.data``) and kept in :attr:`Dataset.notes`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..files import write_json
from .dataset import Dataset, ImageSet, cache_dir, memory_budget, note
from .decode import Form
from .index import FileSet, extract, index_files, index_key, is_metadata, list_folder
from .recipe import DEFAULT_PHOTO_RESOLUTION, SMALL_SIDE

__all__ = ["load_image_folder", "is_metadata", "MODES"]

#: ``--data-mode``: decide by size, or force one path.
MODES = ("auto", "memory", "stream")
# Bump when the decoding rules change: cached decodes of the old rules are not reused.
DECODE_RULES = "3"


def _common_form(root: Path, train: FileSet, test: FileSet, colour: np.ndarray,
                 deep: np.ndarray, notes: List[str]):
    """``(form, small, native)`` of the whole data set, from its headers."""
    n = len(colour)
    coloured = int(colour.sum())
    channels = 3 if coloured else 1
    if 0 < coloured < n:
        notes.append(f"{root}: {n - coloured} of {n} images are greyscale and the others "
                     "colour: the greyscale ones are converted to RGB")
    sizes = {tuple(s) for s in np.concatenate([train.sizes, test.sizes]).tolist()}
    native = int(statistics.median_low(train.sizes.min(axis=1).tolist()))
    small = native <= SMALL_SIDE
    side = None
    if len(sizes) > 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
        shown = sorted(sizes, key=lambda s: s[0] * s[1])
        span = (f"{shown[0][0]}x{shown[0][1]}"
                + (f" .. {shown[-1][0]}x{shown[-1][1]}" if len(shown) > 1 else ""))
        if small:
            side = native
            notes.append(f"{root}: images have {len(sizes)} size(s) ({span}): each is resized "
                         f"to a shorter side of {side} and centre-cropped to {side}x{side} (the "
                         "median shorter side of the training images)")
        else:
            notes.append(f"{root}: images have {len(sizes)} size(s) ({span}): each is cropped "
                         f"at its own size by the training recipe and trained at "
                         f"{min(native, DEFAULT_PHOTO_RESOLUTION)} px unless --resolution says "
                         "otherwise")
    value_range = None
    if len(deep):
        lo = min(0.0, float(deep[:, 0].min()))
        hi = float(deep[:, 1].max())
        value_range = (lo, hi if hi > lo else lo + 1)
        notes.append(f"{root}: {len(deep)} high-bit-depth image(s) are mapped linearly to "
                     f"0..255 from {value_range[0]:g}..{value_range[1]:g}, the range of the "
                     "dataset's high-depth images")
    return Form(channels, side, value_range), small, native


def _decode_all(files: FileSet, side: int, notes: List[str]) -> ImageSet:
    """Every image of ``files`` at ``side`` x ``side`` in memory (files that fail to decode
    are left out with a note)."""
    from tqdm import tqdm

    c = files.form.channels
    images = np.empty((len(files), side, side, c), dtype=np.uint8)
    keep, bad = [], []
    for i in tqdm(range(len(files)), desc=f"decoding {Path(files.root).name}", unit="img",
                  leave=False, disable=None):
        try:
            images[i] = files.image(i).permute(1, 2, 0).numpy()
            keep.append(i)
        except DataError as e:
            bad.append(str(e))
    if bad:
        notes.append(f"{files.root}: {len(bad)} image(s) failed to decode and are left out: "
                     + "; ".join(bad[:3]))
    index = torch.tensor(keep, dtype=torch.int64)
    return ImageSet(torch.from_numpy(images[keep]).permute(0, 3, 1, 2).contiguous(),
                    files.labels[index])


def _save_npz(path: Path, data: ImageSet) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=data.images.numpy(), labels=data.labels.numpy())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _in_memory(cache: Path, train: FileSet, test: FileSet, side: int, notes: List[str]):
    """``(train, test)`` decoded into memory, through a uint8 cache (decoded once)."""
    memory = cache / f"memory-{DECODE_RULES}"
    try:
        meta = json.loads((memory / "meta.json").read_text())
        sets = {}
        for split in ("train", "test"):
            with np.load(memory / f"{split}.npz", allow_pickle=False) as z:
                sets[split] = ImageSet(torch.from_numpy(z["images"]),
                                       torch.from_numpy(z["labels"]))
        notes.extend(meta.get("notes", []))
        return sets["train"], sets["test"]
    except (OSError, ValueError, KeyError):
        pass
    decoded: List[str] = []
    sets = {"train": _decode_all(train, side, decoded), "test": _decode_all(test, side, decoded)}
    notes.extend(decoded)
    try:
        memory.mkdir(parents=True, exist_ok=True)
        for split, data in sets.items():
            _save_npz(memory / f"{split}.npz", data)
        write_json(memory / "meta.json", {"notes": decoded})  # last: marks it complete
    except OSError as e:  # a full cache disk costs a decode next time, nothing else
        shutil.rmtree(memory, ignore_errors=True)
        notes.append(f"cannot cache the decoded images in {memory} ({e.strerror or e})")
    return sets["train"], sets["test"]


#: Folder names that are splits, not classes (the hint for a folder without train/).
_SPLIT_NAMES = {"test", "testing", "val", "valid", "validation", "training", "dev"}


def load_image_folder(path: Path, mode: str = "auto") -> Dataset:
    """An ImageFolder dataset (train/ and test/): indexed, then held in memory or streamed.

    Args:
        path: the folder, or a .tar.gz of one.
        mode: ``auto``, ``memory`` or ``stream`` (see the module docstring).

    Raises:
        DataError: no train/ or test/ folder, a class folder without images, train/ and
            test/ with other classes, too many unreadable images.
        UsageError: ``mode`` memory for photos.
    """
    if mode not in MODES:
        raise UsageError(f"--data-mode must be one of {', '.join(MODES)}, got {mode!r}")
    path = Path(path)
    root = extract(path) if path.is_file() else path
    if not (root / "train").is_dir():
        flat = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_metadata(p.name)
                      and p.name.lower() not in _SPLIT_NAMES) if root.is_dir() else []
        hint = (f"; its {len(flat)} folder(s) ({', '.join(flat[:5])}"
                f"{', ...' if len(flat) > 5 else ''}) look like classes: move them under "
                "train/ and put some images of each class under test/ (kept for the final, "
                "retrained networks)") if flat else ""
        raise DataError(f"{path}: expected train/ and test/ folders with one folder per "
                        f"class{hint}")
    notes: List[str] = []
    classes, train_items = list_folder(root / "train", notes)
    test_classes, test_items = list_folder(root / "test", notes)
    if test_classes != classes:
        only = sorted(set(classes) ^ set(test_classes))
        raise DataError(f"{root}: train/ and test/ have different class folders "
                        f"({', '.join(only)} in only one of them)")
    cache = cache_dir() / "imagefolder" / index_key(root, train_items + test_items)
    train, train_colour, train_deep = index_files(root / "train", train_items, cache / "train",
                                                  notes, "train/")
    test, test_colour, test_deep = index_files(root / "test", test_items, cache / "test",
                                               notes, "test/")
    if not len(train) or not len(test):
        raise DataError(f"{root}: no readable images in {'train/' if not len(train) else 'test/'}")
    form, small, native = _common_form(root, train, test,
                                       np.concatenate([train_colour, test_colour]),
                                       np.concatenate([train_deep, test_deep]), notes)
    train, test = replace(train, form=form), replace(test, form=form)
    side = form.side or native
    decoded = (len(train) + len(test)) * side * side * form.channels
    budget = memory_budget()
    held = mode == "memory" or (mode == "auto" and small and decoded <= budget)
    if held and not small:
        raise UsageError(f"--data-mode memory: {root} holds photos (median shorter side "
                         f"{native} px > {SMALL_SIDE}), which the training recipe crops at "
                         "their own size; use --data-mode stream (or auto)")
    count = f"{len(train) + len(test):,} images"
    if held:
        train, test = _in_memory(cache, train, test, side, notes)
        notes.append(f"{root}: {count} of {side}x{side} held in memory ({decoded / 2 ** 20:,.0f} "
                     f"MB decoded; budget {budget / 2 ** 30:.1f} GB; --data-mode stream streams "
                     "them)")
    else:
        why = ("photos: each is decoded and cropped at its own size" if not small else
               f"{decoded / 2 ** 30:.1f} GB decoded, over the {budget / 2 ** 30:.1f} GB budget"
               if mode == "auto" else "--data-mode stream")
        notes.append(f"{root}: {count} streamed from the files by loader workers ({why})")
    for line in notes:
        note(line)
    return Dataset(root.name, train, test, classes, notes, channels=form.channels,
                   native=native, small=small)

