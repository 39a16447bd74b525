"""Static int8 quantisation of a network, with ONNX Runtime's public quantisation API.

What ``--latency onnxruntime-int8``, ``nas latency build --runtime onnxruntime-int8``,
``nas export --int8`` and the re-ranking's int8 accuracy all run, so that the int8 network
timed is the one exported and scored:

1. every BatchNorm that follows a conv is folded into it (:func:`nas.model.fold_batchnorm`):
   left in, the BatchNorm after a MixConv's concat is an operation of its own, which the
   quantiser handles poorly (issue 27 measured "Axis 1 is out-of-range" warnings and a
   slower network);
2. the network is exported to ONNX by the exporter ``nas export`` uses
   (:func:`nas.model.onnx_program`);
3. ``onnxruntime.quantization.quant_pre_process`` (symbolic shape inference and ONNX
   Runtime's graph optimisations, which ONNX Runtime's quantisation guide asks for
   before static quantisation);
4. ``onnxruntime.quantization.quantize_static``: QDQ format (QuantizeLinear /
   DequantizeLinear pairs, which ONNX Runtime fuses into int8 kernels such as
   QLinearConv when it loads the model), activations uint8 with a zero point, weights
   int8, symmetric, one scale per output channel ("U8S8", ONNX Runtime's CPU default),
   ranges from MinMax calibration on the given inputs.

``reduce_range`` (weights in 7 bits) is on only on x86 CPUs without VNNI: there the U8S8
kernels add pairs of uint8 x int8 products in saturating 16-bit registers (``vpmaddubsw``)
and full-range weights can overflow; VNNI (``vpdpbusd``) accumulates in 32 bits (ONNX
Runtime's quantisation guide, "When to use reduce-range and per-channel quantization").
The flags are read from ``/proc/cpuinfo`` (Linux); an x86 CPU whose flags cannot be read
is taken to lack VNNI (the choice that cannot overflow), and other CPUs do not need it.
:func:`quant_settings` says what was detected; ``describe()`` states every choice.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..model import fold_batchnorm, onnx_program

__all__ = ["QuantSettings", "quant_settings", "cpu_has_vnni", "quantize_onnx",
           "quantize_module", "OnnxModel", "CALIBRATION_INPUTS", "require_onnxruntime"]

#: Calibration inputs per quantisation unless the caller gives others: issue 27 measured
#: int8 latencies with 16, and each input costs ~0.15 s of calibration at 224 px here.
CALIBRATION_INPUTS = 16

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def require_onnxruntime(what: str) -> None:
    """Raise :class:`UsageError` naming ``what`` when onnx, onnxscript or onnxruntime is
    missing (``pip install "nas[onnx]"``)."""
    try:
        import onnx  # noqa: F401  (the exporter and the extractor)
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UsageError(f"{what} needs {e.name}: pip install 'nas[onnx]'") from None


def cpu_has_vnni(cpuinfo: str = "/proc/cpuinfo") -> Optional[bool]:
    """Whether this x86 CPU has VNNI (``avx512_vnni`` or ``avx_vnni`` among its flags);
    None where that cannot be read (not Linux) or does not apply (not x86)."""
    if platform.machine().lower() not in _X86:
        return None
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(f in flags for f in _VNNI_FLAGS) if flags else None


@dataclass(frozen=True)
class QuantSettings:
    """The quantisation choices (the module docstring says why each).

    Args:
        reduce_range: weights in 7 bits (x86 without VNNI).
        per_channel: one weight scale per output channel (else one per tensor).
        calibration_inputs: how many inputs calibrate the activation ranges where the
            caller gives none.
        cpu: what was detected, for :meth:`describe`.
    """

    reduce_range: bool = False
    per_channel: bool = True
    calibration_inputs: int = CALIBRATION_INPUTS
    cpu: str = ""

    def describe(self) -> str:
        return (f"static QDQ, uint8 activations, int8 weights "
                f"{'per channel' if self.per_channel else 'per tensor'}, reduce_range "
                f"{'on' if self.reduce_range else 'off'}"
                f"{f' ({self.cpu})' if self.cpu else ''}, MinMax calibration, BatchNorm folded")


def quant_settings(calibration_inputs: int = CALIBRATION_INPUTS,
                   cpuinfo: str = "/proc/cpuinfo") -> QuantSettings:
    """The settings for this machine: ``reduce_range`` on x86 unless it has VNNI."""
    x86 = platform.machine().lower() in _X86
    vnni = cpu_has_vnni(cpuinfo)
    if not x86:
        cpu = f"{platform.machine() or 'this CPU'}: no 16-bit saturation to avoid"
    elif vnni is None:
        cpu = "x86, VNNI unknown: taken as absent"
    else:
        cpu = "x86 with VNNI" if vnni else "x86 without VNNI"
    return QuantSettings(reduce_range=x86 and not vnni, calibration_inputs=calibration_inputs,
                         cpu=cpu)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantiser logs progress and advice on the root logger: keep errors only."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def quantize_onnx(model, feeds: Sequence[Dict[str, np.ndarray]],
                  settings: Optional[QuantSettings] = None):
    """``model`` (an ``onnx.ModelProto`` in float32) statically quantised to int8 QDQ.

    Args:
        model: the float network, BatchNorm already folded.
        feeds: calibration samples, each ``{input name: float32 array}`` as the model takes
            it (e.g. ``[1, C, H, W]``); MinMax ranges are taken over all of them.
        settings: the choices (default: :func:`quant_settings`).

    Returns:
        The quantised ``onnx.ModelProto``.

    Raises:
        ValueError: no calibration sample.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    settings = settings or quant_settings()
    if not feeds:
        raise ValueError("static quantisation needs at least one calibration sample")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter(feeds)

        def get_next(self):
            return next(self.samples, None)

    with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp, _quiet():
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(model, str(pre))
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(str(out))


