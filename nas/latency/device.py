"""Latency on the user's own device: a pack's timings read back as a lookup table.

``nas latency pack`` (:mod:`nas.export.device`) writes a space's units and a few whole
calibration networks as files for a runtime, with ``run_latency.py``
(:mod:`nas.latency.runner`) to time them on the device; :func:`read_timings` turns the
``timings.json`` it writes into a :class:`~nas.latency.LatencyTable` for ``--latency
lut:FILE``: the entries are the device's, and the scale the median ratio of each
calibration network's measured latency to the sum of its units, as ``nas latency build``
fits it here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..arch import Architecture
from ..config import Settings, a_path, setting
from ..errors import CheckpointError
from .table import DEVICE_RUNTIMES, LatencyTable, UnitsConfig, use_line
from .units import unit_keys

__all__ = ["PACK_FORMAT", "TIMINGS_FORMAT", "PackConfig", "ReadConfig", "read_manifest",
           "read_timings", "read_table_file", "ReadTable"]


@dataclass
class PackConfig(UnitsConfig):
    """How ``nas latency pack`` writes a space's units for a device (a partial pack: a
    search refuses networks with units it lacks, since this machine is not the device)."""

    runtime: str = setting("onnxruntime", choices=DEVICE_RUNTIMES,
                           help="the device's runtime")
    seed: int = setting(0, help="seed of the random architectures and of the units' order")


@dataclass
class ReadConfig(Settings):
    """Where ``nas latency read`` finds a pack's timings."""

    timings: Optional[str] = setting(None, path=a_path,
                                     help="the runner's timings.json (none: PACK/timings.json)")


PACK_FORMAT = "nas-device-pack/1"
TIMINGS_FORMAT = "nas-device-timings/1"


def _json(path: Path, what: str) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a {what} ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a {what}")
    return data


def read_manifest(pack_dir) -> Dict[str, Any]:
    """The ``manifest.json`` of a pack.

    Raises:
        CheckpointError: missing, or not a pack this nas writes.
    """
    path = Path(pack_dir) / "manifest.json"
    manifest = _json(path, "nas latency pack manifest")
    if manifest.get("format") != PACK_FORMAT or manifest.get("runtime") not in DEVICE_RUNTIMES:
        raise CheckpointError(f"{path}: not a {PACK_FORMAT} manifest")
    return manifest


def _milliseconds(values: Any, where: str) -> Dict[str, float]:
    if not isinstance(values, dict):
        raise CheckpointError(f"{where} must be an object of milliseconds")
    bad = [k for k, v in values.items() if isinstance(v, bool) or
           not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0]
    if bad:
        raise CheckpointError(f"{where}: {bad[0]!r} is not a positive number of milliseconds")
    return {str(k): float(v) for k, v in values.items()}


def read_timings(pack_dir, timings: Optional[Path] = None) -> LatencyTable:
    """The lookup table of a pack timed on its device.

    Args:
        pack_dir: the pack (``manifest.json``).
        timings: the runner's ``timings.json`` (default: the pack's own).

    Returns:
        A table for the pack's runtime, its ``device`` the runner's description of the
        device (machine, system, runtime version, ...), its scale fitted on the
        calibration networks; what the fit saw is ``table.calibration``.

    Raises:
        CheckpointError: the timings are not the pack's (another pack, runtime), lack a
            unit or a calibration network, or hold a latency that is not a positive
            number.
    """
    manifest = read_manifest(pack_dir)
    path = Path(timings) if timings is not None else Path(pack_dir) / "timings.json"
    data = _json(path, "timings file of run_latency.py")
    if data.get("format") != TIMINGS_FORMAT:
        raise CheckpointError(f"{path}: not a {TIMINGS_FORMAT} file")
    if data.get("pack") != manifest["id"] or data.get("runtime") != manifest["runtime"]:
        raise CheckpointError(f"{path}: timings of another pack (id {data.get('pack')!r}, "
                              f"runtime {data.get('runtime')!r}), not of {pack_dir}")
    entries = _milliseconds(data.get("units"), f"{path}: units")
    measured = _milliseconds(data.get("networks"), f"{path}: networks")
    wanted = [u["key"] for u in manifest["units"]]
    missing = [k for k in wanted if k not in entries]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} of {len(wanted)} units have no "
                              f"timing (e.g. {missing[0]}); rerun run_latency.py to finish")
    archs = [n["arch"] for n in manifest["networks"]]
    if any(a not in measured for a in archs) or len(archs) < 1:
        raise CheckpointError(f"{path}: the calibration networks were not all timed; "
                              "rerun run_latency.py to finish")
    device = data.get("device") if isinstance(data.get("device"), dict) else {}
    device = {**{str(k): v for k, v in device.items()
                 if isinstance(v, (str, int, float)) and not isinstance(v, bool)},
              "runtime_version": str(data.get("version", "")), "pack": manifest["id"],
              "space": manifest["space"]}
    threads = data.get("threads")
    repeats = data.get("repeats")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
               for v in (threads, repeats)):
        raise CheckpointError(f"{path}: threads and repeats must be positive integers")
    table = LatencyTable(manifest["runtime"], {k: entries[k] for k in wanted}, 1.0,
                         threads, repeats, path, device)
    sums = [sum(table.entries[k] for k in unit_keys(Architecture.parse(a))) for a in archs]
    ms = [measured[a] for a in archs]
    table.fit(sums, ms)
    table.calibration = {"unit_sums": sums, "measured": ms}
    return table


@dataclass
class ReadTable:
    """What ``nas latency read`` reports: the table read from a pack's timings and where it
    was saved."""

    table: LatencyTable
    path: Path

    def lines(self) -> List[str]:
        t, d = self.table, self.table.device
        return [f"{len(t.entries)} units timed in {d['runtime_version']} on {d.get('machine')} "
                f"{d.get('system', '')} ({t.threads} thread(s)); "
                f"{t.fit_line('timed whole')}: {self.path}", use_line(self.path)]


def read_table_file(pack_dir, timings: Optional[Path], output) -> ReadTable:
    """``nas latency read``: :func:`read_timings` saved as the table file ``output``."""
    table = read_timings(pack_dir, timings)
    table.save(output)
    return ReadTable(table, Path(output))
