"""Latency lookup table: time every unit of a space once, predict a network by summation.

``nas latency build --space S [--runtime onnxruntime] -o LUT.json`` times, on this
machine, at batch 1 and the space's target input, every unit (stem, block, tail:
:mod:`nas.latency.units`) that an architecture of the space can have, in the runtime
the table is for. A network's latency is then ``scale * (sum of its units)``, the scale
being the median ratio of measured to summed latency over a dozen whole networks measured
when the table is built (each unit, timed on its own, reads its input from memory and
writes its output back, and in ONNX Runtime changes layout at both ends, which a network
does once: ``scale`` is about 0.8 there, near 1 in torch eager; in int8 a unit alone also
quantises its input and dequantises its output, steps a whole int8 network fuses away
between blocks, and the scale is fitted on whole int8 networks). A median, not a
least-squares fit, because on a shared machine one calibration network measured during a
burst of load would otherwise pull every prediction.

Units are timed whole blocks at a time, in groups, round-robin
(:meth:`nas.latency.runtime.Runtime.time`). Timing operations alone instead (each conv,
BN, SE on its own, the previous table) left out what a block does between them (split,
concat, residual add) and how ONNX Runtime fuses them, and predicted torch eager to
10.0% (mean absolute error over 30 random networks); see ``experiments/README.md`` for
what the blocks give. A unit missing from the table (a partial table, or another space)
is measured on first use and added.
"""

from __future__ import annotations

import hashlib
import json
import random
import shlex
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..arch import Architecture
from ..config import Settings, setting
from ..errors import CheckpointError
from ..files import atomic_write_bytes, shell_path
from .base import LatencyModel
from .measure import arch_latency
from .runtime import ONNX_BUNDLE, RUNTIMES, Runtime, make_runtime
from .units import Unit, arch_units, space_units, unit_keys

__all__ = ["LatencyTable", "TableConfig", "UnitsConfig", "build_table", "FORMAT",
           "DEVICE_RUNTIMES", "BuiltTable", "build_table_file", "use_line"]

FORMAT = "nas-latency-lut/3"
_OPERATION_FORMATS = ("nas-latency-lut/1", "nas-latency-lut/2")  # per-operation tables
#: Runtimes a table timed on another device may be for (``nas latency pack --runtime``).
DEVICE_RUNTIMES = ("onnxruntime", "ncnn")


@dataclass
class UnitsConfig(Settings):
    """Which units of a space a table holds, and how many whole networks fit its scale
    (``nas latency build`` here, ``nas latency pack`` for a device)."""

    space: str = setting("mixnet_300m", help="search space (name or .yaml)")
    archs: int = setting(0, at_least=0,
                         help="0: every unit of the space; N: only the units of N random "
                              "architectures (a partial table)")
    calibrate: int = setting(12, at_least=2,
                             help="whole networks measured to fit the table's two numbers")


@dataclass
class TableConfig(UnitsConfig):
    """How ``nas latency build`` measures a table (units it lacks are measured when first
    asked for)."""

    runtime: str = setting("torch", choices=RUNTIMES,
                           help="the runtime whose latency the table predicts")
    threads: int = setting(1, at_least=1, help="intra-op threads")
    repeats: int = setting(20, at_least=1,
                           help="timed runs per unit and network (the fastest is kept)")


