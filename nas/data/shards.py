"""Tar shards in the WebDataset layout, for data sets that outgrow one disk or machine.

The layout is the one timm, OpenCLIP and WebDataset read: a folder of ``.tar`` files, each
a sequence of samples whose members share a key (``000123.jpg`` + ``000123.cls``, the class
index as text), and ``_info.json`` (timm's name and fields) listing each split's shard
files and their sample counts::

    {"classes": ["ant", "bee"],
     "splits": {"train": {"num_samples": N, "filenames": [...], "shard_lengths": [...]},
                "test":  {...}},
     "nas": {"channels": 3, "native": 375, "small": false}}

``classes`` and ``nas`` (what a header pass of an image folder gives: channels, median
shorter side, whether the small-image recipe applies) are nas's additions; without them
images are read as RGB photos. :func:`write_shards` (``nas data shards``) writes the layout
from an image folder.

Reading (:class:`ShardLoader`): torchrun rank ``r`` of ``W`` reads the shards ``r, r + W,
...`` of each epoch's seeded shard order, and its loader workers split those again; each
reads its shards sequentially (tar is a stream: no index, no random access), shuffles
samples in a seeded buffer and batches them. To keep the gradient all-reduce in step, every
rank and worker yields the same number of whole batches per epoch: the smallest any of them
can fill. The samples the others hold beyond it wait for a later epoch's shard order.

The validation carve is per sample and seeded: sample ``g`` (its place in the split's
shard order) is held out when a hash of ``(split_seed, g)`` falls below the fraction, so
every reader agrees without reading anything. Label-based checks (a class missing from a
carve) and the identical-images check would read every shard: they are not made, and a
note says so.

"Exactly" for shards: the same (seed, epoch, ranks, loader workers) give the same batches,
and ``--resume`` replays the epoch it stopped in from the batch it stopped at (samples
before it are read, not decoded). With another number of ranks or workers a resumed epoch
is a valid but different order of the same shards.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import Settings, setting
from ..errors import DataError, UsageError
from ..files import shell_path, write_json
from .batches import StreamedBatches, item_seed
from .decode import Form, to_form
from .recipe import Recipe

__all__ = ["INFO", "ShardsConfig", "ShardSet", "ShardLoader", "is_shards", "load_shards",
           "write_shards", "shards_lines", "IMAGE_KEYS"]

INFO = "_info.json"
#: Members of a sample that hold its image (the first present is used).
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
_BUFFER = 1000  # samples in a worker's shuffle buffer


def is_shards(path: Path) -> bool:
    return (Path(path) / INFO).is_file()


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64: well-mixed 64-bit hashes of ``values`` (vectorised)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _held_out(indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whether samples ``indices`` belong to the validation carve."""
    key = _mix64(indices.astype(np.uint64) ^ _mix64(np.array([seed], dtype=np.uint64)))
    return key < np.uint64(int(fraction * 2.0 ** 64) if fraction < 1 else 2 ** 64 - 1)


@dataclass
class ShardSet:
    """A split of a shard folder, or its carve.

    Attributes:
        root: the folder.
        files: shard file names, in the split's order.
        lengths: samples per shard.
        form: what images are decoded to.
        carve: ``(fraction, seed, held_out)``: the samples inside (True) or outside the
            validation carve; None: every sample.
        limit: only the first ``limit`` samples in file order (0: all).
    """

    root: str
    files: Tuple[str, ...]
    lengths: Tuple[int, ...]
    form: Form
    carve: Optional[Tuple[float, int, bool]] = None
    limit: int = 0
    _counts: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def counts(self) -> np.ndarray:
        """Samples of this set in each shard (before ``limit``)."""
        if self._counts is None:
            lengths = np.asarray(self.lengths, dtype=np.int64)
            if self.carve is None:
                self._counts = lengths
            else:
                fraction, seed, inside = self.carve
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                self._counts = np.array([
                    int((_held_out(np.arange(offsets[i], offsets[i + 1]), fraction, seed)
                         == inside).sum()) for i in range(len(lengths))], dtype=np.int64)
        return self._counts

    def __len__(self) -> int:
        total = int(self.counts().sum())
        return min(total, self.limit) if self.limit else total

    def split(self, fraction: float, seed: int) -> Tuple["ShardSet", "ShardSet"]:
        """``(rest, validation)``: the seeded per-sample carve."""
        return (replace(self, carve=(fraction, seed, False), limit=0, _counts=None),
                replace(self, carve=(fraction, seed, True), limit=0, _counts=None))

    def subset(self, index) -> "ShardSet":
        """The first ``n`` samples (``index`` must be ``0..n-1``: shards have no random
        access)."""
        index = torch.as_tensor(index)
        n = len(index)
        if not torch.equal(index, torch.arange(n)):
            raise DataError(f"{self.root}: tar shards are read in order; only the first N "
                            "samples can be taken")
        return replace(self, limit=n)

    def paths(self) -> List[str]:
        return [os.path.join(self.root, f) for f in self.files]

    def first_images(self, n: int, min_side: int = 0) -> Iterator[torch.Tensor]:
        """The first ``n`` images of the set in file order, uint8 ``[C, H, W]``, one at a
        time (statistics)."""
        stream = _Stream(self, None, False, False, 1, 0, (0, 1), 1)
        shards, _ = stream.plan(0)
        for taken, (_, sample) in enumerate(stream.samples(shards[0][0])):
            key = next((k for k in IMAGE_KEYS if k in sample), None)
            if taken >= n:
                return
            if key is None:
                continue
            img = _decode_bytes(sample[key], self.form, min_side,
                                f"{sample.get('__url__')}:{sample.get('__key__')}")
            array = np.asarray(img).reshape(img.size[1], img.size[0], self.form.channels)
            yield torch.from_numpy(array.copy()).permute(2, 0, 1)


