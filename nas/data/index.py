"""An index of an image folder: files, labels and what each file's header says.

Listing a folder and reading each file's header is the only work that grows with the
number of images before training starts: a JPEG's header is read without decoding its
pixels. The index is cached (keyed by every file's path, size and modification time), so
a second command on the same folder lists the files and reads nothing else.

Listing rules (folders and archives alike): hidden files and folders (a leading dot:
``.ipynb_checkpoints/``, ``.DS_Store``, macOS's ``._name`` AppleDouble files) and the
metadata operating systems and archivers leave (``__MACOSX/``, ``Thumbs.db``,
``desktop.ini``, ``@eaDir/``, ...) are not data. Images in sub-folders of a class folder
belong to that class (as torchvision's ``ImageFolder``); other files are skipped with a
note. A file whose header cannot be read, or a JPEG cut short (no end-of-image marker, as
ultralytics checks), is skipped with a note naming it; more than
:data:`MAX_UNREADABLE` of a split is refused.

What each header says (:class:`FileSet` keeps it as arrays, not objects, so the index of a
million images is tens of megabytes): the size, whether the image has colour (a palette
image only if its palette does) and, for high-bit-depth images (16-bit ``I;16*``, 32-bit
``I`` and ``F``), their value range, which needs the pixels: those files are decoded one
at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from ..files import write_json
from .dataset import cache_dir, note
from .decode import GREY_MODES, HIGH_DEPTH_MODES, Form, open_image

__all__ = ["FileSet", "IMAGE_SUFFIXES", "is_metadata", "extract", "list_folder", "index_files",
           "MAX_UNREADABLE", "index_key"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm", ".pbm", ".pnm"}
# Left by operating systems, file managers, NAS boxes and archivers; never data.
SYSTEM_NAMES = {"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "@eadir",
                "$recycle.bin", "system volume information", "lost+found", "icon\r"}
#: The share of a split's files that may be unreadable (skipped with a note) before the
#: split is refused: more suggests the folder is not what the user thinks it is.
MAX_UNREADABLE = 0.05
# Bump when the indexing rules change: cached indexes of the old rules are not reused.
INDEX_RULES = "1"


def is_metadata(name: str) -> bool:
    """Whether a directory entry is a hidden or system file rather than data."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def extract(archive: Path) -> Path:
    """Extract a .tar.gz into the cache once; returns the folder holding train/ and test/.

    Processes that open the same archive at once (torchrun's ranks, ``--workers``) take
    turns on a lock beside the cache entry: one extracts, into a private folder renamed
    into place when whole, and the others wait and use its entry. Whoever holds the lock
    next removes what a killed extraction left (the kernel releases a dead process's lock).

    Raises:
        DataError: not an archive, or it cannot be read or extracted (a full disk).
    """
    if not tarfile.is_tarfile(archive):
        raise DataError(f"{archive}: not a data folder, nor a .tar.gz of one (an ImageFolder "
                        "with train/ and test/ folders of one folder per class)")
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_dir() / "extracted" / key.hexdigest()[:16]
    if not (target / ".complete").exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target.with_name(target.name + "-lock"), "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    note(f"{archive}: another process is extracting it into {target}; "
                         "waiting for it")
                    fcntl.flock(lock, fcntl.LOCK_EX)
                if not (target / ".complete").exists():
                    note(f"{archive}: extracting into {target} (once; later runs reuse it)")
                    _extract_into(archive, target)
        except (tarfile.TarError, OSError, EOFError) as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"{archive}: cannot extract into {target} ({why})") from None
    candidates = [target, *sorted(p for p in target.iterdir()
                                  if p.is_dir() and not is_metadata(p.name))]
    for candidate in candidates:
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{archive}: no train/ folder inside")


def _extract_into(archive: Path, target: Path) -> None:
    """Under the lock: clear what a killed extraction left of ``target`` (a part folder, or
    an earlier version's entry extracted in place without its marker), extract ``archive``
    to a fresh part folder and rename it to ``target``."""
    for stale in [target, *target.parent.glob(f"{target.name}.part*")]:
        shutil.rmtree(stale, ignore_errors=True)
    part = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}.part"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(part, filter="data")
        (part / ".complete").touch()
        os.rename(part, target)
    finally:
        shutil.rmtree(part, ignore_errors=True)  # nothing half-extracted stays