class LatencyTable(LatencyModel):
    """Unit latencies (ms) of one machine, runtime and thread count, keyed by shape.

    Args:
        runtime: ``torch`` or ``onnxruntime``: the runtime the entries were measured in.
        entries: ``{unit key: ms}``.
        scale: the prediction is ``scale * (sum of the units' entries)``.
        threads, repeats: how entries are measured (also those measured on first use).
        path: the file it was loaded from (for messages).
        device: where the entries were timed when not on this machine (``nas latency
            read``: machine, system, runtime version, ...); such a table never measures a
            unit it lacks here (this machine is not that device): it refuses it.
    """

    source = "table"

    def __init__(self, runtime: str = "torch", entries: Optional[Dict[str, float]] = None,
                 scale: float = 1.0, threads: int = 1,
                 repeats: int = 20, path: Optional[Path] = None,
                 device: Optional[Dict[str, Any]] = None):
        known = DEVICE_RUNTIMES if device else RUNTIMES
        if runtime not in known:
            raise ValueError(f"unknown runtime {runtime!r}: expected one of {known}")
        self.backend = runtime
        self.device = dict(device) if device else None
        self.name = f"table ({runtime}{' on a device' if device else ''})"
        self.entries: Dict[str, float] = dict(entries or {})
        self.scale = scale
        self.threads, self.repeats, self.path = threads, repeats, path
        self.misses = 0  # units measured while predicting
        self.calibration: Dict[str, List[float]] = {}  # what the fit saw (build_table)
        self._runtime: Optional[Runtime] = None

    def describe(self) -> str:
        where = (f" on {self.device.get('machine', '?')} {self.device.get('system', '')}"
                 .rstrip() if self.device else "")
        return (f"predicted by the lookup table {self.path or '(in memory)'} for "
                f"{self.backend}{where}, {self.threads} thread(s) ({len(self.entries)} units)")

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:  # onnxruntime is imported only when something is timed
            self._runtime = make_runtime(self.backend, self.threads)
        return self._runtime

    # ------------------------------------------------------------- measuring
    def measure(self, units: Dict[str, Unit], seed: int = 0, progress: bool = False,
                on_group: Optional[Callable[[int, int], None]] = None) -> None:
        """Time ``units`` not yet in the table and add them.

        They are shuffled (seeded) into groups of :data:`~nas.latency.runtime.ONNX_BUNDLE`
        and each group timed round-robin, so a unit runs between unrelated blocks of all
        sizes, as inside a network. ``on_group(done, total)`` is called after each group.
        """
        from tqdm import tqdm

        keys = sorted(k for k in units if k not in self.entries)
        random.Random(seed).shuffle(keys)
        total = -(-len(keys) // ONNX_BUNDLE)
        with tqdm(total=len(keys), desc=f"units ({self.backend})", unit="unit",
                  disable=not progress or None) as bar:
            for start in range(0, len(keys), ONNX_BUNDLE):
                group = keys[start:start + ONNX_BUNDLE]
                modules = [units[k][1]() for k in group]
                inputs = [torch.randn(*units[k][0]) for k in group]
                calls = self.runtime.compile(modules, inputs)
                for key, ms in zip(group, self.runtime.time(calls, repeats=self.repeats)):
                    self.entries[key] = ms
                bar.update(len(group))
                if on_group is not None:
                    on_group(start // ONNX_BUNDLE + 1, total)

    def unit_sum(self, arch: Architecture) -> float:
        """Summed ms of ``arch``'s units (measuring any the table lacks, with the rest of
        ``arch``'s units as their round-robin company)."""
        keys = unit_keys(arch)
        missing = [k for k in keys if k not in self.entries]
        if missing and self.device:
            raise CheckpointError(
                f"{self.path or 'the device table'} lacks {len(set(missing))} unit(s) of "
                f"{arch.id} (e.g. {missing[0]}), and this machine is not the device it was "
                "timed on: pack the whole space (nas latency pack without --archs)")
        if missing:
            self.misses += len(set(missing))
            units = arch_units(arch)
            times = self.runtime.time(self.runtime.compile(
                [units[k][1]() for k in units], [torch.randn(*units[k][0]) for k in units]),
                repeats=self.repeats)
            for key, ms in zip(units, times):
                self.entries.setdefault(key, ms)
        return sum(self.entries[k] for k in keys)

    def predict(self, arch: Architecture) -> float:
        """Predicted ms of ``arch`` at batch 1, its target input."""
        return self.scale * self.unit_sum(arch)

    def fit(self, sums: Sequence[float], measured: Sequence[float]) -> None:
        """Set ``scale`` to the median of ``measured / sums`` over whole networks."""
        self.scale = float(statistics.median(m / u for u, m in zip(sums, measured)))

    def check(self, space) -> None:
        """Refuse a table not made for ``space``: it must hold every unit of the space's
        smallest and largest networks, which every build of that space times (a partial
        one too). A table of another space would have the search time nearly every unit
        on first use, and its scale was fitted on other networks.

        Raises:
            CheckpointError: names the table, the space and the command that builds one.
        """
        keys = {k for largest in (False, True) for k in unit_keys(space.extreme_arch(largest))}
        missing = keys - set(self.entries)
        if missing:
            raise CheckpointError(
                f"{self.path or 'the latency table'} is not a table of {space.name}: it "
                f"lacks {len(missing)} of the {len(keys)} units of its smallest and largest "
                "networks; build one with: nas latency build --space "
                f"{shlex.quote(str(space.source or space.name))} -o FILE")

    def fit_line(self, networks: str) -> str:
        """How well the scale fits the whole ``networks`` it was fitted on (``table.calibration``),
        for the message of a table just built or read."""
        cal = self.calibration
        errors = [abs(self.scale * s - m) / m for s, m in zip(cal["unit_sums"], cal["measured"])]
        return (f"latency = {self.scale:.3f} x sum of its units, "
                f"{100 * sum(errors) / len(errors):.1f}% mean error on the {len(errors)} "
                f"networks {networks}")

    # ----------------------------------------------------------------- files
    def save(self, path, **extra) -> None:
        """Write the table atomically (``extra``: more top-level keys, e.g. provenance)."""
        data = {"format": FORMAT, "runtime": self.backend, "threads": self.threads,
                "repeats": self.repeats, "scale": self.scale,
                "entries": self.entries, **extra}
        if self.device:
            data["device"] = self.device
        atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path) -> "LatencyTable":
        """Read a table written by :meth:`save`.

        Raises:
            CheckpointError: not a table, malformed, or a per-operation table of an older
                ``nas`` (rebuild it).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a latency table ({e})") from None
        if isinstance(data, dict) and data.get("format") in _OPERATION_FORMATS:
            raise CheckpointError(f"{path}: a per-operation table of an older nas; rebuild it "
                                  f"with: nas latency build -o {path}")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a {FORMAT} file")
        try:
            entries = data["entries"]
            numbers = [*entries.values(), data["scale"]]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in numbers):
                raise ValueError("latencies and scale must be numbers")
            if not all(v >= 0 for v in numbers):
                raise ValueError("latencies and scale must not be negative")
            device = data.get("device")
            if device is not None and not isinstance(device, dict):
                raise ValueError("device must be an object")
            known = DEVICE_RUNTIMES if device else RUNTIMES
            if data["runtime"] not in known:
                raise ValueError(f"runtime {data['runtime']!r} is not one of "
                                 f"{', '.join(known)}")
            return cls(data["runtime"], {str(k): float(v) for k, v in entries.items()},
                       float(data["scale"]), int(data["threads"]),
                       int(data["repeats"]), path, device)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed latency table ({e})") from None


@dataclass
class BuiltTable:
    """What ``nas latency build`` reports: the table, where it was saved, how long it took."""

    table: LatencyTable
    space: str
    path: Path
    minutes: float

    def lines(self) -> List[str]:
        t = self.table
        return [f"{len(t.entries)} units of {self.space} timed in {t.backend} "
                f"({t.threads} thread(s)) in {self.minutes:.1f} min; "
                f"{t.fit_line('measured to fit it')}: {self.path}", use_line(self.path)]


def use_line(path) -> str:
    """How to search with the table file ``path`` (what ``nas latency build`` and ``read``
    print last)."""
    return f"use it: nas search --budget 300M --latency lut:{shell_path(str(path))}"


def build_table_file(config: TableConfig, out) -> BuiltTable:
    """Build the table ``config`` describes into the file ``out``; a killed build leaves
    the units timed so far in ``OUT.partial``, and the same build started again continues
    from them."""
    from ..space import load_space

    config = config.validate()
    space = load_space(config.space)
    out = Path(out)
    progress = out.with_name(out.name + ".partial")  # the units timed so far
    started = time.perf_counter()
    table = build_table(space, config.runtime, config.archs, config.calibrate, config.threads,
                        config.repeats, checkpoint=progress)
    table.save(out)
    progress.unlink(missing_ok=True)
    return BuiltTable(table, space.name, out, (time.perf_counter() - started) / 60)


def build_table(space, runtime: str = "torch", archs: int = 0, calibrate: int = 12,
                threads: int = 1, repeats: int = 20, seed: int = 0, progress: bool = True,
                checkpoint: Optional[Path] = None,
                units: Optional[Dict[str, Unit]] = None) -> LatencyTable:
    """Time the units of ``space`` in ``runtime`` and fit the prediction's scale on
    ``calibrate`` random architectures measured whole.

    ``archs=0`` times every unit of the space (:func:`~nas.latency.units.space_units`);
    ``archs=N`` only those of N random architectures and the two extremes (a quick,
    partial table); ``units`` names them outright. The calibration networks are measured
    one at a time between groups of units, spread over the whole build, so that the
    scale sees the same states of a shared machine as the entries (measured all after
    the units, the scale moved by 20% between two builds an hour apart). With a
    ``checkpoint`` file the units timed so far are saved there as the build goes (at most
    every 10 s), and a build with the same settings started again continues from it
    (ONNX Runtime's full table of ``mixnet_300m`` takes most of an hour here). What the
    fit saw stays on the table as ``table.calibration`` (unit sums, measured ms).
    """
    from tqdm import tqdm

    rng = random.Random(seed)
    table = LatencyTable(runtime, threads=threads, repeats=repeats)
    settings = {"space": space.name, "space_sha256": hashlib.sha256(space.text.encode())
                .hexdigest(), "archs": archs, "seed": seed}
    if checkpoint is not None and Path(checkpoint).exists():
        done = LatencyTable.load(checkpoint)
        same = json.loads(Path(checkpoint).read_text()).get("build") == settings
        if same and (done.backend, done.threads, done.repeats) == (runtime, threads, repeats):
            table.entries = done.entries
    if units is None:
        units = {}
        if archs:
            for arch in [space.extreme_arch(True), space.extreme_arch(False)] + [
                    space.sample(rng) for _ in range(archs)]:
                units.update(arch_units(arch))
        else:
            units = space_units(space)
    networks = [space.sample(rng) for _ in range(calibrate)]
    for arch in networks:  # timed among the others, not as misses in their own company
        units = {**arch_units(arch), **units}
    measured: List[float] = []
    saved = [time.monotonic()]

    def measure_network() -> None:
        arch = networks[len(measured)]
        measured.append(arch_latency(arch, repeats=repeats, num_threads=threads,
                                     runtime=table.runtime))

    def between_groups(done: int, total: int) -> None:
        if checkpoint is not None and time.monotonic() - saved[0] > 10:
            table.save(checkpoint, build=settings)
            saved[0] = time.monotonic()
        if len(measured) < len(networks) and done * len(networks) >= (
                len(measured) + 1) * total:
            measure_network()

    table.measure(units, seed=seed, progress=progress, on_group=between_groups)
    if checkpoint is not None:
        table.save(checkpoint, build=settings)
    for _ in tqdm(range(len(networks) - len(measured)), desc="calibration", unit="net",
                  disable=not progress or None):
        measure_network()
    sums = [table.unit_sum(arch) for arch in networks]
    table.fit(sums, measured)
    table.calibration = {"unit_sums": sums, "measured": measured}
    return table
