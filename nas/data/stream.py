"""Streamed batches: image files decoded per item in ``DataLoader`` worker processes.

What a batch is depends only on ``(seed, epoch, batch index)``: the epoch's order is a
seeded permutation, and each image's augmentation is drawn from a generator seeded by
``(seed, epoch, image index)``, so the number of workers changes how fast batches come,
never what they hold, and a resumed run replays exactly.

Workers start with ``forkserver`` (``spawn`` where there is none), never ``fork``: a search
process holds database connections and threads (heartbeats, progress bars) that a forked
child would inherit half-way. The fork server imports torch and the decoders once, so each
worker starts in a fraction of a second and shares those pages.

A file that fails to decode in a worker (corrupt in the middle: indexing already skipped
unreadable headers and cut-short JPEGs) is replaced by another image of the split chosen
from its index, the same one every time, with a note naming the file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator, List, Tuple

import torch

from ..errors import DataError
from .batches import StreamedBatches, item_seed
from .decode import decode_file
from .index import FileSet
from .recipe import Recipe

__all__ = ["StreamLoader", "default_workers", "worker_context"]

_SUBSTITUTE_STRIDE = 7919  # a prime: substitutes walk the split without short cycles


def default_workers() -> int:
    """One loader worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_context = None


def worker_context():
    """``forkserver`` with torch and the decoders preloaded, else ``spawn``."""
    global _context
    if _context is None:
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            _context = multiprocessing.get_context("forkserver")
            _context.set_forkserver_preload(["torch", "torchvision.transforms.v2", "PIL.Image",
                                             "nas.data.stream"])
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


def _worker_note(message: str) -> None:
    """A note from a loader worker: its logging is not the command's, so print it."""
    from .dataset import note

    if torch.utils.data.get_worker_info() is None:
        note(message)
    else:
        print(f"nas: note: {message}", file=sys.stderr, flush=True)


class _Items(torch.utils.data.Dataset):
    """``(index, seed)`` -> ``(uint8 image [C, R, R], label)``, decoded and transformed."""

    def __init__(self, files: FileSet, recipe: Recipe, augment: bool):
        self.files, self.recipe, self.augment = files, recipe, augment
        self._transform = None
        self._bad: set = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_transform"] = None  # rebuilt in each worker
        return state

    def _image(self, index: int):
        """The decoded image of ``index`` or of its substitute, and that image's label."""
        n = len(self.files)
        min_side = self.recipe.decode_side(self.augment)
        for k in range(min(n, 64)):
            j = (index + k * _SUBSTITUTE_STRIDE) % n
            if j in self._bad:
                continue
            try:
                return decode_file(self.files.path(j), self.files.form, min_side), int(
                    self.files.labels[j])
            except DataError as e:
                self._bad.add(j)
                _worker_note(f"{e}: replaced by another image of the split (the same one "
                             "every epoch)")
        raise DataError(f"{self.files.root}: no decodable image found near index {index}")

    def __getitem__(self, key: Tuple[int, int]):
        index, seed = key
        if self._transform is None:
            self._transform = (self.recipe.train_transform() if self.augment
                               else self.recipe.eval_transform())
        # The transforms draw from torch's global generator: seed it per image, without
        # disturbing the caller's draws when this runs in the training process itself.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            img, label = self._image(index)
            x = self._transform(img)
        return x, label


class _EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(index, seed)`` keys for one epoch, from one batch index on; set with
    :meth:`set` before each pass. ``part = (rank, world)``: this process's share of every
    batch (torchrun), so each rank decodes only its own images."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int,
                 part: Tuple[int, int] = (0, 1)):
        self.n, self.batch_size, self.shuffle, self.seed, self.part = (
            n, batch_size, shuffle, seed, part)
        self.epoch = self.start = 0

    def set(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        full = self.n // self.batch_size if self.shuffle else -(-self.n // self.batch_size)
        return max(0, full - self.start)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        rank, world = self.part
        full = self.n // self.batch_size if self.shuffle else -(-self.n // self.batch_size)
        for i in range(self.start, full):
            batch = order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
            share = -(-len(batch) // world)
            yield [(j, item_seed(self.seed, self.epoch, j))
                   for j in batch[rank * share:(rank + 1) * share]]


@dataclass
class StreamLoader(StreamedBatches):
    """Batches of image files (``data``: a :class:`~nas.data.index.FileSet`), decoded and
    augmented in loader workers, normalised here; the arguments are
    :class:`~nas.data.batches.StreamedBatches`'."""

    _kept: List = field(default_factory=list, init=False, repr=False)
    _loader: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        self._sampler = _EpochBatches(len(self.data), self.batch_size, self.train, self.seed,
                                      self.part)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def _dataloader(self):
        if self._loader is None:
            workers = default_workers() if self.workers < 0 else self.workers
            workers = min(workers, len(self))  # no idle worker for a set of few batches
            options = {}
            if workers:
                options = dict(num_workers=workers, multiprocessing_context=worker_context(),
                               persistent_workers=not self.keep, prefetch_factor=4)
            self._loader = torch.utils.data.DataLoader(
                _Items(self.data, self.recipe, self.augment),
                batch_sampler=self._sampler, pin_memory=self.device.type == "cuda", **options)
        return self._loader

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Tuple[torch.Tensor,
                                                                    torch.Tensor]]:
        """Batches of epoch ``epoch``, from batch index ``start`` (exact resume)."""
        if self.keep and epoch == 0 and start < self.keep:
            yield from self._replay(start)
            return
        self._sampler.set(epoch, start)
        for i, (x, y) in enumerate(self._dataloader()):
            yield self.finish(x, y, epoch, start + i)

    def _replay(self, start: int):
        """Epoch 0 from ``start``: kept batches from memory, the rest decoded (and the first
        ``keep`` of them kept)."""
        for i in range(start, len(self._kept)):
            yield self.finish(*self._kept[i], 0, i)
        first = max(start, len(self._kept))
        if first >= len(self):
            return
        self._sampler.set(0, len(self._kept))
        for i, (x, y) in enumerate(self._dataloader(), len(self._kept)):
            if i < self.keep:
                self._kept.append((x, y))
            if i >= first:
                yield self.finish(x, y, 0, i)

