"""The converter worker: one mobile format, in a process of its own.

``python -m nas.export.convert JOB.json`` loads an export (``model.py`` and its weights),
converts it to one format and, where that format's runtime runs on this machine, runs the
converted file on the job's inputs. :func:`nas.export.mobile.convert_export` starts it and
compares its outputs with torch's. A process of its own because converters are native
code that can crash, hang (hence the time limit the parent holds) or change process-wide
state (thread pools, logging), and because two of them reach out unless stopped
(:func:`_block_mnn_telemetry`).

The job (JSON): ``format``, ``export_dir``, ``weights`` (a state dict file),
``inputs`` (a ``.pt`` list of batch-1 tensors), ``stage`` (where to write the converted
files, named as ``ExportDir.format_files`` says), ``work`` (scratch), ``result``
(the JSON written on success: ``seconds`` of conversion, ``runtime`` (name and version,
or null), ``outputs`` (a ``.pt`` file of the runtime's outputs per input, or null)).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..runs import ExportDir

__all__ = ["main"]


class _Tuple(nn.Module):
    """A backbone's list of feature maps as a tuple (what tracers take as several outputs)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        out = self.net(x)
        return tuple(out) if isinstance(out, list) else out


def _version(dist: str) -> str:
    return f"{dist} {importlib.metadata.version(dist)}"


def _outputs(result) -> List[torch.Tensor]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


# ------------------------------------------------------------------------- ncnn (pnnx)
def _ncnn(model: nn.Module, inputs: List[torch.Tensor], stage: Path, work: Path):
    import ncnn
    import pnnx

    param, binary = ExportDir(stage).format_files("ncnn")
    started = time.perf_counter()
    # pnnx writes its intermediate files beside the .pt path: all of them into scratch
    pnnx.export(model, str(work / "model.pt"), (inputs[0],),
                pnnxparam=str(work / "model.pnnx.param"), pnnxbin=str(work / "model.pnnx.bin"),
                pnnxpy=str(work / "model_pnnx.py"), pnnxonnx=str(work / "model.pnnx.onnx"),
                ncnnparam=str(param), ncnnbin=str(binary),
                ncnnpy=str(work / "model_ncnn.py"),
                fp16=False)  # fp32 weights: the check measures the conversion, not fp16
    seconds = time.perf_counter() - started

    def run(x: torch.Tensor) -> List[torch.Tensor]:
        net = ncnn.Net()
        # fp32 arithmetic everywhere, so that the difference is the conversion's (ncnn
        # stores and computes in fp16 by default where the CPU has it, e.g. ARMv8.2)
        net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
        net.opt.use_fp16_packed = False
        net.opt.num_threads = 1
        net.load_param(str(param))
        net.load_model(str(binary))
        ex = net.create_extractor()
        ex.input(net.input_names()[0], ncnn.Mat(x.squeeze(0).numpy()).clone())
        outs = []
        for name in net.output_names():
            status, mat = ex.extract(name)
            if status != 0:
                raise RuntimeError(f"ncnn could not compute {name} (status {status})")
            outs.append(torch.from_numpy(mat.numpy().copy()).unsqueeze(0))
        return outs

    return seconds, _version("ncnn"), run


# ---------------------------------------------------------------------------------- MNN
def _block_mnn_telemetry() -> None:
    """Make ``MNN.tools``' usage logger unimportable in this process.

    Importing ``MNN.tools.mnnconvert`` imports ``MNN.tools.utils.log``, which runs ``pip
    install`` of a logging SDK when that is missing and, once it is there, contacts a
    remote server and sends usage data after each conversion. ``mnnconvert`` imports it in
    a ``try``/``except`` and converts without it, so a ``None`` entry in ``sys.modules``
    (Python's documented way to make an import fail) leaves the converter and stops both.
    """
    sys.modules["MNN.tools.utils.log"] = None  # type: ignore[assignment]


def _mnn(model: nn.Module, inputs: List[torch.Tensor], stage: Path, work: Path):
    _block_mnn_telemetry()
    import MNN.expr as F
    import MNN.nn as mnn_nn
    from MNN.tools.mnnconvert import convert

    from ..model import onnx_program

    sample = _outputs(model(inputs[0]))
    names = [f"out{i}" for i in range(len(sample))]
    onnx_path = work / "for_mnn.onnx"  # scratch: MNN converts from it
    started = time.perf_counter()
    # MNN converts from ONNX (static shapes: batch 1 at this resolution)
    onnx_program(model, (inputs[0],), ["input"], names).save(str(onnx_path))
    (target,) = ExportDir(stage).format_files("mnn")
    convert(["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_path),
             "--MNNModel", str(target), "--bizCode", "nas"])
    seconds = time.perf_counter() - started
    if not target.exists():
        raise RuntimeError("MNN's converter wrote no file")
    net = mnn_nn.load_module_from_file(str(target), ["input"], names)

    def run(x: torch.Tensor) -> List[torch.Tensor]:
        outs = net.forward([F.const(x.numpy(), list(x.shape), F.NCHW)])
        return [torch.from_numpy(o.read().copy()).reshape(o.shape) for o in outs]

    return seconds, _version("mnn"), run