def _decode_bytes(data: bytes, form: Form, min_side: int, name: str):
    import io

    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        if min_side and img.format == "JPEG":
            w, h = img.size
            scale = min_side / min(w, h)
            if scale < 0.5:
                img.draft(img.mode, (max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))))
        img.load()
        return to_form(img, form)
    except Exception as e:  # Pillow raises many types for damaged data
        raise DataError(f"{name}: cannot decode image ({e})") from None


class _Stream(torch.utils.data.IterableDataset):
    """One epoch of batches of a shard set for this rank; workers split its shards."""

    def __init__(self, split: ShardSet, recipe: Recipe, augment: bool, shuffle: bool,
                 batch_size: int, seed: int, part: Tuple[int, int], workers: int):
        self.split, self.recipe, self.augment, self.shuffle = split, recipe, augment, shuffle
        self.batch_size, self.seed, self.part, self.workers = batch_size, seed, part, workers
        self.epoch = self.start = 0

    def plan(self, epoch: int) -> Tuple[List[List[List[int]]], int]:
        """``(shards[rank][worker], batches per worker)``: the shard indices each reads and,
        for training, the whole batches every one of them yields (the smallest count)."""
        order = list(range(len(self.split.files)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        world, k = self.part[1], self.workers
        plan = [[order[r::world][w::k] for w in range(k)] for r in range(world)]
        counts = self.split.counts()
        if not self.shuffle:
            return plan, 0
        per = min(int(counts[s].sum()) // self.batch_size for rank in plan for s in
                  (np.asarray(w, dtype=np.int64) for w in rank))
        return plan, per

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        return self.batches(info.id if info is not None else 0)

    def samples(self, shards: Sequence[int]) -> Iterator[Tuple[int, Dict]]:
        """``(global index, sample)`` of ``shards`` in file order, inside the carve."""
        import webdataset as wds

        offsets = np.concatenate([[0], np.cumsum(self.split.lengths)])
        paths = self.split.paths()
        for s in shards:
            position = 0
            for sample in wds.tarfile_samples([{"url": paths[s]}]):
                g = int(offsets[s]) + position
                position += 1
                if self.split.carve is not None:
                    fraction, seed, inside = self.split.carve
                    if bool(_held_out(np.array([g]), fraction, seed)[0]) != inside:
                        continue
                yield g, sample

    def batches(self, worker: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """The batches loader worker ``worker`` yields this epoch."""
        import webdataset as wds

        plan, per = self.plan(self.epoch)
        shards = plan[self.part[0]][worker]
        # Global batch j comes from worker j % k (every worker yields the same count in
        # training): this worker's first skipped batches are read, never decoded.
        k = self.workers
        skip = max(0, -(-(self.start - worker) // k)) if self.start else 0

        stream = self.samples(shards)
        if self.shuffle:
            stream = wds.shuffle(bufsize=_BUFFER, initial=_BUFFER // 10, rng=random.Random(
                (self.seed * 1_000_003 + self.epoch) * 7919 + self.part[0] * 131 + worker))(
                stream)
        taken = 0
        batch: List[Tuple[int, Dict]] = []
        produced = 0
        for g, sample in stream:
            if self.split.limit and taken >= self.split.limit:
                break
            taken += 1
            batch.append((g, sample))
            if len(batch) == self.batch_size:
                if produced >= skip:
                    yield self._collate(batch)
                produced += 1
                batch = []
                if per and produced >= per:
                    return
        if batch and not self.shuffle and produced >= skip:
            yield self._collate(batch)

    def _collate(self, batch: List[Tuple[int, Dict]]):
        xs, ys = [], []
        min_side = self.recipe.decode_side(self.augment)
        for g, sample in batch:
            key = next((k for k in IMAGE_KEYS if k in sample), None)
            name = f"{sample.get('__url__')}:{sample.get('__key__')}"
            if key is None or "cls" not in sample:
                raise DataError(f"{name}: a sample needs an image ({', '.join(IMAGE_KEYS)}) "
                                "and a .cls member")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(item_seed(self.seed, self.epoch, g))
                xs.append(transform_image(self.recipe, self.augment, sample[key],
                                          self.split.form, min_side, name))
            ys.append(int(sample["cls"]))
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


_TRANSFORMS: Dict[Tuple[Recipe, bool], object] = {}


def transform_image(recipe: Recipe, augment: bool, data: bytes, form: Form, min_side: int,
                    name: str) -> torch.Tensor:
    """Encoded image bytes -> uint8 ``[C, R, R]`` by the recipe (transforms built once per
    process)."""
    key = (recipe, augment)
    if key not in _TRANSFORMS:
        _TRANSFORMS[key] = recipe.train_transform() if augment else recipe.eval_transform()
    return _TRANSFORMS[key](_decode_bytes(data, form, min_side, name))


@dataclass
class ShardLoader(StreamedBatches):
    """Batches of a :class:`ShardSet` for this rank; the arguments are
    :class:`~nas.data.batches.StreamedBatches`'."""

    _kept: List = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        from .stream import default_workers

        super().__post_init__()
        world = self.part[1]
        local = self.batch_size // world if self.train else self.batch_size
        if self.train and self.batch_size % world:
            raise DataError(f"batch size {self.batch_size} must divide over {world} ranks")
        workers = default_workers() if self.workers < 0 else self.workers
        # every rank and worker needs shards of its own; a limited (first N) set is read in
        # file order by one reader
        workers = 1 if self.data.limit else max(1, min(workers or 1,
                                                       len(self.data.files) // world))
        self._inline = self.workers == 0
        self._stream = _Stream(self.data, self.recipe, self.augment, self.train, local,
                               self.seed, self.part, workers)
        if self.train and len(self) == 0:
            raise DataError(f"{self.data.root}: some rank or loader worker cannot fill one batch "
                            f"of {local} from its shards; use fewer --loader-workers or a "
                            "smaller --batch-size, or write more, smaller shards")

    def __len__(self) -> int:
        plan, per = self._stream.plan(0)
        if self.train:
            return per * self._stream.workers
        counts = self.data.counts()
        total = sum(-(-int(counts[s].sum()) // self.batch_size) for s in
                    (np.asarray(w, dtype=np.int64) for w in plan[self.part[0]]))
        return min(total, -(-len(self.data) // self.batch_size))

    def _batches(self, epoch: int, start: int):
        from .stream import worker_context

        self._stream.epoch, self._stream.start = epoch, start
        if self._inline:  # the workers' batches computed here, in the same round-robin order
            streams = [self._stream.batches(w) for w in range(self._stream.workers)]
            while streams:
                for it in list(streams):
                    batch = next(it, None)
                    if batch is None:
                        streams.remove(it)
                    else:
                        yield batch
            return
        yield from torch.utils.data.DataLoader(
            self._stream, batch_size=None, num_workers=self._stream.workers,
            multiprocessing_context=worker_context(), prefetch_factor=4,
            pin_memory=self.device.type == "cuda")

    def _raw(self, epoch: int, start: int):
        """``(index, uint8 batch, labels)`` of ``epoch`` from ``start``; the first ``keep``
        batches of epoch 0 are kept and replayed."""
        if not (self.keep and epoch == 0 and start < self.keep):
            for i, (x, y) in enumerate(self._batches(epoch, start), start):
                yield i, x, y
            return
        for i in range(start, len(self._kept)):
            yield (i, *self._kept[i])
        first = max(start, len(self._kept))
        for i, (x, y) in enumerate(self._batches(0, len(self._kept)), len(self._kept)):
            if i < self.keep:
                self._kept.append((x, y))
            if i >= first:
                yield i, x, y

    def epoch(self, epoch: int = 0, start: int = 0):
        """Batches of epoch ``epoch``, from batch index ``start``."""
        for i, x, y in self._raw(epoch, start):
            if self.train and i >= len(self):
                break
            yield self.finish(x, y, epoch, i)


def load_shards(root: Path):
    """``(train, test, classes, form, native, small)`` of a shard folder.

    Raises:
        DataError: a missing or malformed ``_info.json``, a listed shard missing.
    """
    info_path = Path(root) / INFO
    try:
        info = json.loads(info_path.read_text())
        splits = info["splits"]
        train, test = splits["train"], splits.get("test") or splits["validation"]
        classes = [str(c) for c in info["classes"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{info_path}: not a shard index with splits train and test and a "
                        f"classes list ({e.__class__.__name__}: {e})") from None
    facts = info.get("nas", {})
    form = Form(int(facts.get("channels", 3)), None,
                tuple(facts["value_range"]) if facts.get("value_range") else None)
    sets = []
    for name, split in (("train", train), ("test", test)):
        files = tuple(str(f) for f in split["filenames"])
        lengths = tuple(int(n) for n in split["shard_lengths"])
        if len(files) != len(lengths) or not files:
            raise DataError(f"{info_path}: split {name} lists {len(files)} files and "
                            f"{len(lengths)} shard lengths")
        missing = [f for f in files if not (Path(root) / f).is_file()]
        if missing:
            raise DataError(f"{info_path}: split {name}: shard {missing[0]} is missing"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        sets.append(ShardSet(str(root), files, lengths, form))
    native = int(facts.get("native", 0))
    return sets[0], sets[1], classes, form, native, bool(facts.get("small", False))


@dataclass
class ShardsConfig(Settings):
    """How ``nas data shards`` cuts a data set into shards."""

    shard_size: int = setting(1000, help="images per shard")

    def check(self) -> None:
        if self.shard_size < 1:
            raise UsageError("--shard-size must be at least 1")


def write_shards(dataset, out: Path, shard_size: int = 1000, seed: int = 0) -> Dict:
    """Write an image-folder data set (:func:`nas.data.load_dataset` with ``stream`` mode:
    its files) as tar shards in the WebDataset layout, samples in a seeded random order
    (so a shard holds every class), each file's bytes as they are. Returns the index.

    Raises:
        DataError: the data set is not made of files.
    """
    import webdataset as wds

    from .index import FileSet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for name, files in (("train", dataset.train), ("test", dataset.test)):
        if not isinstance(files, FileSet):
            raise DataError("write_shards needs an image folder read with --data-mode stream")
        order = np.random.default_rng(seed).permutation(len(files))
        pattern = str(out / f"{name}-%06d.tar")
        lengths: List[int] = []
        with wds.ShardWriter(pattern, maxcount=shard_size, verbose=0) as sink:
            for n, i in enumerate(order):
                path = files.path(int(i))
                suffix = Path(path).suffix.lower().lstrip(".")
                key = {"jpeg": "jpg"}.get(suffix, suffix)
                if key not in IMAGE_KEYS:
                    raise DataError(f"{path}: shards hold {', '.join(IMAGE_KEYS)} images only")
                sink.write({"__key__": f"{n:09d}", key: Path(path).read_bytes(),
                            "cls": str(int(files.labels[int(i)])).encode()})
                if n % shard_size == 0:
                    lengths.append(0)
                lengths[-1] += 1
        filenames = [f"{name}-{k:06d}.tar" for k in range(len(lengths))]
        splits[name] = {"name": name, "num_samples": len(files), "filenames": filenames,
                        "shard_lengths": lengths}
    form = dataset.train.form
    index = {"classes": list(dataset.classes), "splits": splits,
             "nas": {"channels": form.channels, "native": dataset.native,
                     "small": dataset.small,
                     "value_range": list(form.value_range) if form.value_range else None}}
    write_json(out / INFO, index)
    return index


def shards_lines(index: Dict, out) -> List[str]:
    """What ``nas data shards`` prints about the shards :func:`write_shards` wrote to
    ``out`` (``index``: what it returned)."""
    return [f"{name}: {split['num_samples']:,} images in {len(split['filenames'])} shards"
            for name, split in index["splits"].items()] + [
        f"use it: nas search --budget 300M --data {shell_path(str(out))}"]
