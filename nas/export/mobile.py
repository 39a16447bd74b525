"""Mobile formats of an export: NCNN, MNN, TFLite and Core ML, each from an optional extra.

    check_formats(["ncnn", "tflite"])                  # before anything is written
    convert_export("mynet", ["ncnn"], inputs)          # -> {"ncnn": Converted(...)}

Each conversion runs in a process of its own (:mod:`nas.export.convert`) with a time
limit, converts the network ``model.py`` and its weights define (traced at batch 1 and
the inputs' size: mobile runtimes take static shapes), and, where the format's runtime
runs on Linux, runs the converted file on the same inputs as torch: the largest absolute
difference is the check. Core ML predicts only on macOS, so it is converted, not run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import ExportError
from ..files import remove_path
from ..runs import ExportDir
from .formats import DEFAULT_TIMEOUT, FORMATS, Format
from .write import load_exported, max_difference

__all__ = ["FORMATS", "Format", "Converted", "check_formats", "convert_export", "run_worker"]




@dataclass(frozen=True)
class Converted:
    """What one conversion gave.

    Attributes:
        format: the format's name.
        paths: the files (or the Core ML folder) written into the export directory.
        seconds: wall time of the conversion alone (not the process start or the check).
        delta: the largest absolute difference between the runtime's outputs and torch's
            on the same inputs (logits, or every feature map of a backbone); None when
            the runtime does not run here (Core ML).
        runtime: the runtime and its version that ran the check, or None.
    """

    format: str
    paths: Tuple[Path, ...]
    seconds: float
    delta: Optional[float]
    runtime: Optional[str]


def check_formats(formats: Sequence[str]) -> List[Format]:
    """The formats named, once each, in the order given.

    Raises:
        ExportError: an unknown format, or one whose extra is not installed (one line
            naming the ``pip install`` to run).
    """
    picked: List[Format] = []
    for name in formats:
        if name not in FORMATS:
            raise ExportError(f"unknown format {name!r}: expected one of "
                              f"{', '.join(FORMATS)}")
        fmt = FORMATS[name]
        missing = [m for m in fmt.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ExportError(f"--format {name} needs {', '.join(missing)}: "
                              f"pip install 'nas[{fmt.extra}]'")
        if fmt not in picked:
            picked.append(fmt)
    return picked


def convert_export(out_dir, formats: Sequence[str], inputs: Sequence[torch.Tensor],
                   timeout: float = DEFAULT_TIMEOUT) -> Dict[str, Converted]:
    """Convert the export in ``out_dir`` to each of ``formats`` and check each against torch.

    Args:
        out_dir: an export directory: ``model.py`` and its ``weights.pt``; without
            weights (``--arch``), fresh ones (seed 0) are converted: for timing on a
            device and for checking the conversion, not for predictions.
        formats: names of :data:`FORMATS`.
        inputs: batch-1 tensors at the size to convert for (the first is traced); each is
            run in torch and in the format's runtime.
        timeout: seconds each converter may run.

    Returns:
        ``{format: Converted}``.

    Raises:
        ExportError: a format is unknown or not installed, a converter failed (its last
            line of output) or ran past ``timeout``.
    """
    picked = check_formats(formats)
    if not inputs or any(x.dim() != 4 or x.shape[0] != 1 for x in inputs):
        raise ExportError("conversion inputs must be batch-1 images (1, C, H, W)")
    out = ExportDir(out_dir)
    inputs = [x.detach().cpu().contiguous() for x in inputs]
    results: Dict[str, Converted] = {}
    with tempfile.TemporaryDirectory(prefix="nas-convert-") as tmp:
        tmp_path = Path(tmp)
        with torch.random.fork_rng():  # fresh weights, seeded, without touching the caller's RNG
            torch.manual_seed(0)
            net = load_exported(out.path, "nas_checked_model").build_model()
        weights_path = out.weights
        if weights_path.exists():
            net.load_state_dict(torch.load(weights_path, weights_only=True))
        else:
            weights_path = ExportDir(tmp_path).weights
            torch.save(net.state_dict(), weights_path)
        net.eval()
        with torch.no_grad():
            expected = [net(x) for x in inputs]
        torch.save(inputs, tmp_path / "inputs.pt")
        for fmt in picked:
            results[fmt.name] = _convert_one(fmt, out, weights_path, tmp_path, expected,
                                             timeout)
    return results


def _convert_one(fmt: Format, out: ExportDir, weights: Path, tmp: Path,
                 expected, timeout: float) -> Converted:
    stage, work = tmp / f"{fmt.name}-stage", tmp / f"{fmt.name}-work"
    stage.mkdir()
    work.mkdir()
    job = {"format": fmt.name, "export_dir": str(out.path.resolve()),
           "weights": str(weights), "inputs": str(tmp / "inputs.pt"),
           "stage": str(stage), "work": str(work), "result": str(work / "result.json")}
    result = run_worker(job, work, timeout, f"--format {fmt.name}")
    delta = None
    if result["outputs"] is not None:
        got = torch.load(result["outputs"], weights_only=True)
        delta = max(max_difference(g, list(e) if isinstance(e, (list, tuple)) else [e])
                    for g, e in zip(got, expected))
    paths = []
    for src, dst in zip(ExportDir(stage).format_files(fmt.name), out.format_files(fmt.name)):
        if not src.exists():
            raise ExportError(f"--format {fmt.name}: the converter wrote no {src.name}")
        remove_path(dst)
        shutil.move(str(src), str(dst))
        paths.append(dst)
    return Converted(fmt.name, tuple(paths), float(result["seconds"]), delta,
                     result["runtime"])


def run_worker(job: Dict, work: Path, timeout: float, what: str) -> Dict:
    """Run :mod:`nas.export.convert` on ``job`` (its ``result`` file in ``work``) in a
    process of its own, within ``timeout`` seconds; returns the result it wrote.

    Raises:
        ExportError: ``what`` failed (with the last line of its output) or ran too long.
    """
    (work / "job.json").write_text(json.dumps(job))
    log = work / "log.txt"
    with open(log, "wb") as sink:
        # a session of its own: on timeout the whole group goes (pnnx runs a binary)
        proc = subprocess.Popen([sys.executable, "-m", "nas.export.convert",
                                 str(work / "job.json")], stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_child_env())
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ExportError(f"{what}: the converter ran past {timeout:g} s and was "
                              "stopped") from None
    result = Path(job["result"])
    if code != 0 or not result.exists():
        raise ExportError(f"{what}: the converter failed (exit {code}): {_last_line(log)}")
    return json.loads(result.read_text())


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    # nas must be importable in the worker as it is here (a source checkout, an install)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    # a converter that tries to pip install something finds no index instead of the network
    env.setdefault("PIP_NO_INDEX", "1")
    return env


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