def _images_under(folder: Path, skipped: Dict[str, int]) -> List[Path]:
    """Image files under ``folder`` (sub-folders included, metadata pruned), sorted."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not is_metadata(d)]
        for name in files:
            if is_metadata(name):
                continue
            path = Path(here) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                found.append(path)
            else:
                skipped[suffix or "(no suffix)"] = skipped.get(suffix or "(no suffix)", 0) + 1
    return sorted(found)


def list_folder(root: Path, notes: List[str]) -> Tuple[List[str], List[Tuple[Path, int]]]:
    """``(class names, [(file, label)])`` of one split folder (one folder per class).

    Raises:
        DataError: no such folder, no class folders, a class folder without images.
    """
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


def _is_colour(img) -> bool:
    if img.mode in GREY_MODES:
        return False
    if img.mode in ("P", "PA"):
        palette = img.getpalette("RGB") or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2]
                   for i in range(0, len(palette) - 2, 3))
    return True


def _jpeg_complete(path: Path) -> bool:
    """Whether a JPEG file ends with its end-of-image marker (a cut-short download or copy
    does not; Pillow would fail on it only when the pixels are decoded)."""
    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        return f.read(2) == b"\xff\xd9"


def _header(path: Path) -> Optional[tuple]:
    """``(width, height, colour, lo, hi)`` of one file (lo/hi NaN unless high-depth), or a
    string saying why it cannot be used."""
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as img:
            if img.format == "JPEG" and not _jpeg_complete(path):
                return "a JPEG cut short (no end-of-image marker)"
            lo = hi = float("nan")
            if img.mode in HIGH_DEPTH_MODES:
                lo, hi = (float(v) for v in img.getextrema())  # decodes: high-depth only
            return (img.size[0], img.size[1], _is_colour(img), lo, hi)
    except DataError as e:
        return str(e).split(": ", 1)[-1]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return f"cannot decode image ({e})"


@dataclass
class FileSet:
    """Images as files: paths (relative to ``root``, packed in one byte array), labels and
    header facts, index-aligned. Subsets share the path bytes.

    Attributes:
        root: the split's folder.
        blob: the relative paths, UTF-8, concatenated.
        starts, ends: each path's byte range in ``blob`` (int64 ``[N]``).
        labels: class indices (int64 tensor ``[N]``).
        sizes: ``(width, height)`` per image (int32 ``[N, 2]``).
        form: the common form its images are decoded to (set once the whole data set's
            headers are known).
    """

    root: str
    blob: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    labels: "object"  # torch.Tensor; typed loosely so this module needs no torch at import
    sizes: np.ndarray
    form: Optional[Form] = None

    def __len__(self) -> int:
        return len(self.starts)

    def path(self, i: int) -> str:
        rel = self.blob[self.starts[i]:self.ends[i]].tobytes().decode()
        return os.path.join(self.root, rel)

    def subset(self, index) -> "FileSet":
        index = np.asarray(index, dtype=np.int64)
        return FileSet(self.root, self.blob, self.starts[index], self.ends[index],
                       self.labels[index], self.sizes[index], self.form)

    def image(self, i: int, min_side: int = 0):
        """Image ``i`` in the common form, as uint8 ``[C, H, W]`` (decoded now).

        Raises:
            DataError: the file cannot be decoded.
        """
        import torch

        from .decode import decode_file

        img = decode_file(self.path(i), self.form, min_side)
        array = np.asarray(img).reshape(img.size[1], img.size[0], self.form.channels)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)



def _pack(root: Path, paths: Sequence[Path]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    encoded = [os.path.relpath(p, root).encode() for p in paths]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    ends = np.cumsum(lengths)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends - lengths, ends


def index_key(root: Path, items: Sequence[Tuple[Path, int]]) -> str:
    """The cache key of a listing: every file's path, size and modification time."""
    digest = hashlib.sha256(f"{root.resolve()}|{INDEX_RULES}".encode())
    for path, label in items:
        stat = path.stat()
        digest.update(f"\n{path}:{label}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def index_files(root: Path, items: Sequence[Tuple[Path, int]], cache: Optional[Path],
                notes: List[str], what: str):
    """Read every file's header once (cached in ``cache``): ``(FileSet, colour flags, high-
    depth (lo, hi) pairs)`` of the readable files, in listing order.

    Raises:
        DataError: more than :data:`MAX_UNREADABLE` of the files cannot be read.
    """
    import torch

    cached = _load_cached(cache) if cache is not None else None
    if cached is None:
        from tqdm import tqdm

        heads = [_header(p) for p, _ in tqdm(items, desc=f"reading headers of {what}",
                                              unit="img", leave=False, disable=None)]
        bad = [(str(p), why) for (p, _), why in zip(items, heads) if isinstance(why, str)]
        keep = [i for i, h in enumerate(heads) if not isinstance(h, str)]
        facts = np.array([heads[i] for i in keep], dtype=np.float64).reshape(-1, 5)
        labels = np.array([items[i][1] for i in keep], dtype=np.int64)
        blob, starts, ends = _pack(root, [items[i][0] for i in keep])
        if cache is not None:
            _save_cached(cache, blob, starts, ends, labels, facts, bad)
    else:
        blob, starts, ends, labels, facts, bad = cached
    if bad:
        shown = "; ".join(f"{path}: {why}" for path, why in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        if len(bad) > MAX_UNREADABLE * len(items):
            raise DataError(f"{root}: {len(bad)} of {len(items)} images cannot be read, more "
                            f"than {MAX_UNREADABLE:.0%}: {shown}{more}")
        notes.append(f"{root}: {len(bad)} of {len(items)} images cannot be read and are "
                     f"skipped: {shown}{more}")
    files = FileSet(str(root), blob, starts, ends, torch.from_numpy(labels),
                    facts[:, :2].astype(np.int32))
    deep = facts[~np.isnan(facts[:, 3]), 3:5]
    return files, facts[:, 2].astype(bool), deep


def _save_cached(cache: Path, blob, starts, ends, labels, facts, bad) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".index.{os.getpid()}.npz"
        np.savez(tmp, blob=blob, starts=starts, ends=ends, labels=labels, facts=facts)
        os.replace(tmp, cache / "index.npz")
        write_json(cache / "index.json", {"unreadable": bad})  # last: marks it complete
    except OSError:  # a full cache disk costs a header pass next time, nothing else
        pass


def _load_cached(cache: Path):
    try:
        bad = json.loads((cache / "index.json").read_text())["unreadable"]
        with np.load(cache / "index.npz", allow_pickle=False) as z:
            return (z["blob"], z["starts"], z["ends"], z["labels"], z["facts"],
                    [tuple(b) for b in bad])
    except (OSError, ValueError, KeyError, TypeError):
        return None
