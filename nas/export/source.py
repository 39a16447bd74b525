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
from typing import Optional, Sequence, Tuple

from .. import __version__
from ..arch import Architecture
from ..cost import count_cost
from ..errors import ExportError
from ..model import layer_table
from ..ops import static
from ..ops.static import default_out_indices, feature_levels
from ..runs import ExportDir

__all__ = ["ExportForm", "model_source", "out_levels"]

_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_KEY = re.compile(r"^[a-z][a-z_]{0,15}$")  # a block argument's name
# A free-text line in the docstring: letters, digits, spaces and a little punctuation.
_NOTE = re.compile(r"^[A-Za-z0-9 ,.:;()x%+/=_-]{1,300}$")
_ARCH_CHARS = re.compile(r"^[0-9a-z_.,/:-]+$")
_WEIGHTS = ExportDir(".").weights.name


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
    if isinstance(value, dict) and all(isinstance(k, str) and _KEY.fullmatch(k) for k in value):
        return "{" + ", ".join(f'"{k}": {_literal(v)}' for k, v in value.items()) + "}"
    raise ExportError(f"refusing to write unvalidated value {value!r} into model.py")


def _class_name(name: str) -> str:
    """A block class's name as source: only the names of :data:`nas.ops.static.BLOCKS`."""
    if name not in static.BLOCKS:
        raise ExportError(f"refusing to write unknown block class {name!r} into model.py")
    return f'"{name}"'


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
        fold_bn: every BatchNorm that follows a conv folded into it (inference only; the
            weights come from :func:`nas.export.fold_state_dict`).
        backbone: ``build_model()`` defaults to ``features_only=True``: the feature maps of
            ``out_indices`` (default: the levels at strides 8, 16, 32), no head.
        out_indices: the backbone's feature levels (indices into ``FEATURE_LEVELS``).
    """

    num_classes: Optional[int] = None
    in_chans: Optional[int] = None
    fused: bool = False
    channels_last: bool = False
    fold_bn: bool = False
    backbone: bool = False
    out_indices: Optional[Tuple[int, ...]] = None


def out_levels(arch: Architecture, out_indices: Optional[Sequence[int]]) -> Tuple[int, ...]:
    """The backbone's feature levels of ``arch``: ``out_indices`` sorted, or by default
    the levels at strides 8, 16 and 32.

    Raises:
        ExportError: a level that ``arch`` does not have (names the levels it has).
    """
    _, blocks, _ = layer_table(arch)
    levels = feature_levels(arch.stem.stride, arch.stem.out, blocks)
    picked = tuple(default_out_indices(levels) if out_indices is None
                   else sorted(set(out_indices)))
    if not picked or any(not 0 <= i < len(levels) for i in picked):
        raise ExportError(f"out_indices must be feature levels 0 to {len(levels) - 1} "
                          f"(reductions {', '.join(map(str, levels.reduction()))})")
    return picked


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
    rows = "\n".join(f"    ({_class_name(name)}, {_literal(args)})," for name, args in blocks)
    levels = feature_levels(stem[1], stem[2], blocks)
    out_indices = out_levels(arch, form.out_indices)
    level_rows = "\n".join(f"    ({i}, {f['num_chs']}, {f['reduction']}),"
                           for i, f in enumerate(levels))
    form_note = ("MixConv fused into one zero-padded depthwise conv per layer (same outputs, "
                 "more FLOPs than the count above)." if form.fused else
                 "MixConv in its split form (the FLOPs below are this network's).")
    if form.channels_last:
        form_note += " Channels-last (NHWC) memory format."
    if form.fold_bn:
        form_note += (" BatchNorm folded into the convolutions before it (inference only, "
                      "fewer FLOPs than the count above: no BatchNorm).")
    if form.backbone:
        form_note += (" A backbone: build_model() returns the feature maps of OUT_INDICES "
                      "(net.feature_info.channels(), .reduction()).")
    usage = (f'    net.load_state_dict(torch.load("{_WEIGHTS}", weights_only=True))\n\n'
             + weights_note + "\n") if weights_note else ""
    return f'''"""Standalone network exported by nas {_literal_version()}.

Needs only torch and the Python standard library.

    from model import build_model
    net = build_model()                 # num_classes={classes}, in_chans={chans}
    backbone = build_model(features_only=True, out_indices=(2, 3, 4))  # timm's convention
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
FOLD_BN = {_literal(form.fold_bn)}

FEATURES_ONLY = {_literal(form.backbone)}
OUT_INDICES = {_literal(out_indices)}

# kernel, stride, out_ch, act, patch
STEM = ({", ".join(_literal(v) for v in stem)})
# (block class, its arguments), one per block
LAYERS = [
{rows}
]
# out_ch (conv before pooling, 0: none), act, post (conv after pooling, 0: none), post_bn
HEAD = ({", ".join(_literal(v) for v in head)})
# feature level: index, channels, reduction (stride) relative to the input
FEATURE_LEVELS = [
{level_rows}
]


def build_model(num_classes: int = NUM_CLASSES, in_chans: int = IN_CHANS,
                features_only: bool = FEATURES_ONLY,
                out_indices: Sequence[int] = OUT_INDICES) -> MixNet:
    """The network; the defaults are those of weights.pt when it exists.

    With ``features_only`` it returns the list of feature maps of ``out_indices``
    (indices into FEATURE_LEVELS) instead of logits, and builds no head.
    """
    return MixNet(STEM, LAYERS, HEAD, num_classes=num_classes, in_chans=in_chans,
                  fused=FUSED, channels_last=CHANNELS_LAST, features_only=features_only,
                  out_indices=out_indices, fold_bn=FOLD_BN)
'''


def _literal_version() -> str:
    if not re.fullmatch(r"[0-9][0-9a-z.+-]*", __version__):
        raise ExportError("bad version string")
    return __version__
