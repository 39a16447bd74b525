"""Latency lookup table: measure each operation shape once, predict a network by summation.

``nas latency build --space S -o LUT.json`` times, on this machine, at batch 1 and the
space's target input, every distinct operation that random architectures of the space
use: the stem, each block's 1x1 expand (conv+BN+act), each MixConv group's depthwise
conv, the depthwise BN+act, the SE module, the 1x1 project (conv+BN[+act]), and the
head. Operations, unlike whole blocks, recur across architectures, so a table built from
a few dozen networks covers nearly every new one. The other block kinds (cn, uir, cm, pc,
adown) are timed whole, one entry per distinct block (kind ``block``): exact for what
they are, but they recur less, so more of them are measured on first use. A network's
latency is the sum over its operations times a weight per kind fitted on fully measured
networks when the table is built (the sum misses split, concat, residual adds and cache
effects between operations). Operations missing from the table are measured on first
use and added.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
from torch import nn

from ..arch import Architecture, Layer
from ..config import Settings, setting
from ..errors import CheckpointError
from ..files import atomic_write_bytes
from ..model import block_args
from ..ops.static import (
    ConvBNAct,
    PatchStem,
    SqueezeExcite,
    make_activation,
    make_block,
    make_head,
)
from .base import LatencyModel
from .measure import arch_latency, measure_latency

__all__ = ["LatencyTable", "TableConfig", "build_table"]

FORMAT = "nas-latency-lut/3"
OLD_FORMAT = "nas-latency-lut/1"  # one scale for every kind; still loaded
NO_BLOCK_FORMAT = "nas-latency-lut/2"  # before whole blocks were timed; still loaded
KINDS = ("stem", "pw", "dw", "bnact", "se", "pwl", "head", "block")  # the key prefixes
# Block kinds split into operations; the others are timed whole.
_SPLIT_KINDS = ("ds", "dsa", "ir")


@dataclass
class TableConfig(Settings):
    """How ``nas latency build`` measures a table."""

    space: str = setting("mixnet_300m", help="search space (name or .yaml)")
    archs: int = setting(40, at_least=1,
                         help="random architectures whose operations are measured")
    calibrate: int = setting(24, at_least=1,
                             help="whole networks measured to fit the table's weights; from 16 "
                                  "on, one weight per operation kind")
    threads: int = setting(1, at_least=1, help="torch threads")
    repeats: int = setting(5, at_least=1,
                           help="timed runs per operation and network (the median is kept)")


class _BNAct(nn.Sequential):
    def __init__(self, c: int, act: str):
        super().__init__(nn.BatchNorm2d(c), make_activation(act))


def _ops(layer: Layer):
    """``(key, module factory, input shape)`` of each timed operation of a block.

    The keys of ds and ir blocks without MobileNetV3's SE are those of format 2 tables,
    so their measurements stay valid.
    """
    s_in, s_out, mid = layer.in_size, layer.out_size, layer.mid_ch
    if layer.kind not in _SPLIT_KINDS:
        args = block_args(layer)
        yield (f"block|{layer.kind}|{s_in}|"
               + "|".join(f"{name}={args[name]}" for name in sorted(args)),
               lambda: make_block(layer.kind, args), (1, layer.in_ch, s_in, s_in))
        return
    if layer.kind == "ir":
        yield (f"pw|{layer.in_ch}|{mid}|{layer.exp_groups}|{layer.act}|{s_in}",
               lambda: ConvBNAct(layer.in_ch, mid, 1, groups=layer.exp_groups, act=layer.act),
               (1, layer.in_ch, s_in, s_in))
    for c, k in zip(layer.dw_splits, layer.kernels):
        yield (f"dw|{c}|{k}|{layer.stride}|{s_in}",
               lambda c=c, k=k: nn.Conv2d(c, c, k, layer.stride, k // 2, groups=c, bias=False),
               (1, c, s_in, s_in))
    yield f"bnact|{mid}|{layer.act}|{s_out}", lambda: _BNAct(mid, layer.act), (1, mid, s_out, s_out)
    if layer.se_ch:  # MobileNetV3's SE has ReLU inside whatever the block's activation
        act = "hard" if layer.se_hard else layer.act
        yield (f"se|{mid}|{layer.se_ch}|{act}|{s_out}",
               lambda: SqueezeExcite(mid, layer.se_ch, layer.act, layer.se_hard),
               (1, mid, s_out, s_out))
    pw_act = layer.act if layer.kind == "dsa" else ""  # MobileNetV1's activated pointwise
    yield (f"pwl|{mid}|{layer.out_ch}|{layer.proj_groups}|{s_out}"
           + (f"|{pw_act}" if pw_act else ""),
           lambda: ConvBNAct(mid, layer.out_ch, 1, groups=layer.proj_groups, act=pw_act),
           (1, mid, s_out, s_out))


def _head(in_ch: int, head, classes: int) -> nn.Module:
    conv, pool, post, classifier = make_head(in_ch, head, classes)
    return nn.Sequential(conv, pool, post, nn.Flatten(), classifier)


class LatencyTable(LatencyModel):
    """Operation latencies (ms) of one machine and thread count, keyed by shape."""

    def __init__(self, entries: Optional[Dict[str, float]] = None,
                 weights: Optional[Dict[str, float]] = None, per_op: float = 0.0,
                 threads: int = 1, repeats: int = 5, path: Optional[Path] = None):
        self.entries: Dict[str, float] = dict(entries or {})
        self.weights: Dict[str, float] = {k: 1.0 for k in KINDS}
        self.weights.update(weights or {})
        self.per_op = per_op
        self.threads, self.repeats, self.path = threads, repeats, path
        self.misses = 0
        self.name = "table"

    def describe(self) -> str:
        return (f"predicted by the lookup table {self.path or '(in memory)'} "
                f"({len(self.entries)} operations, {self.threads} thread(s))")

    # ----------------------------------------------------------------- parts
    def _time(self, key: str, make, shape) -> Tuple[str, float]:
        if key not in self.entries:
            self.misses += 1
            self.entries[key] = measure_latency(make(), shape, warmup=2, repeats=self.repeats,
                                                num_threads=self.threads)
        return key.split("|", 1)[0], self.entries[key]

    def _parts(self, arch: Architecture) -> Iterable[Tuple[str, float]]:
        for key, make, shape in self.operations(arch):
            yield self._time(key, make, shape)

    @staticmethod
    def operations(arch: Architecture) -> Iterable[Tuple[str, Callable[[], nn.Module], tuple]]:
        """``(key, module factory, input shape)`` of every operation the table times for
        ``arch``, in network order; the key's prefix (up to ``|``) is its kind (``KINDS``)."""
        inp, stem = arch.input, arch.stem
        shape = (1, inp.channels, inp.resolution, inp.resolution)
        if stem.patch:
            yield (f"stem|{inp.channels}|p{stem.patch}|{stem.out}|{stem.act}|{inp.resolution}",
                   lambda: PatchStem(inp.channels, stem.out, stem.patch, stem.act), shape)
        else:
            yield (f"stem|{inp.channels}|{stem.kernel}|{stem.stride}|{stem.out}|{stem.act}|"
                   f"{inp.resolution}",
                   lambda: ConvBNAct(inp.channels, stem.out, stem.kernel, stem.stride,
                                     act=stem.act), shape)
        size = arch.stem_size()
        for layer in arch.layers():
            yield from _ops(layer)
            size = layer.out_size
        head = arch.head
        post = f"|f{head.post}{'bn' if head.post_bn else ''}" if head.post else ""
        yield (f"head|{arch.last_width}|{head.out}|{head.act}|{inp.classes}|{size}{post}",
               lambda: _head(arch.last_width, (head.out, head.act, head.post, head.post_bn),
                             inp.classes),
               (1, arch.last_width, size, size))

    def features(self, arch: Architecture) -> List[float]:
        """Per kind (``KINDS``) the summed ms of ``arch``'s operations, then their number."""
        sums = dict.fromkeys(KINDS, 0.0)
        count = 0
        for kind, ms in self._parts(arch):
            sums[kind] += ms
            count += 1
        return [sums[k] for k in KINDS] + [float(count)]

    def predict(self, arch: Architecture) -> float:
        """Predicted ms of ``arch`` at batch 1 (measuring unseen operations once)."""
        f = self.features(arch)
        return sum(self.weights[k] * v for k, v in zip(KINDS, f)) + self.per_op * f[-1]

    def fit(self, features: List[List[float]], targets: List[float], per_kind: bool,
            ridge: float = 1.0) -> None:
        """Fit the weights to measured networks: one shared scale, or one per kind.

        Both fits are non-negative least squares. Per kind, each weight is pulled toward
        the shared scale (ridge, relative to that kind's feature energy): the kinds'
        sums move together across networks, and an unpulled fit sets some weights to 0
        and inflates others, which would make e.g. SE free for ``--latency-budget``.
        """
        from scipy.optimize import nnls

        a = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        shared, _ = nnls(np.stack([a[:, :-1].sum(1), a[:, -1]], 1), y)
        if not per_kind:
            self.weights = dict.fromkeys(KINDS, float(shared[0]))
            self.per_op = float(shared[1])
            return
        k = len(KINDS)
        pull = np.sqrt(ridge * (a[:, :k] ** 2).sum(0))  # per kind, scale-aware
        rows = np.vstack([a, np.hstack([np.diag(pull), np.zeros((k, 1))])])
        coef, _ = nnls(rows, np.concatenate([y, pull * shared[0]]))
        # A kind no calibration network has (whole blocks in a MixNet space) has no signal:
        # it keeps the shared scale, not an arbitrary 0 that would make it free.
        coef[:k][~(a[:, :k] != 0).any(0)] = shared[0]
        self.weights = dict(zip(KINDS, map(float, coef[:-1])))
        self.per_op = float(coef[-1])

    # ----------------------------------------------------------------- files
    def save(self, path) -> None:
        data = {"format": FORMAT, "threads": self.threads, "repeats": self.repeats,
                "weights": self.weights, "per_op": self.per_op, "entries": self.entries}
        atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path) -> "LatencyTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a latency table ({e})") from None
        formats = (FORMAT, NO_BLOCK_FORMAT, OLD_FORMAT)
        if not isinstance(data, dict) or data.get("format") not in formats:
            raise CheckpointError(f"{path}: not a {FORMAT} file")
        try:
            entries = data["entries"]
            weights = dict(dict.fromkeys(KINDS[:-1], data["scale"])
                           if data["format"] == OLD_FORMAT else data["weights"])
            if data["format"] != FORMAT:
                # Older tables time no whole blocks. A whole block's time includes the
                # overheads a sum of its operations misses: it needs no correction.
                weights.setdefault("block", 1.0)
            numbers = list(entries.values()) + [weights.get(k) for k in KINDS]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                raise ValueError("latency entries and weights must be numbers")
            return cls(entries, {k: float(weights[k]) for k in KINDS},
                       float(data.get("per_op", 0.0)), int(data["threads"]),
                       int(data["repeats"]), path)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed latency table ({e})") from None


