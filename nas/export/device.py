"""A space's blocks as files for a runtime on the user's device: ``nas latency pack``.

    pack_space(load_space("mixnet_300m"), "ncnn", "pack/")   # then, on the device:
    #   python pack/run_latency.py          -> pack/timings.json
    #   nas latency read pack -o lut.json   (nas.latency.read_timings)

A pack holds every unit an architecture of the space can have (stem, block, tail:
:mod:`nas.latency.units`; ``archs=N``: only those of N random architectures) and
``calibrate`` whole networks, with fresh weights (latency does not depend on them), at
batch 1 and the space's target input; ``manifest.json`` says which file and which
input/output names run each; ``run_latency.py`` (:mod:`nas.latency.runner`) times them
there with the standard library and the runtime alone.

* ``onnxruntime``: one ``.onnx`` file per unit, cut from a bundle of
  :data:`~nas.latency.runtime.ONNX_BUNDLE` units exported together (as ``nas latency build
  --runtime onnxruntime`` times them here);
* ``ncnn``: one ``.ncnn.param``/``.bin`` per bundle of units side by side (pnnx, in a
  process of its own with a time limit); ncnn computes only the unit whose output is
  asked for, so one file serves all of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch

from ..arch import Architecture
from ..errors import ExportError
from ..files import atomic_write_bytes, shell_path
from ..latency import runner
from ..latency.device import PACK_FORMAT
from ..latency.runtime import ONNX_BUNDLE, onnx_unit_models
from ..latency.table import DEVICE_RUNTIMES
from ..latency.units import space_units, unit_keys
from ..model import build_model, onnx_program
from .mobile import DEFAULT_TIMEOUT, check_formats, run_worker

__all__ = ["pack_space", "Pack", "RUNNER_NAME"]

#: How the runner copied into a pack is started on the device.
RUNNER_HINT = "run_latency.py [--threads N]"


@dataclass
class Pack:
    """What :func:`pack_space` wrote: the units and whole networks to time on the device,
    how long packing took, the manifest and the runner."""

    runtime: str
    units: int
    networks: int
    seconds: float
    manifest: Path
    runner: Path

    def lines(self, space_name: str, out: str) -> List[str]:
        """What ``nas latency pack`` prints: what was packed into ``out`` (as the user named
        it) and what to run on the device."""
        return [f"{self.units} units and {self.networks} networks of {space_name} packed for "
                f"{self.runtime} in {self.seconds / 60:.1f} min: {out}",
                f"on the device: python {RUNNER_HINT} (needs Python 3.8+ and "
                f"{self.runtime} only), then bring back timings.json and run:",
                f"  nas latency read {shell_path(out)} -o lut-{self.runtime}-device.json"]

RUNNER_NAME = "run_latency.py"


def _keys(space, archs: int, networks: List[Architecture], rng: random.Random) -> List[str]:
    """The unit keys to pack: the space's every unit, or those of ``archs`` random
    architectures and the extremes; the calibration networks' in either case."""
    if not archs:
        return list(space_units(space))
    keys: Dict[str, None] = {}
    for arch in [space.extreme_arch(True), space.extreme_arch(False)] + [
            space.sample(rng) for _ in range(archs)] + networks:
        keys.update(dict.fromkeys(unit_keys(arch)))
    return list(keys)


