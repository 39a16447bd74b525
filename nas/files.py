"""Atomic files and checkpoints.

Every file nas writes that a killed process could leave half-written goes through
:func:`atomic_write_bytes` (temp file in the same directory, fsync, rename), so a reader
sees the old file or the new one, never a torn one. Checkpoints are read with
``torch.load(weights_only=True)``: tensors and plain containers only. A write that fails
(a full disk, a file size limit, a read-only file system) raises an :class:`OSError` that
names the file, which the command line prints as one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

from .errors import CheckpointError, RunError

__all__ = ["shell_path", "append_each", "append_csv_row", "read_csv_rows", "remove_path",
           "atomic_write_bytes", "write_json", "read_json", "tensor_bytes", "save_checkpoint",
           "load_checkpoint", "resume_state", "naming", "AppendLog", "all_or_nothing"]


def shell_path(path) -> str:
    """A path as it must be typed into a shell (and not be taken for an option): what the
    commands nas prints for the user to run next quote their paths with."""
    text = str(path)
    return shlex.quote("./" + text if text.startswith("-") else text)


@contextlib.contextmanager
def all_or_nothing(paths: Iterable) -> Iterator[None]:
    """Files that belong together (an export): when the block fails, those of ``paths`` it
    wrote are removed again, so a reader finds all of them or none of the new ones."""
    def stamp(path: Path):
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    paths = [Path(p) for p in paths]
    before = {p: stamp(p) for p in paths}
    try:
        yield
    except BaseException:
        for p in paths:
            now = stamp(p)
            if now is not None and now != before[p]:  # written (replaced) by the block
                remove_path(p)
        raise


def remove_path(path: Path) -> None:
    """Remove a file, or a folder with what it holds (Core ML's ``model.mlpackage``)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def naming(error: OSError, path) -> OSError:
    """``error`` with ``path`` as its file when it names none (a failed ``write`` does not)."""
    if error.filename is not None:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))


class AppendLog:
    """A JSON-lines log opened for appending; a failed write names the file."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a")
        except OSError as e:
            raise naming(e, self.path) from None

    def write(self, record: Any) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise naming(e, self.path) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # what did not reach the disk was reported by write()
            pass


def append_csv_row(path, row: Dict[str, Any]) -> None:
    """Append one CSV line under an exclusive lock, so that several processes can share the
    file: a header first when the file is empty, else the row in the existing header's
    order. Raises :class:`~nas.errors.RunError` naming the file when the row's columns
    are not the header's; an ``OSError`` names the path."""
    import csv
    import fcntl

    try:
        with open(path, "a+", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            # the size only now: another process may have written while this one waited
            empty = os.fstat(f.fileno()).st_size == 0
            if empty:
                columns = list(row)
            else:
                f.seek(0)
                columns = next(csv.reader(f), [])
                if sorted(columns) != sorted(row):
                    raise RunError(f"{path}: its columns are {', '.join(columns)}; this row "
                                     f"has {', '.join(row)}")
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns)
            if empty:
                writer.writeheader()
            writer.writerow(row)
            f.write(buffer.getvalue())  # "a+": writes go to the end whatever the position
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise naming(e, path) from None


def append_each(path, items: Iterable[Any], key: Callable[[Any], Any],
                make: Callable[[Any], Dict[str, Any]], rows: List[Dict[str, Any]],
                row_key: Callable[[Dict[str, Any]], Any],
                then: Optional[Callable[[Any], None]] = None) -> List[Dict[str, Any]]:
    """The loop of the studies that train many networks (``nas diagnose``, ``nas
    reference``, the re-ranking): for each item whose ``key`` no row has yet (``rows``: those
    ``path`` holds, read by the caller; ``row_key``: a row's key), ``make(item)`` (a
    training, resumed from its checkpoint) gives its row, appended to ``path`` at once
    (:func:`append_csv_row`, so processes may share the file). A killed study, rerun,
    continues after its last finished item; ``then(item)`` runs once the row is on file
    (e.g. to delete the training's folder). Returns ``rows`` with the new ones."""
    done = {row_key(r) for r in rows}
    for item in items:
        if key(item) in done:
            continue
        row = make(item)
        append_csv_row(path, row)
        rows.append(row)
        done.add(key(item))
        if then is not None:
            then(item)
    return rows


def read_csv_rows(path) -> List[Dict[str, str]]:
    """The rows of a CSV file that :func:`append_csv_row` writes, read under a shared lock
    (never half a row); ``[]`` when the file does not exist."""
    import csv
    import fcntl

    try:
        with open(path, newline="") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise naming(e, path) from None


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # make the rename itself durable
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise naming(e, path) from None
        raise


def write_json(path, data: Any) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path, what: str = "JSON file") -> Any:
    """Parse ``path``; a missing or malformed file is a :class:`CheckpointError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a valid {what} ({e})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tensor_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into bytes (for :func:`atomic_write_bytes`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(obj: Dict[str, Any], path) -> None:
    atomic_write_bytes(path, tensor_bytes(obj))


def load_checkpoint(path, expected_format: str) -> Dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` whose ``format`` is ``expected_format``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} checkpoint")
    return obj


def resume_state(path, expected_format: str, resume: bool) -> Optional[Dict[str, Any]]:
    """The checkpoint to continue from (``resume``), or None for a fresh run.

    A fresh run refuses to overwrite a directory that already holds a checkpoint, and
    ``resume`` without one is an error: either way the user's work is never lost.
    """
    path = Path(path)
    if resume:
        if not path.exists():
            raise CheckpointError(f"{path.parent}: nothing to resume (no {path.name}); "
                                  "run without --resume")
        return load_checkpoint(path, expected_format)
    if path.exists():
        raise CheckpointError(f"{path.parent} already holds a run ({path.name}); pass "
                              "--resume to continue it or choose another -o")
    return None
