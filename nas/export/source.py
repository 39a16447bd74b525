"""The text of a standalone ``model.py``: torch and the standard library only.

``model.py`` is the source of :mod:`nas.ops.static` (the very classes nas builds and
tests) followed by the architecture as a literal table and ``build_model``. Only values
that :class:`~nas.arch.Architecture` validated reach the generated code, and they are
written by :func:`_literal`, which accepts nothing but ints, bools, short lowercase names
and tuples of ints: a hostile string cannot become code.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Optional

from .. import __version__
from ..arch import Architecture
from ..cost import count_cost
from ..errors import ExportError
from ..model import layer_table
from ..ops import static
from ..runs import ExportDir

__all__ = ["ExportForm", "model_source"]

_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# A free-text line in the docstring: letters, digits, spaces and a little punctuation.
_NOTE = re.compile(r"^[A-Za-z0-9 ,.:;()x%+/=_-]{1,300}$")
_ARCH_CHARS = re.compile(r"^[0-9a-z_.,/:-]+$")
_WEIGHTS = ExportDir(".").weights.name
_BLOCK_COLUMNS = ("kind, in_ch, mid_ch, out_ch, kernels, splits, stride, se_ch, "
                  "exp_groups, proj_groups, act, residual")


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
    usage = (f'    net.load_state_dict(torch.load("{_WEIGHTS}", weights_only=True))\n\n'
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