def pack_space(space, runtime: str, out_dir, archs: int = 0, calibrate: int = 12,
               seed: int = 0, force: bool = False, timeout: float = DEFAULT_TIMEOUT,
               progress: bool = True) -> Pack:
    """Write the pack of ``space`` for ``runtime`` into ``out_dir``.

    Args:
        space: the search space.
        runtime: one of :data:`~nas.latency.table.DEVICE_RUNTIMES`.
        out_dir: the pack's folder (created; an earlier pack there needs ``force``).
        archs: 0 for every unit of the space, N for the units of N random architectures
            and the two extremes (a partial table: a search then refuses a network with a
            unit it lacks, since this machine cannot time it for the device).
        calibrate: whole networks to time (the table's scale is fitted on them).
        seed: for the random architectures and the order of the units.
        force: replace an earlier pack in ``out_dir``.
        timeout: seconds each ncnn conversion may run.

    Returns:
        What was written (:class:`Pack`).

    Raises:
        ExportError: an unknown runtime, a missing converter, an existing pack without
            ``force``, or a failed conversion.
    """
    from tqdm import tqdm

    if runtime not in DEVICE_RUNTIMES:
        raise ExportError(f"nas latency pack --runtime must be one of "
                          f"{', '.join(DEVICE_RUNTIMES)}, got {runtime!r}")
    if runtime == "ncnn":
        check_formats(["ncnn"])  # pnnx converts, in a worker process
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if runtime == "onnxruntime" and missing:  # torch's ONNX exporter
        raise ExportError(f"nas latency pack --runtime onnxruntime needs {', '.join(missing)}: "
                          "pip install 'nas[onnx]'")
    out = Path(out_dir)
    if (out / "manifest.json").exists() and not force:
        raise ExportError(f"{out} already holds a pack; choose another -o or pass --force")
    started = time.perf_counter()
    rng = random.Random(seed)
    networks = [space.sample(rng) for _ in range(calibrate)]
    units = space_units(space)  # every unit's shape and builder (built only when packed)
    keys = sorted(_keys(space, archs, networks, rng))
    random.Random(seed).shuffle(keys)  # a file's units run round-robin: mix their sizes
    if force:
        for name in ("units", "networks"):
            shutil.rmtree(out / name, ignore_errors=True)
    (out / "units").mkdir(parents=True, exist_ok=True)
    (out / "networks").mkdir(exist_ok=True)
    entries: List[Dict[str, Any]] = []
    groups = [keys[i:i + ONNX_BUNDLE] for i in range(0, len(keys), ONNX_BUNDLE)]
    with tempfile.TemporaryDirectory(prefix="nas-pack-") as tmp:
        for g, group in enumerate(tqdm(groups, desc=f"pack ({runtime})", unit="file",
                                       disable=not progress or None)):
            shapes = [list(units[k][0]) for k in group]
            name = f"units/b{g:04d}"
            if runtime == "onnxruntime":
                torch.manual_seed(0)
                parts = onnx_unit_models([units[k][1]() for k in group],
                                         [torch.randn(*s) for s in shapes])
                for i, (key, part, shape) in enumerate(zip(group, parts, shapes)):
                    file = f"{name}-{i:02d}.onnx"
                    atomic_write_bytes(out / file, part.SerializeToString())
                    entries.append({"key": key, "file": file, "group": name,
                                    "input": f"x{i}", "output": f"y{i}", "shape": shape})
            else:
                _ncnn_file(out, name, {"space": str(Path(space.source).resolve()), "keys": group},
                           Path(tmp), timeout)
                entries += [{"key": key, "file": f"{name}.ncnn", "group": name,
                             "input": f"in{i}", "output": f"out{i}", "shape": shape}
                            for i, (key, shape) in enumerate(zip(group, shapes))]
        nets = []
        for j, arch in enumerate(networks):
            inp = arch.input
            shape = [1, inp.channels, inp.resolution, inp.resolution]
            name = f"networks/n{j:02d}"
            if runtime == "onnxruntime":
                torch.manual_seed(0)
                program = onnx_program(build_model(arch).eval(), [torch.randn(*shape)],
                                       ["input"], ["logits"])
                atomic_write_bytes(out / f"{name}.onnx", program.model_proto.SerializeToString())
                nets.append({"arch": str(arch), "file": f"{name}.onnx", "input": "input",
                             "output": "logits", "shape": shape})
            else:
                _ncnn_file(out, name, {"network": str(arch)}, Path(tmp), timeout)
                nets.append({"arch": str(arch), "file": f"{name}.ncnn", "input": "in0",
                             "output": "out0", "shape": shape})
    manifest = {"format": PACK_FORMAT, "runtime": runtime, "space": space.name,
                "space_sha256": hashlib.sha256(space.text.encode()).hexdigest(),
                "archs": archs, "seed": seed, "units": entries, "networks": nets}
    manifest["id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()
                                    ).hexdigest()[:16]
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    atomic_write_bytes(out / RUNNER_NAME, Path(runner.__file__).read_bytes())
    return Pack(runtime, len(entries), len(nets), time.perf_counter() - started,
                out / "manifest.json", out / RUNNER_NAME)


def _ncnn_file(out: Path, name: str, what: Dict[str, Any], tmp: Path, timeout: float) -> None:
    """Convert a bundle of units (``what``: ``space``, ``keys``) or a whole network
    (``network``) to ``out/name.ncnn.param`` and ``.bin`` in a worker process."""
    work = Path(tempfile.mkdtemp(dir=tmp))
    stage = work / "stage"
    stage.mkdir()
    job = {"pack": True, **what, "name": Path(name).name, "stage": str(stage),
           "work": str(work), "result": str(work / "result.json")}
    run_worker(job, work, timeout, f"packing {name} for ncnn")
    for suffix in (".ncnn.param", ".ncnn.bin"):
        shutil.move(str(stage / (Path(name).name + suffix)), str(out / (name + suffix)))
