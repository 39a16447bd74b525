"""Export an architecture as a standalone ``model.py`` (torch + standard library) and ``arch.json``.

``model.py`` is the source of :mod:`nas.ops.static` (the very classes nas builds and
tests) followed by the architecture as a literal table and ``build_model``. Only
values that :class:`~nas.arch.Architecture` validated reach the generated code, and
they are written by :func:`_literal`, which accepts nothing but ints, bools, short
lowercase names and tuples of ints: a hostile string cannot become code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .arch import Architecture
from .checkpoint import atomic_write_bytes
from .cost import count_cost
from .model import layer_table
from .ops import static

__all__ = ["ExportError", "ExportForm", "model_source", "export_arch", "export_network",
           "fuse_state_dict", "load_exported", "EXPORT_FILES"]

EXPORT_FILES = ("model.py", "arch.json", "weights.pt", "model.ts", "model.onnx")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# A free-text line in the docstring: letters, digits, spaces and a little punctuation.
_NOTE = re.compile(r"^[A-Za-z0-9 ,.:;()x%+/=_-]{1,300}$")
_ARCH_CHARS = re.compile(r"^[0-9a-z_.,/:-]+$")
_BLOCK_COLUMNS = ("kind, in_ch, mid_ch, out_ch, kernels, splits, stride, se_ch, "
                  "exp_groups, proj_groups, act, residual")


class ExportError(RuntimeError):
    """The export cannot be written (e.g. it would overwrite an earlier export)."""


def _literal(value) -> str:
    """Python source for a validated value; anything unexpected is refused."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str) and _NAME.fullmatch(value):
        return f'"{value}"'
    if isinstance(value, tuple) and all(type(v) is int for v in value):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise ExportError(f"refusing to write unvalidated value {value!r} into model.py")


def _static_source() -> str:
    """nas/ops/static.py without its module docstring."""
    source = inspect.getsource(static)
    doc = static.__doc__ or ""
    head = f'"""{doc}"""'
    return source[len(head):].lstrip("\n") if source.startswith(head) else source


@dataclass(frozen=True)
class ExportForm:
    """How the exported network is written (all forms compute the same outputs).

    Attributes:
        num_classes: ``build_model``'s default classes (the weights'; else the target's).
        in_chans: ``build_model``'s default input channels.
        fused: MixConv as one zero-padded depthwise conv (more FLOPs, often faster).
        channels_last: NHWC weights and activations.
    """

    num_classes: Optional[int] = None
    in_chans: Optional[int] = None
    fused: bool = False
    channels_last: bool = False


def model_source(arch: Architecture, form: ExportForm = ExportForm(),
                 weights_note: str = "") -> str:
    """The text of a standalone ``model.py`` for ``arch``.

    ``weights_note`` is a line describing ``weights.pt``; it must already be validated
    (:func:`export_trial` builds it from numbers and a registered dataset name).
    """
    text = str(arch)
    if not _ARCH_CHARS.fullmatch(text):  # canonical strings never fail this; defence in depth
        raise ExportError("architecture string has unexpected characters")
    if weights_note and not _NOTE.fullmatch(weights_note):
        raise ExportError("refusing to write an unvalidated note into model.py")
    classes = arch.input.classes if form.num_classes is None else form.num_classes
    chans = arch.input.channels if form.in_chans is None else form.in_chans
    cost = count_cost(arch)
    stem, blocks, head = layer_table(arch)
    rows = "\n".join(
        "    (" + ", ".join(_literal(v) for v in row) + ")," for row in blocks
    )
    form_note = ("MixConv fused into one zero-padded depthwise conv per layer (same outputs, "
                 "more FLOPs than the count above)." if form.fused else
                 "MixConv in its split form (the FLOPs below are this network's).")
    if form.channels_last:
        form_note += " Channels-last (NHWC) memory format."
    usage = ('    net.load_state_dict(torch.load("weights.pt", weights_only=True))\n\n'
             + weights_note + "\n") if weights_note else ""
    return f'''"""Standalone MixNet exported by nas {_literal_version()}.

Needs only torch and the Python standard library.

    from model import build_model
    net = build_model()                 # num_classes={classes}, in_chans={chans}
{usage}
Architecture (nas canonical form, id {arch.id}):
    {text}
Cost at {arch.input.channels}x{arch.input.resolution}x{arch.input.resolution}: \
{cost.flops:,} FLOPs (multiply-accumulates, fvcore convention), {cost.params:,} parameters.
{form_note}
"""

{_static_source()}

ARCH = "{text}"
RESOLUTION = {_literal(arch.input.resolution)}
NUM_CLASSES = {_literal(classes)}
IN_CHANS = {_literal(chans)}
FUSED = {_literal(form.fused)}
CHANNELS_LAST = {_literal(form.channels_last)}

# kernel, stride, out_ch, act
STEM = ({", ".join(_literal(v) for v in stem)})
# {_BLOCK_COLUMNS}
BLOCKS = [
{rows}
]
# out_ch, act
HEAD = ({", ".join(_literal(v) for v in head)})


def build_model(num_classes: int = NUM_CLASSES, in_chans: int = IN_CHANS) -> MixNet:
    """The network; the defaults are those of weights.pt when it exists."""
    return MixNet(STEM, BLOCKS, HEAD, num_classes=num_classes, in_chans=in_chans,
                  fused=FUSED, channels_last=CHANNELS_LAST)
'''