def quantize_module(module: nn.Module, calibration: torch.Tensor,
                    settings: Optional[QuantSettings] = None, input_name: str = "input",
                    output_names: Sequence[str] = ("logits",), dynamic_shapes=None,
                    example: Optional[torch.Tensor] = None):
    """``module`` folded, exported and quantised: the int8 form of one network.

    Args:
        module: a float network of nas's block classes (BatchNorm is folded here).
        calibration: ``[n, C, H, W]`` float inputs, normalised as the network expects
            (e.g. :func:`nas.train.calibration_inputs`); each is one calibration sample.
        settings: the choices (default: :func:`quant_settings`).
        input_name, output_names: the ONNX graph's names (``nas export``'s by default).
        dynamic_shapes: torch.export's (default: a dynamic batch axis, as ``model.onnx``).
        example: the input to export with (default: the first calibration input).

    Returns:
        ``(float model, int8 model)``: the folded float ``onnx.ModelProto`` the int8 one
        was made from, and the quantised one.
    """
    folded = fold_batchnorm(module).cpu().eval()
    if dynamic_shapes is None:
        dynamic_shapes = ({0: torch.export.Dim("batch")},)
    example = (calibration[:1] if example is None else example).cpu().float().contiguous()
    float_model = onnx_program(folded, (example,), [input_name], list(output_names),
                               dynamic_shapes=dynamic_shapes).model_proto
    feeds = [{input_name: calibration[i:i + 1].cpu().float().contiguous().numpy()}
             for i in range(len(calibration))]
    return float_model, quantize_onnx(float_model, feeds, settings)


class OnnxModel:
    """An ONNX model in an ONNX Runtime CPU session (default graph optimisations,
    sequential execution), called like a torch module.

    Args:
        model: the model (``onnx.ModelProto``, its serialised bytes, or a file path).
        threads: intra-op threads.
    """

    def __init__(self, model, threads: int = 1):
        import onnxruntime as ort

        if hasattr(model, "SerializeToString"):
            model = model.SerializeToString()
        elif isinstance(model, Path):
            model = str(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_names: List[str] = [i.name for i in self.session.get_inputs()]

    def run(self, feed: Dict[str, np.ndarray]) -> list:
        """The session's outputs (numpy arrays) for ``feed``."""
        return self.session.run(None, feed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The first output for the one input ``x`` (float32, e.g. ``[N, C, H, W]``)."""
        out = self.run({self.input_names[0]: x.detach().cpu().float().contiguous().numpy()})
        return torch.from_numpy(out[0])
