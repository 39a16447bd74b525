"""Writing an export: ``model.py``, ``arch.json`` and, with weights, ``weights.pt``,
TorchScript and ONNX, each checked by loading it back.
"""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..arch import Architecture
from ..cost import count_cost
from ..errors import ExportError
from ..files import atomic_write_bytes, remove_path, tensor_bytes
from ..model import build_model, fold_state_dict, layer_table, onnx_axes, onnx_program
from ..ops.static import feature_levels
from ..runs import ExportDir
from .source import ExportForm, model_source, out_levels

__all__ = ["export_arch", "export_untrained", "export_network", "fold_state_dict",
           "fuse_state_dict", "load_exported", "max_difference"]


def export_arch(arch: Architecture, out_dir, force: bool = False,
                extra: Optional[Dict] = None, form: ExportForm = ExportForm()) -> List[Path]:
    """Write ``model.py`` and ``arch.json`` for ``arch`` into ``out_dir`` (no weights).

    Args:
        arch: the architecture.
        out_dir: target directory (created if needed).
        force: overwrite files of an earlier export; otherwise that is an error.
        extra: more JSON-serialisable metadata for ``arch.json`` (e.g. the trial).
        form: split or fused MixConv, memory format.

    Returns:
        The paths written.
    """
    return _write_source(arch, _prepare(out_dir, force, arch, form), form, "", extra)


def export_untrained(arch: Architecture, out_dir, int8, force: bool = False,
                     extra: Optional[Dict] = None,
                     form: ExportForm = ExportForm()) -> Tuple[List[Path], Dict[str, Any]]:
    """:func:`export_arch`, then ``model.onnx`` and ``model.int8.onnx`` of the network with
    fresh weights (seeded), calibrated and checked on ``int8``
    (:class:`nas.export.int8.Int8Inputs`, at the network's input): for the int8 network's
    size and latency on a device before any training. Its outputs mean nothing, and no
    ``weights.pt`` is written.

    Returns:
        The paths written and the int8 report (:func:`nas.export.int8.write_int8`).
    """
    from .int8 import write_int8

    paths = export_arch(arch, out_dir, force=force, extra=extra, form=form)
    out = ExportDir(out_dir)
    torch.manual_seed(0)
    network = load_exported(out).build_model().eval()
    names, deepest = _onnx_outputs(network, form)
    paths += _write_onnx(network, int8.calibration[:1], out.onnx, names, spatial=deepest)
    report = write_int8(network, out, int8, names, spatial=deepest, trained=False)
    return paths + [out.onnx_int8], report


def _onnx_outputs(network: nn.Module, form: ExportForm) -> Tuple[List[str], int]:
    """The ONNX output names of an exported network (``logits``, or a backbone's
    ``strideN`` levels) and, for a backbone, its deepest reduction (0 otherwise)."""
    if not form.backbone:
        return ["logits"], 0
    return ([f"stride{f['reduction']}" for f in network.feature_info],
            max(network.feature_info.reduction()))


def _prepare(out_dir, force: bool, arch: Architecture, form: ExportForm) -> ExportDir:
    """The export directory, emptied of an earlier export's files, once every argument is
    known to be good (nothing is created for a refused export)."""
    out_levels(arch, form.out_indices)
    out = ExportDir(out_dir)
    if out.path.exists() and not out.path.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    existing = [path for path in out.files() if path.exists()]
    if existing and not force:
        raise ExportError(
            f"{out} already holds an export ({', '.join(p.name for p in existing)}); "
            "choose another -o or pass --force to overwrite"
        )
    out.path.mkdir(parents=True, exist_ok=True)
    for path in existing:  # an overwritten export's files belong to another network
        remove_path(path)
    return out


