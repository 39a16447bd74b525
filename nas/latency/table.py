"""Latency lookup table: measure each operation shape once, predict a network by summation.

``nas latency build --space S -o LUT.json`` times, on this machine, at batch 1 and the
space's target input, every distinct operation that random architectures of the space
use: the stem, each block's 1x1 expand (conv+BN+act), each MixConv group's depthwise
conv, the depthwise BN+act, the SE module, the 1x1 project (conv+BN), and the head.
Operations, unlike whole blocks, recur across architectures, so a table built from a
few dozen networks covers nearly every new one. A network's latency is the sum over its
operations times a scale fitted on fully measured networks when the table is built
(the sum misses split, concat, residual adds and cache effects between operations).
Operations missing from the table are measured on first use and added.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
from torch import nn

from ..arch import Architecture, Layer
from ..config import Settings, setting
from ..errors import CheckpointError
from ..files import atomic_write_bytes
from ..ops.static import ConvBNAct, SqueezeExcite, make_activation
from .base import LatencyModel
from .measure import arch_latency, measure_latency

__all__ = ["LatencyTable", "TableConfig", "build_table"]

FORMAT = "nas-latency-lut/2"
OLD_FORMAT = "nas-latency-lut/1"  # one scale for every kind; still loaded
KINDS = ("stem", "pw", "dw", "bnact", "se", "pwl", "head")  # the key prefixes


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
    """``(key, module factory, input shape)`` of each timed operation of a block."""
    s_in, s_out, mid = layer.in_size, layer.out_size, layer.mid_ch
    if layer.kind == "ir":
        yield (f"pw|{layer.in_ch}|{mid}|{layer.exp_groups}|{layer.act}|{s_in}",
               lambda: ConvBNAct(layer.in_ch, mid, 1, groups=layer.exp_groups, act=layer.act),
               (1, layer.in_ch, s_in, s_in))
    for c, k in zip(layer.dw_splits, layer.kernels):
        yield (f"dw|{c}|{k}|{layer.stride}|{s_in}",
               lambda c=c, k=k: nn.Conv2d(c, c, k, layer.stride, k // 2, groups=c, bias=False),
               (1, c, s_in, s_in))
    yield f"bnact|{mid}|{layer.act}|{s_out}", lambda: _BNAct(mid, layer.act), (1, mid, s_out, s_out)
    if layer.se_ch:
        yield (f"se|{mid}|{layer.se_ch}|{layer.act}|{s_out}",
               lambda: SqueezeExcite(mid, layer.se_ch, layer.act), (1, mid, s_out, s_out))
    yield (f"pwl|{mid}|{layer.out_ch}|{layer.proj_groups}|{s_out}",
           lambda: ConvBNAct(mid, layer.out_ch, 1, groups=layer.proj_groups),
           (1, mid, s_out, s_out))


class _Head(nn.Module):
    def __init__(self, in_ch: int, out: int, act: str, classes: int):
        super().__init__()
        self.conv = ConvBNAct(in_ch, out, 1, act=act)
        self.fc = nn.Linear(out, classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


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
        inp, stem = arch.input, arch.stem
        yield self._time(
            f"stem|{inp.channels}|{stem.kernel}|{stem.stride}|{stem.out}|{stem.act}|{inp.resolution}",
            lambda: ConvBNAct(inp.channels, stem.out, stem.kernel, stem.stride, act=stem.act),
            (1, inp.channels, inp.resolution, inp.resolution))
        size = None
        for layer in arch.layers():
            for key, make, shape in _ops(layer):
                yield self._time(key, make, shape)
            size = layer.out_size
        head = arch.head
        yield self._time(
            f"head|{arch.last_width}|{head.out}|{head.act}|{inp.classes}|{size}",
            lambda: _Head(arch.last_width, head.out, head.act, inp.classes),
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
        if not isinstance(data, dict) or data.get("format") not in (FORMAT, OLD_FORMAT):
            raise CheckpointError(f"{path}: not a {FORMAT} file")
        try:
            entries = data["entries"]
            weights = (dict.fromkeys(KINDS, data["scale"]) if data["format"] == OLD_FORMAT
                       else data["weights"])
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
