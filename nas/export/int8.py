"""``nas export ... --int8``: ``model.int8.onnx`` beside ``model.onnx``, checked.

The exported network (``model.py`` + ``weights.pt`` loaded back) is quantised by
:func:`nas.latency.quantize.quantize_module`, the path the ``onnxruntime-int8`` latency
backend times (BatchNorm folded, static QDQ, uint8 activations, int8 weights per channel,
``reduce_range`` where the CPU needs it), calibrated on training images of the run's data
(:func:`nas.train.calibration_inputs`), and written with the same input and output names
and dynamic axes as ``model.onnx``. It is then loaded back in ONNX Runtime and checked on
held-out images (the validation carve, never the test split): its largest output
difference from the float network and, for a classifier, how often its top-1 class agrees.
Its size and its latency next to ``model.onnx``'s (ONNX Runtime, batch 1, one thread,
round-robin, :meth:`nas.latency.Runtime.time`) are measured on this machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..errors import ExportError
from ..files import atomic_write_bytes
from ..latency import OnnxModel, OnnxRuntime, quant_settings, quantize_module
from ..latency.quantize import CALIBRATION_INPUTS, require_onnxruntime
from ..model import onnx_axes
from ..runs import ExportDir

__all__ = ["Int8Inputs", "Int8Report", "int8_inputs", "write_int8", "HELDOUT_IMAGES"]

#: Held-out images the int8 network is checked on.
HELDOUT_IMAGES = 256
#: Timed runs of each ONNX file (the fastest is kept).
REPEATS = 20


@dataclass
class Int8Inputs:
    """What an int8 export calibrates on and is checked on.

    Args:
        calibration: ``[n, C, H, W]`` training images, normalised as in training.
        heldout: ``[m, C, H, W]`` validation images, normalised the same way.
        source: where they come from, for ``arch.json`` (data, carve, counts).
    """

    calibration: torch.Tensor
    heldout: torch.Tensor
    source: Dict[str, Any] = field(default_factory=dict)


def int8_inputs(data: str, resolution: Optional[int], channels: int,
                val_fraction: float = 0.1, split_seed: int = 0) -> Int8Inputs:
    """The calibration and held-out images of ``data`` at ``resolution`` (None: the data's
    own) with ``channels`` channels, the validation carve ``val_fraction``/``split_seed``
    as the weights were trained with.

    Raises:
        UsageError: onnx, onnxscript or onnxruntime is missing.
        DataError: the data cannot be read.
    """
    from ..train import calibration_inputs, heldout_batches

    require_onnxruntime("nas export --int8")
    carve = dict(val_fraction=val_fraction, split_seed=split_seed)
    calibration = calibration_inputs(data, CALIBRATION_INPUTS, resolution, seed=0,
                                     channels=channels, **carve)
    heldout = torch.cat([x for x, _ in heldout_batches(data, resolution, limit=HELDOUT_IMAGES,
                                                        channels=channels, **carve)])
    return Int8Inputs(calibration, heldout, {
        "data": data, "calibration_images": len(calibration), "calibration_seed": 0,
        "heldout_images": len(heldout), **carve})


def _outputs(run, x: torch.Tensor, chunk: int = 32) -> List[torch.Tensor]:
    """Every output of ``run`` on ``x``, in chunks (a network's activations at 224 px for
    hundreds of images would not fit in memory at once)."""
    parts: List[List[torch.Tensor]] = []
    for start in range(0, len(x), chunk):
        out = run(x[start:start + chunk])
        parts.append(list(out) if isinstance(out, (list, tuple)) else [out])
    return [torch.cat([torch.as_tensor(p[i]) for p in parts]) for i in range(len(parts[0]))]


#: Below this top-1 agreement with the float network an int8 export is flagged. A chosen
#: threshold, not a measured one: one image in twenty changing class is a loss worth
#: measuring before deploying (a briefly trained supernet's weights can show far more).
INT8_AGREEMENT = 0.95


@dataclass
class Int8Report:
    """What :func:`write_int8` measured of ``model.int8.onnx``: its size beside the float
    file's, both timed in ONNX Runtime (``baseline``: which float file), the largest output
    difference from the float network on ``heldout`` images (and top-1 agreement of a
    trained classifier), and how it was calibrated."""

    path: Path
    bytes: int
    fp32_bytes: int
    fp32_ms: float
    int8_ms: float
    max_diff: float
    largest: float
    agreement: Optional[float]
    heldout: int
    calibration: int
    quantise_s: float
    settings: str
    baseline: str
    input: List[int]

    def lines(self, backbone: bool) -> List[str]:
        """What ``nas export --int8`` prints about it."""
        c, h, w = self.input
        what = "features" if backbone else "logits"
        agreement = (f" (top-1 class agrees on {self.agreement:.1%})"
                     if self.agreement is not None else "")
        return [
            f"int8: {self.path}: {self.bytes / 1e6:.2f} MB, "
            f"{self.bytes / self.fp32_bytes:.2f}x the float file's "
            f"{self.fp32_bytes / 1e6:.2f} MB",
            f"      latency {self.int8_ms:.2f} ms int8 vs {self.fp32_ms:.2f} ms float "
            f"({self.baseline}): {self.int8_ms / self.fp32_ms:.2f}x (ONNX Runtime, "
            f"batch 1, {c}x{h}x{w}, 1 thread, this machine)",
            f"      max |{what} - float network's| = {self.max_diff:.3g} "
            f"({self.max_diff / max(self.largest, 1e-12):.1%} of the largest |{what}| "
            f"{self.largest:.3g}) on {self.heldout} validation images{agreement}",
            f"      calibrated on {self.calibration} training images in "
            f"{self.quantise_s:.1f} s: {self.settings}"] + (
            [f"warning: the int8 network's top-1 class differs from the float network's on "
             f"{1 - self.agreement:.1%} of {self.heldout} images: measure its accuracy on "
             "your data before deploying it, or deploy model.onnx"]
            if self.agreement is not None and self.agreement < INT8_AGREEMENT else [])


def write_int8(model: nn.Module, out: ExportDir, inputs: Int8Inputs,
               output_names: Sequence[str] = ("logits",), spatial: int = 0,
               trained: bool = True) -> Int8Report:
    """Quantise ``model`` (the exported network, eval mode) into ``out/model.int8.onnx``,
    check it and time it; its summary is added to ``out/arch.json`` under ``int8``.

    Args:
        model: the float network written (``model.py`` + ``weights.pt``).
        out: the export directory (``model.onnx``, when written, is the float baseline;
            otherwise the folded float network the int8 one was made from).
        inputs: calibration and held-out images (:func:`int8_inputs`).
        output_names, spatial: as ``model.onnx``'s (a backbone's levels; its deepest
            reduction for dynamic height and width).
        trained: False for fresh weights, whose top-1 classes mean nothing (not compared).

    Returns:
        ``{"path", "bytes", "fp32_bytes", "fp32_ms", "int8_ms", "max_diff", "largest",
        "agreement", "heldout", "calibration", "quantise_s", "settings", "baseline",
        "input"}``: sizes in bytes, latencies in ms (batch 1, one thread; ``baseline``
        names the float file timed), the largest absolute output difference from the float
        network over the held-out images and the largest absolute float output there, the
        share of them whose top-1 class agrees (None for a backbone), the seconds
        quantisation took and the input shape ``[C, H, W]``.

    Raises:
        ExportError: the quantiser failed.
    """
    model = model.cpu().eval()
    settings = quant_settings(len(inputs.calibration))
    axes, example = onnx_axes(inputs.calibration[:1], spatial)
    started = time.perf_counter()
    try:
        float_model, int8_model = quantize_module(
            model, inputs.calibration, settings, "input", output_names,
            dynamic_shapes=(axes,), example=example)
    # The exporter's and the quantiser's coverage varies between versions: one line.
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ExportError(f"{out.onnx_int8.name} not written: {e.__class__.__name__}: "
                          f"{first}") from None
    quantise_s = time.perf_counter() - started
    data = int8_model.SerializeToString()
    atomic_write_bytes(out.onnx_int8, data)
    int8 = OnnxModel(out.onnx_int8)
    baseline = out.onnx.name if out.onnx.exists() else "the folded float network"
    fp32 = OnnxModel(out.onnx if out.onnx.exists() else float_model)
    fp32_bytes = out.onnx.stat().st_size if out.onnx.exists() else float_model.ByteSize()

    heldout = inputs.heldout.float().contiguous()
    with torch.no_grad():
        reference = _outputs(model, heldout)
    quantised = _outputs(lambda x: int8.run({"input": x.numpy()}), heldout)
    if [r.shape for r in reference] != [q.shape for q in quantised]:
        raise ExportError(f"{out.onnx_int8.name} gives outputs of shapes "
                          f"{[tuple(q.shape) for q in quantised]}, the network "
                          f"{[tuple(r.shape) for r in reference]}")
    max_diff = max((q - r).abs().max().item() for q, r in zip(quantised, reference))
    largest = max(r.abs().max().item() for r in reference)
    agreement = None
    if trained and len(reference) == 1 and reference[0].dim() == 2:  # a classifier's logits
        agreement = (quantised[0].argmax(1) == reference[0].argmax(1)).float().mean().item()

    feed = {"input": heldout[:1].numpy()}
    runtime = OnnxRuntime(threads=1)
    fp32_ms, int8_ms = runtime.time([lambda: fp32.run(feed), lambda: int8.run(feed)],
                                    repeats=REPEATS)
    report = Int8Report(out.onnx_int8, len(data), fp32_bytes, fp32_ms, int8_ms, max_diff,
                        largest, agreement, len(heldout), len(inputs.calibration), quantise_s,
                        settings.describe(), baseline, list(heldout.shape[1:]))
    meta = json.loads(out.arch_json.read_text())
    meta["int8"] = {"file": out.onnx_int8.name, "quantisation": settings.describe(),
                    "calibration": inputs.source,
                    "check": {"max_abs_diff": max_diff, "largest_abs_output": largest,
                              "top1_agreement": agreement,
                              "heldout_images": len(heldout),
                              "against": "the float network (model.py + weights.pt)"
                              if trained else "the float network with fresh weights"},
                    "bytes": len(data)}
    atomic_write_bytes(out.arch_json, (json.dumps(meta, indent=2) + "\n").encode())
    return report