def _write_source(arch: Architecture, out: ExportDir, form: ExportForm, weights_note: str,
                  extra: Optional[Dict]) -> List[Path]:
    cost = count_cost(arch)
    _, blocks, _ = layer_table(arch)
    levels = feature_levels(arch.stem.stride, arch.stem.out, blocks)
    sizes = [layer.out_size for layer in arch.layers()]
    out_indices = out_levels(arch, form.out_indices)
    meta = {
        "format": "nas-export/1",
        "nas_version": __version__,
        "arch": str(arch),
        "id": arch.id,
        "flops": cost.flops,
        "params": cost.params,
        "input": arch.to_dict()["input"],
        "form": {"fused": form.fused, "channels_last": form.channels_last,
                 "fold_bn": form.fold_bn, "backbone": form.backbone},
        # timm's feature_info: every reduction level, with its shape at the target input
        "features": [
            {"level": i, "channels": f["num_chs"], "reduction": f["reduction"],
             "shape": [f["num_chs"]] + [arch.stem_size() if f["index"] < 0
                                        else sizes[f["index"]]] * 2}
            for i, f in enumerate(levels)],
        "out_indices": list(out_indices),
        "structure": arch.to_dict(),
    }
    if extra:
        meta.update(extra)
    written = []
    for path, data in (
        (out.model_py, model_source(arch, form, weights_note).encode()),
        (out.arch_json, (json.dumps(meta, indent=2) + "\n").encode()),
    ):
        atomic_write_bytes(path, data)
        written.append(path)
    return written


