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
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import torch
from torch import nn

from .arch import Architecture, Layer
from .checkpoint import atomic_write_bytes
from .latency import measure_latency
from .ops.static import ConvBNAct, SqueezeExcite, make_activation

__all__ = ["LatencyTable", "build_table"]

FORMAT = "nas-latency-lut/1"


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


class LatencyTable:
    """Operation latencies (ms) of one machine and thread count, keyed by shape."""

    def __init__(self, entries: Optional[Dict[str, float]] = None, scale: float = 1.0,
                 per_op: float = 0.0, threads: int = 1, repeats: int = 5,
                 path: Optional[Path] = None):
        self.entries: Dict[str, float] = dict(entries or {})
        self.scale, self.per_op = scale, per_op
        self.threads, self.repeats, self.path = threads, repeats, path
        self.misses = 0

    # ----------------------------------------------------------------- parts
    def _time(self, key: str, make, shape) -> float:
        if key not in self.entries:
            self.misses += 1
            self.entries[key] = measure_latency(make(), shape, warmup=2, repeats=self.repeats,
                                                num_threads=self.threads)
        return self.entries[key]

    def _parts(self, arch: Architecture) -> Iterable[float]:
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

    def raw(self, arch: Architecture) -> Tuple[float, int]:
        """(sum of the operations' ms, number of operations)."""
        parts = list(self._parts(arch))
        return sum(parts), len(parts)

    def predict(self, arch: Architecture) -> float:
        """Predicted ms of ``arch`` at batch 1 (measuring unseen operations once)."""
        total, count = self.raw(arch)
        return self.scale * total + self.per_op * count

    # ----------------------------------------------------------------- files
    def save(self, path) -> None:
        data = {"format": FORMAT, "threads": self.threads, "repeats": self.repeats,
                "scale": self.scale, "per_op": self.per_op, "entries": self.entries}
        atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path) -> "LatencyTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a latency table ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        entries = data["entries"]
        if not all(isinstance(v, (int, float)) for v in entries.values()):
            raise ValueError(f"{path}: latency entries must be numbers")
        return cls(entries, float(data["scale"]), float(data.get("per_op", 0.0)),
                   int(data["threads"]), int(data["repeats"]), path)


def build_table(space, archs: int = 40, calibrate: int = 12, threads: int = 1,
                repeats: int = 5, seed: int = 0, progress: bool = True) -> LatencyTable:
    """Measure the operations of ``archs`` random architectures (plus the extremes), then
    fit ``ms = scale * sum(op ms) + per_op * ops`` on ``calibrate`` more, measured whole.

    The per-operation term is the fixed cost that timing operations one by one leaves
    out (module calls, split and concat, residual adds); it does not grow with compute,
    so one scale factor alone cannot absorb it.
    """
    from tqdm import tqdm

    from .latency import arch_latency

    rng = random.Random(seed)
    table = LatencyTable(threads=threads, repeats=repeats)
    sample = [space.extreme_arch(True), space.extreme_arch(False)] + [
        space.sample(rng) for _ in range(archs)]
    for arch in tqdm(sample, desc="operations", unit="arch", disable=not progress or None):
        table.raw(arch)
    rows, targets = [], []
    for arch in tqdm([space.sample(rng) for _ in range(calibrate)], desc="calibration",
                     unit="arch", disable=not progress or None):
        total, count = table.raw(arch)
        rows.append([total, count])
        targets.append(arch_latency(arch, repeats=repeats, num_threads=threads))
    solution = torch.linalg.lstsq(torch.tensor(rows, dtype=torch.float64),
                                  torch.tensor(targets, dtype=torch.float64)[:, None]).solution
    table.scale, table.per_op = float(solution[0]), float(solution[1])
    if table.scale <= 0:  # degenerate fit (too few or too similar networks): scale only
        table.scale = sum(targets) / sum(r[0] for r in rows)
        table.per_op = 0.0
    return table