def build_table(space, archs: int = 40, calibrate: int = 24, threads: int = 1,
                repeats: int = 5, seed: int = 0, progress: bool = True,
                per_kind: Optional[bool] = None) -> LatencyTable:
    """Measure the operations of ``archs`` random architectures (plus the extremes), then
    fit the prediction on ``calibrate`` more, measured whole.

    The per-operation term is the fixed cost that timing operations one by one leaves
    out (module calls, split and concat, residual adds); it does not grow with compute,
    so a scale factor alone cannot absorb it. ``per_kind`` (default: when at least 16
    networks calibrate) fits one weight per operation kind instead of one shared scale;
    8 coefficients need that many networks not to fit noise. The calibration data stays
    on the table as ``table.calibration`` (features, measured ms).
    """
    from tqdm import tqdm

    rng = random.Random(seed)
    table = LatencyTable(threads=threads, repeats=repeats)
    sample = [space.extreme_arch(True), space.extreme_arch(False)] + [
        space.sample(rng) for _ in range(archs)]
    for arch in tqdm(sample, desc="operations", unit="arch", disable=not progress or None):
        table.features(arch)
    rows, targets = [], []
    for arch in tqdm([space.sample(rng) for _ in range(calibrate)], desc="calibration",
                     unit="arch", disable=not progress or None):
        rows.append(table.features(arch))
        targets.append(arch_latency(arch, repeats=repeats, num_threads=threads))
    table.fit(rows, targets, calibrate >= 16 if per_kind is None else per_kind)
    if all(w == 0 for w in table.weights.values()):  # degenerate fit: the plain ratio
        table.weights = dict.fromkeys(KINDS, sum(targets) / sum(sum(r[:-1]) for r in rows))
        table.per_op = 0.0
    table.calibration = (rows, targets)
    return table