def _literal_version() -> str:
    if not re.fullmatch(r"[0-9][0-9a-z.+-]*", __version__):
        raise ExportError("bad version string")
    return __version__


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
    return _write_source(arch, _prepare(out_dir, force), form, "", extra)


def _prepare(out_dir, force: bool) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    existing = [name for name in EXPORT_FILES if (out / name).exists()]
    if existing and not force:
        raise ExportError(
            f"{out} already holds an export ({', '.join(existing)}); "
            "choose another -o or pass --force to overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in existing:  # an overwritten export's files belong to another network
        (out / name).unlink()
    return out


def _write_source(arch: Architecture, out: Path, form: ExportForm, weights_note: str,
                  extra: Optional[Dict]) -> List[Path]:
    cost = count_cost(arch)
    meta = {
        "format": "nas-export/1",
        "nas_version": __version__,
        "arch": str(arch),
        "id": arch.id,
        "flops": cost.flops,
        "params": cost.params,
        "input": arch.to_dict()["input"],
        "form": {"fused": form.fused, "channels_last": form.channels_last},
        "structure": arch.to_dict(),
    }
    if extra:
        meta.update(extra)
    written = []
    for name, data in (
        ("model.py", model_source(arch, form, weights_note).encode()),
        ("arch.json", (json.dumps(meta, indent=2) + "\n").encode()),
    ):
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    return written


def fuse_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``model``'s state dict with every MixConv's group weights in :class:`FusedMixConv` form.

    Each group's ``k x k`` kernel is centred in a ``max(kernels)`` square of zeros, and
    the groups are stacked in channel order (the order MixConv concatenates them in).
    """
    state = {k: v.detach() for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        # By name, not isinstance: the model may come from an exported model.py, whose
        # MixConv is a copy of nas.ops.static.MixConv in another module.
        if type(module).__name__ != "MixConv" or not hasattr(module, "convs"):
            continue
        big = max(module.kernels)
        padded = []
        for i, k in enumerate(module.kernels):
            pad = (big - k) // 2
            padded.append(F.pad(state.pop(f"{name}.convs.{i}.weight"), [pad] * 4))
        state[f"{name}.conv.weight"] = torch.cat(padded, 0)
    return state


def load_exported(out_dir, name: str = "exported_model"):
    """Import ``out_dir/model.py`` as a module (it needs only torch)."""
    spec = importlib.util.spec_from_file_location(name, Path(out_dir) / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_network(model: nn.Module, arch: Architecture, out_dir, example: torch.Tensor,
                   form: ExportForm, force: bool = False, weights_note: str = "",
                   extra: Optional[Dict] = None,
                   onnx: bool = True) -> Tuple[List[Path], Dict[str, float]]:
    """Write ``model.py``, ``weights.pt``, ``arch.json``, ``model.ts`` (and ``model.onnx``).

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

    Returns:
        The paths written, and the largest absolute difference between ``model``'s logits
        on ``example`` and those of the written network (model.py + weights.pt loaded
        back: key ``model``) and of the TorchScript file (``torchscript``).
    """
    out = _prepare(out_dir, force)
    model = model.cpu().eval()
    state = fuse_state_dict(model) if form.fused else model.state_dict()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    written = _write_source(arch, out, form, weights_note, extra)
    atomic_write_bytes(out / "weights.pt", _tensor_bytes(state))
    written.append(out / "weights.pt")
    exported = load_exported(out).build_model()
    exported.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    exported.eval()
    example = example.cpu()
    with torch.no_grad():
        reference = model(example)
        delta = (exported(example) - reference).abs().max().item()
        with warnings.catch_warnings():
            # torch.jit is deprecated in favour of torch.export, but TorchScript is still
            # what C++ (libtorch) and mobile runtimes load.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(exported, example)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
            atomic_write_bytes(out / "model.ts", buffer.getvalue())
            written.append(out / "model.ts")
            scripted = torch.jit.load(str(out / "model.ts"))
            ts_delta = (scripted(example) - reference).abs().max().item()
    if onnx and all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript")):
        written += _write_onnx(exported, example, out / "model.onnx")
    return written, {"model": delta, "torchscript": ts_delta}


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> List[Path]:
    """``model.onnx`` with a dynamic batch axis; a failure is a warning, not a lost export."""
    tmp = path.with_suffix(".onnx.tmp")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" warnings
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's progress chatter
            program = torch.onnx.export(model, (example,), input_names=["input"],
                                        output_names=["logits"], dynamo=True,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            program.save(str(tmp))
    # torch.onnx's coverage varies between versions; the other files are already written.
    except Exception as e:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        warnings.warn(f"model.onnx not written: {e.__class__.__name__}: "
                      f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        return []
    finally:
        onnx_log.setLevel(level)
    tmp.replace(path)
    return [path]


def _tensor_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