def fuse_state_dict(model: nn.Module,
                    state: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """``model``'s state dict with every MixConv's group weights in :class:`FusedMixConv` form.

    Each group's ``k x k`` kernel is centred in a ``max(kernels)`` square of zeros, and
    the groups are stacked in channel order (the order MixConv concatenates them in).
    ``state``: the tensors to fuse instead of ``model``'s own (e.g. :func:`fold_state_dict`'s,
    whose MixConvs have biases); its names must be ``model``'s split-form names.
    """
    state = {k: v.detach() for k, v in (model.state_dict() if state is None else state).items()}
    for name, module in model.named_modules():
        # By name, not isinstance: the model may come from an exported model.py, whose
        # MixConv is a copy of nas.ops.static.MixConv in another module.
        if type(module).__name__ != "MixConv" or not hasattr(module, "convs"):
            continue
        big = max(module.kernels)
        padded, biases = [], []
        for i, k in enumerate(module.kernels):
            pad = (big - k) // 2
            padded.append(F.pad(state.pop(f"{name}.convs.{i}.weight"), [pad] * 4))
            if f"{name}.convs.{i}.bias" in state:  # ConvMixer's depthwise conv
                biases.append(state.pop(f"{name}.convs.{i}.bias"))
        state[f"{name}.conv.weight"] = torch.cat(padded, 0)
        if biases:
            state[f"{name}.conv.bias"] = torch.cat(biases, 0)
    return state


def load_exported(out_dir, name: str = "exported_model"):
    """Import ``out_dir/model.py`` as a module (it needs only torch)."""
    spec = importlib.util.spec_from_file_location(name, ExportDir(out_dir).model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_network(model: nn.Module, arch: Architecture, out_dir, example: torch.Tensor,
                   form: ExportForm, force: bool = False, weights_note: str = "",
                   extra: Optional[Dict] = None, onnx: bool = True,
                   int8=None) -> Tuple[List[Path], Dict[str, Any]]:
    """Write ``model.py``, ``weights.pt``, ``arch.json``, ``model.ts`` (and ``model.onnx``,
    and with ``int8`` ``model.int8.onnx``).

    Args:
        model: the static network whose weights to export, in split form (as nas builds it).
        arch: its architecture.
        out_dir: target directory.
        example: an input batch, for tracing and for checking the export.
        form: how to write it; ``num_classes``/``in_chans`` must match ``model``.
        force: overwrite an earlier export.
        weights_note: a validated line for model.py's docstring.
        extra: more metadata for arch.json.
        onnx: also write ONNX when ``onnx`` and ``onnxscript`` (torch's ONNX exporter) are
            installed (``pip install "nas[onnx]"``).
        int8: :class:`nas.export.int8.Int8Inputs`: also write ``model.int8.onnx``,
            calibrated and checked on them (:func:`nas.export.int8.write_int8`).

    Returns:
        The paths written, and the largest absolute difference between ``model``'s logits
        on ``example`` and those of the written network (model.py + weights.pt loaded
        back: key ``model``) and of the TorchScript file (``torchscript``); with ``int8``,
        its report under ``int8``.
    """
    out = _prepare(out_dir, force, arch, form)
    model = model.cpu().eval()
    if form.backbone:  # the same weights, without the head
        backbone = build_model(arch, num_classes=form.num_classes, in_chans=form.in_chans,
                               features_only=True, out_indices=form.out_indices)
        own = model.state_dict()
        backbone.load_state_dict({k: own[k] for k in backbone.state_dict()})
        model = backbone.eval()
    state = fold_state_dict(model) if form.fold_bn else model.state_dict()
    if form.fused:
        state = fuse_state_dict(model, state)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    written = _write_source(arch, out, form, weights_note, extra)
    atomic_write_bytes(out.weights, tensor_bytes(state))
    written.append(out.weights)
    exported = load_exported(out).build_model()
    exported.load_state_dict(torch.load(out.weights, weights_only=True))
    exported.eval()
    example = example.cpu()
    with torch.no_grad():
        reference = model(example)
        delta = max_difference(exported(example), reference)
        with warnings.catch_warnings():
            # torch.jit is deprecated in favour of torch.export, but TorchScript is still
            # what C++ (libtorch) and mobile runtimes load.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(exported, example, strict=not form.backbone)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
            atomic_write_bytes(out.torchscript, buffer.getvalue())
            written.append(out.torchscript)
            scripted = torch.jit.load(str(out.torchscript))
            ts_delta = max_difference(scripted(example), reference)
    names, deepest = _onnx_outputs(exported, form)
    if onnx and all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript")):
        written += _write_onnx(exported, example, out.onnx, names, spatial=deepest)
    deltas: Dict[str, Any] = {"model": delta, "torchscript": ts_delta}
    if int8 is not None:
        from .int8 import write_int8

        deltas["int8"] = write_int8(exported, out, int8, names, spatial=deepest)
        written.append(out.onnx_int8)
    return written, deltas


def max_difference(a, b) -> float:
    """Largest absolute difference between two outputs (tensors or lists of tensors)."""
    if isinstance(a, torch.Tensor):
        return (a - b).abs().max().item()
    if len(a) != len(b):
        raise ExportError(f"{len(a)} outputs where {len(b)} were expected")
    return max(max_difference(x, y) for x, y in zip(a, b))


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path,
                output_names: Sequence[str] = ("logits",), spatial: int = 0) -> List[Path]:
    """``model.onnx`` with a dynamic batch axis (and, with ``spatial``, the reduction of the
    deepest output, dynamic height and width, one output per feature level); a failure is a
    warning, not a lost export.

    Heights and widths from ``spatial + 1`` up: torch.export specialises a map of 1x1 (an
    SE's gate broadcasts over it), so every output map must be at least 2x2. The example
    is enlarged to that size when smaller (a 28x28 proxy image at stride 32).
    """
    tmp = path.with_suffix(".onnx.tmp")
    try:
        axes, example = onnx_axes(example, spatial)
        onnx_program(model, (example,), ["input"], list(output_names),
                     dynamic_shapes=(axes,)).save(str(tmp))
    # torch.onnx's coverage varies between versions; the other files are already written.
    except Exception as e:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        warnings.warn(f"{path.name} not written: {e.__class__.__name__}: "
                      f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                      stacklevel=2)
        return []
    tmp.replace(path)
    return [path]
