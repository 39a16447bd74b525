"""Export an architecture as a standalone ``model.py`` (torch + standard library) and ``arch.json``.

``model.py`` is the source of :mod:`nas.ops.static` (the very classes nas builds and
tests) followed by the architecture as a literal table and ``build_model``. Only
values that :class:`~nas.arch.Architecture` validated reach the generated code, and
they are written by :func:`_literal`, which accepts nothing but ints, bools, short
lowercase names and tuples of ints: a hostile string cannot become code.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Dict, List, Optional

from . import __version__
from .arch import Architecture
from .checkpoint import atomic_write_bytes
from .cost import count_cost
from .model import layer_table
from .ops import static

__all__ = ["ExportError", "model_source", "export_arch", "EXPORT_FILES"]

EXPORT_FILES = ("model.py", "arch.json", "weights.pt")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
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


def model_source(arch: Architecture) -> str:
    """The text of a standalone ``model.py`` for ``arch``."""
    text = str(arch)
    if not _ARCH_CHARS.fullmatch(text):  # canonical strings never fail this; defence in depth
        raise ExportError("architecture string has unexpected characters")
    cost = count_cost(arch)
    stem, blocks, head = layer_table(arch)
    rows = "\n".join(
        "    (" + ", ".join(_literal(v) for v in row) + ")," for row in blocks
    )
    return f'''"""Standalone MixNet exported by nas {_literal_version()}.

Needs only torch and the Python standard library.

    from model import build_model
    net = build_model()                 # num_classes={arch.input.classes}, in_chans={arch.input.channels}

Architecture (nas canonical form, id {arch.id}):
    {text}
Cost at {arch.input.channels}x{arch.input.resolution}x{arch.input.resolution}: \
{cost.flops:,} FLOPs (multiply-accumulates, fvcore convention), {cost.params:,} parameters.
"""

{_static_source()}

ARCH = "{text}"
RESOLUTION = {_literal(arch.input.resolution)}
NUM_CLASSES = {_literal(arch.input.classes)}
IN_CHANS = {_literal(arch.input.channels)}

# kernel, stride, out_ch, act
STEM = ({", ".join(_literal(v) for v in stem)})
# {_BLOCK_COLUMNS}
BLOCKS = [
{rows}
]
# out_ch, act
HEAD = ({", ".join(_literal(v) for v in head)})


def build_model(num_classes: int = NUM_CLASSES, in_chans: int = IN_CHANS) -> MixNet:
    """The network; defaults are the searched target (classes and input channels)."""
    return MixNet(STEM, BLOCKS, HEAD, num_classes=num_classes, in_chans=in_chans)
'''


def _literal_version() -> str:
    if not re.fullmatch(r"[0-9][0-9a-z.+-]*", __version__):
        raise ExportError("bad version string")
    return __version__


def export_arch(arch: Architecture, out_dir, force: bool = False,
                extra: Optional[Dict] = None) -> List[Path]:
    """Write ``model.py`` and ``arch.json`` for ``arch`` into ``out_dir``.

    Args:
        arch: the architecture.
        out_dir: target directory (created if needed).
        force: overwrite files of an earlier export; otherwise that is an error.
        extra: more JSON-serialisable metadata for ``arch.json`` (e.g. the trial).

    Returns:
        The paths written.
    """
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
    cost = count_cost(arch)
    meta = {
        "format": "nas-export/1",
        "nas_version": __version__,
        "arch": str(arch),
        "id": arch.id,
        "flops": cost.flops,
        "params": cost.params,
        "input": arch.to_dict()["input"],
        "structure": arch.to_dict(),
    }
    if extra:
        meta.update(extra)
    written = []
    for name, data in (
        ("model.py", model_source(arch).encode()),
        ("arch.json", (json.dumps(meta, indent=2) + "\n").encode()),
    ):
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    stale = out / "weights.pt"
    if stale.exists():  # an overwritten export's weights belong to another network
        stale.unlink()
    return written