# --------------------------------------------------------------------- TFLite (LiteRT)
def _tflite(model: nn.Module, inputs: List[torch.Tensor], stage: Path, work: Path):
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    (target,) = ExportDir(stage).format_files("tflite")
    started = time.perf_counter()
    litert_torch.convert(model, (inputs[0],)).export(str(target))
    seconds = time.perf_counter() - started
    interpreter = Interpreter(model_path=str(target), num_threads=1)
    interpreter.allocate_tensors()
    expected = [tuple(t.shape) for t in _outputs(model(inputs[0]))]

    def run(x: torch.Tensor) -> List[torch.Tensor]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
        interpreter.invoke()
        got = [torch.from_numpy(interpreter.get_tensor(d["index"]).copy())
               for d in interpreter.get_output_details()]
        # TFLite orders several outputs its own way: match them by shape (a backbone's
        # levels differ in shape); equal shapes keep their order
        ordered = []
        for shape in expected:
            match = next((t for t in got if tuple(t.shape) == shape), None)
            if match is None:
                raise RuntimeError(f"the TFLite model has no output of shape {shape}")
            got.remove(match)
            ordered.append(match)
        return ordered

    return seconds, _version("ai-edge-litert"), run


# --------------------------------------------------------------------------- Core ML
def _coreml(model: nn.Module, inputs: List[torch.Tensor], stage: Path, work: Path):
    import warnings

    import coremltools as ct

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; coremltools converts it
        traced = torch.jit.trace(model, inputs[0])
    converted = ct.convert(traced, inputs=[ct.TensorType(name="input",
                                                         shape=tuple(inputs[0].shape))],
                           convert_to="mlprogram")
    converted.save(str(ExportDir(stage).format_files("coreml")[0]))
    # Core ML predicts only on macOS: converted, not run
    return time.perf_counter() - started, None, None


_CONVERTERS: Dict[str, Callable] = {"ncnn": _ncnn, "mnn": _mnn, "tflite": _tflite,
                                    "coreml": _coreml}


def _load(job: dict) -> Tuple[nn.Module, List[torch.Tensor]]:
    from .write import load_exported

    net = load_exported(job["export_dir"], "nas_converted_model").build_model()
    net.load_state_dict(torch.load(job["weights"], weights_only=True))
    inputs = torch.load(job["inputs"], weights_only=True)
    return _Tuple(net.eval()).eval(), list(inputs)


class _Bundle(nn.Module):
    """Several units side by side, unit ``i`` on input ``i``: one ncnn file for them all,
    from which ncnn computes only the unit whose output is asked for."""

    def __init__(self, units):
        super().__init__()
        self.units = nn.ModuleList(units)

    def forward(self, *xs):
        return tuple(m(x) for m, x in zip(self.units, xs))


def _pack_ncnn(job: dict) -> int:
    """A ``nas latency pack`` file: the units ``job["keys"]`` of the space ``job["space"]``
    side by side, or a whole network (``job["network"]``), with fresh weights, as
    ``stage/NAME.ncnn.param`` + ``.bin``."""
    import pnnx

    from ..arch import Architecture
    from ..latency.units import space_units
    from ..model import build_model
    from ..space import load_space

    torch.manual_seed(0)
    if job.get("network"):
        arch = Architecture.parse(job["network"])
        model = build_model(arch).eval()
        inp = arch.input
        inputs = [torch.randn(1, inp.channels, inp.resolution, inp.resolution)]
    else:
        units = space_units(load_space(job["space"]))
        model = _Bundle([units[k][1]().eval() for k in job["keys"]]).eval()
        inputs = [torch.randn(*units[k][0]) for k in job["keys"]]
    stage, work, name = Path(job["stage"]), Path(job["work"]), job["name"]
    started = time.perf_counter()
    with torch.no_grad():
        pnnx.export(model, str(work / "pack.pt"), tuple(inputs),
                    pnnxparam=str(work / "pack.pnnx.param"), pnnxbin=str(work / "pack.pnnx.bin"),
                    pnnxpy=str(work / "pack_pnnx.py"), pnnxonnx=str(work / "pack.pnnx.onnx"),
                    ncnnparam=str(stage / f"{name}.ncnn.param"),
                    ncnnbin=str(stage / f"{name}.ncnn.bin"), ncnnpy=str(work / "pack_ncnn.py"),
                    fp16=False)
    Path(job["result"]).write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    torch.set_num_threads(1)
    if job.get("pack"):
        return _pack_ncnn(job)
    model, inputs = _load(job)
    stage, work = Path(job["stage"]), Path(job["work"])
    with torch.no_grad():
        seconds, runtime, run = _CONVERTERS[job["format"]](model, inputs, stage, work)
        outputs = [run(x) for x in inputs] if run is not None else None
    result = {"seconds": seconds, "runtime": runtime, "outputs": None}
    if outputs is not None:
        result["outputs"] = str(work / "outputs.pt")
        torch.save(outputs, result["outputs"])
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":  # pragma: no cover (run by convert_export as a subprocess)
    sys.exit(main())
