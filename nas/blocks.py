"""One table of block kinds: what a kind of block row means, for every layer of nas.

Each kind (:class:`BlockKind`, in :data:`BLOCK_KINDS`) says, as data and small pure
functions, everything the rest of nas needs to know about it:

* the **tokens** its block string takes, with their defaults (the grammar's fields are
  defined once in :mod:`nas.grammar`; which kinds take them comes from here);
* its **widths and shape rules**: the middle ("expanded") width, the stride of each repeat,
  when it adds its input (residual), the MixConv channel groups, the output size and the
  smallest input it can take;
* its **cost** (FLOPs in fvcore's convention and parameters, without SE, which
  :mod:`nas.cost` adds alike for every kind);
* the **static** layer class that builds it (:mod:`nas.ops.static`, copied into exports:
  the class stays self-contained and this table names it) with the keyword arguments it
  takes, and the **weight-sharing** class (:mod:`nas.ops.dynamic`);
* how the **report** names it and whether the **proxy analysis** reads its MixConv.

Adding a kind is one entry here plus its two layer classes. The module imports no torch
(``nas space`` and ``nas --help`` stay light) and nothing above :mod:`nas.channels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .channels import adown_out_size, conv_out_size, mid_channels, split_channels

__all__ = ["BlockKind", "BLOCK_KINDS", "ROW_KINDS", "KINDS", "REQUIRED", "SAME", "Token",
           "kind_of", "dw_weights"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


class _Same:
    """Default width of a stage row without a ``c`` token: keep the incoming width."""

    def __repr__(self) -> str:
        return "SAME"


#: A token a kind must be given (no default).
REQUIRED = _Required()
#: A row's default width: the width it is fed.
SAME = _Same()


@dataclass(frozen=True)
class Token:
    """A grammar field a kind takes: ``field`` is the field's id in :mod:`nas.grammar`
    (its name, or ``name:variant`` where one name has several meanings across kinds),
    ``default`` its value when the token is left out, ``shown`` whether the canonical
    form always writes it."""

    field: str
    default: Any = REQUIRED
    shown: bool = False


@lru_cache(maxsize=4096)
def dw_weights(mid: int, kernels: Tuple[int, ...], split) -> int:
    """Weights of a MixConv over ``mid`` channels (per output pixel, also its MACs)."""
    return sum(c * k * k for c, k in zip(split_channels(mid, len(kernels), split), kernels))


# ------------------------------------------------------------ per-kind rules and costs
# A cost function: (in_ch, out_ch, mid_ch, block, pixels in, pixels out, stride) ->
# (flops, params).

def _cost_separable(in_ch, out, mid, b, px_in, px_out, stride):
    params = dw_weights(mid, b.kernels, b.split) + mid * out // b.proj_groups + 2 * mid + 2 * out
    return params * px_out, params


def _cost_inverted(in_ch, out, mid, b, px_in, px_out, stride):
    flops, params = _cost_separable(in_ch, out, mid, b, px_in, px_out, stride)
    expand = in_ch * mid // b.exp_groups + 2 * mid
    return flops + expand * px_in, params + expand


def _cost_uib(in_ch, out, mid, b, px_in, px_out, stride):
    # Without a middle depthwise conv, the first one strides (timm's UIB).
    px_start = px_in if b.kernels else px_out
    flops = params = 0
    if b.start:
        start = dw_weights(in_ch, b.start, b.split) + 2 * in_ch
        params, flops = start, start * px_start
    expand = in_ch * mid + 2 * mid
    params += expand
    flops += expand * px_start
    if b.kernels:
        dw = dw_weights(mid, b.kernels, b.split) + 2 * mid
        params += dw
        flops += dw * px_out
    project = mid * out + 2 * out
    return flops + project * px_out, params + project


def _cost_conv(in_ch, out, mid, b, px_in, px_out, stride):
    params = in_ch * out * b.kernels[0] ** 2 + 2 * out
    return params * px_out, params


def _cost_convmixer(in_ch, out, mid, b, px_in, px_out, stride):
    # conv biases are parameters, not FLOPs (fvcore counts multiply-accumulates)
    dw = dw_weights(in_ch, b.kernels, b.split)
    return ((dw + 2 * in_ch + in_ch * out + 2 * out) * px_out,
            dw + 3 * in_ch + in_ch * out + 3 * out)


def _cost_pconv(in_ch, out, mid, b, px_in, px_out, stride):
    part = in_ch // b.div
    params = part * part * b.kernels[0] ** 2 + in_ch * mid + 2 * mid + mid * out
    return params * px_out, params


def _cost_adown(in_ch, out, mid, b, px_in, px_out, stride):
    # the pools count nothing, as in fvcore
    params = (in_ch // 2) * (out // 2) * 10 + 4 * (out // 2)
    return params * px_out, params


def _cost_shuffle(in_ch, out, mid, b, px_in, px_out, stride):
    # mid: each branch's width (half the output). Strided: both branches see the input;
    # else the second branch sees the input's second half and the first half passes.
    params = flops = 0
    branch_in = in_ch if stride > 1 else in_ch // 2
    if stride > 1:
        first = dw_weights(in_ch, b.kernels, b.split) + 2 * in_ch + in_ch * mid + 2 * mid
        params, flops = first, first * px_out
    expand = branch_in * mid + 2 * mid
    rest = dw_weights(mid, b.kernels, b.split) + 2 * mid + mid * mid + 2 * mid
    return flops + expand * px_in + rest * px_out, params + expand + rest


def _cost_pool(in_ch, out, mid, b, px_in, px_out, stride):
    return 0, 0  # fvcore counts no max pool


def _args_separable(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, out_ch=layer.out_ch, kernels=layer.kernels,
                splits=layer.dw_splits, stride=layer.stride, se_ch=layer.se_ch,
                proj_groups=layer.proj_groups, act=layer.act, residual=layer.residual,
                se_hard=layer.se_hard)


def _args_separable_act(layer) -> Dict[str, object]:
    return {**_args_separable(layer), "pw_act": True}


def _args_inverted(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, mid_ch=layer.mid_ch, out_ch=layer.out_ch,
                kernels=layer.kernels, splits=layer.dw_splits, stride=layer.stride,
                se_ch=layer.se_ch, exp_groups=layer.exp_groups,
                proj_groups=layer.proj_groups, act=layer.act, residual=layer.residual,
                se_hard=layer.se_hard)


def _args_uib(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, mid_ch=layer.mid_ch, out_ch=layer.out_ch,
                start_kernels=layer.start_kernels, start_splits=layer.start_splits,
                kernels=layer.kernels, splits=layer.dw_splits, stride=layer.stride,
                se_ch=layer.se_ch, se_hard=layer.se_hard, act=layer.act,
                residual=layer.residual)


def _args_convmixer(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, out_ch=layer.out_ch, kernels=layer.kernels,
                splits=layer.dw_splits, act=layer.act)


def _args_conv(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, out_ch=layer.out_ch, kernel=layer.kernels[0],
                stride=layer.stride, act=layer.act)


def _args_pconv(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, mid_ch=layer.mid_ch, out_ch=layer.out_ch,
                part_ch=layer.part_ch, kernel=layer.kernels[0], act=layer.act,
                residual=layer.residual)


def _args_adown(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, out_ch=layer.out_ch, act=layer.act, stride=2)


def _args_shuffle(layer) -> Dict[str, object]:
    return dict(in_ch=layer.in_ch, out_ch=layer.out_ch, kernels=layer.kernels,
                splits=layer.dw_splits, input_splits=layer.start_splits, stride=layer.stride,
                act=layer.act)


def _args_pool(layer) -> Dict[str, object]:
    return dict(out_ch=layer.out_ch, stride=layer.stride)


def _residual_if_same_shape(block, in_ch: int, stride: int) -> bool:
    return block.skip and stride == 1 and in_ch == block.out


# ------------------------------------------------------------ the kind record
@dataclass(frozen=True)
class BlockKind:
    """What one kind of block string means (see the module docstring).

    Attributes:
        name: the kind's token in block strings (timm's where timm has one).
        doc: its structure in one line, for the grammar's specification.
        tokens: the grammar fields it takes, in any order (the canonical order is the
            grammar's).
        row: a stage row (False: the stem and the head, whose tokens only are here).
        mid: the middle width: ``in`` (the input's), ``out`` (the output's), ``half`` (half
            the output's) or ``expand`` (input x expansion, rounded to a multiple of 8).
        mixconv: its depthwise conv splits the middle width into kernel groups (``k``).
        input_mixconv: a strided repeat also runs the ``k`` MixConv over its input width
            (a second branch; the layer's ``start_kernels``/``start_splits`` describe it).
        keeps_width: when a repeat must put out the width it is fed: ``always`` (a pool),
            ``unstrided`` (only a strided repeat can change it), or never ("").
        residual: whether a repeat adds its input: ``(block, in_ch, stride) -> bool``.
        stride_each: every repeat strides by this (ADown: 2); 0: the first by ``s``.
        part: PConv: the channels its dense conv sees, ``(in_ch, divisor) -> int``.
        min_size: the smallest input map it takes, and why when smaller.
        out_size: output side from ``(size, stride)``.
        cost: FLOPs and params without SE (see the cost functions above).
        static: its class in :mod:`nas.ops.static`; ``args`` its keyword arguments from a
            :class:`~nas.arch.Layer`.
        dynamic: its weight-sharing class in :mod:`nas.ops.dynamic`.
        label: the word the report's summary shows for it ("" for MixNet's own rows).
        expansion_shown: the summary shows ``e`` always (else only when not 1).
        proxy_mixconv: the proxy analysis (:mod:`nas.space.proxy`) reads its MixConv.
    """

    name: str
    doc: str
    tokens: Tuple[Token, ...]
    row: bool = True
    mid: str = "in"
    mixconv: bool = False
    input_mixconv: bool = False
    keeps_width: str = ""
    residual: Callable[[Any, int, int], bool] = lambda block, in_ch, stride: False
    stride_each: int = 0
    part: Optional[Callable[[int, int], int]] = None
    min_size: Tuple[int, str] = (1, "")
    out_size: Callable[[int, int], int] = lambda size, stride: (
        conv_out_size(size, 3, stride) if stride > 1 else size)
    cost: Optional[Callable] = None
    static: str = ""
    args: Optional[Callable[[Any], Dict[str, object]]] = None
    dynamic: str = ""
    label: Optional[str] = None
    expansion_shown: bool = False
    proxy_mixconv: bool = False
    token_defaults: Mapping[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "token_defaults", {t.field: t.default for t in self.tokens})

    def mid_width(self, in_ch: int, out: int, expansion: float) -> int:
        """The middle width of a repeat fed ``in_ch`` channels."""
        if self.mid == "in":
            return in_ch
        if self.mid == "out":
            return out
        if self.mid == "half":
            return out // 2
        return mid_channels(in_ch, expansion)

    def stride_of(self, block, repeat: int) -> int:
        return self.stride_each or (block.stride if repeat == 0 else 1)

    @property
    def shown_name(self) -> str:
        return self.name if self.label is None else self.label


def _tokens(*specs) -> Tuple[Token, ...]:
    return tuple(Token(*s) if isinstance(s, tuple) else Token(s) for s in specs)


_ROW = (("repeats", 1, True),)
_TAIL = (("out", SAME, True), ("act", "relu"))
_SE = (("se", 0.0), ("hse", 0.0))

BLOCK_KINDS: Dict[str, BlockKind] = {k.name: k for k in (
    BlockKind(
        "stem", "k x k conv, stride s -> BN -> act; or, with p, ConvMixer's patch embedding: "
        "p x p conv with bias, stride p -> act -> BN",
        _tokens(("kernels", (3,), True), ("patch", 0), ("stride", 2), ("out", REQUIRED, True),
                ("act", "relu")), row=False),
    BlockKind(
        "ds", "depthwise-separable: MixConv -> BN -> act -> [SE] -> 1x1 -> BN [+ input]",
        _tokens(*_ROW, ("kernels", REQUIRED, True), ("split", "equal"), ("proj_groups", 1),
                ("stride", 1), *_SE, *_TAIL, ("skip", True)),
        mid="in", mixconv=True, residual=_residual_if_same_shape, cost=_cost_separable,
        static="DepthwiseSeparable", args=_args_separable, dynamic="DynamicSeparable",
        label="", proxy_mixconv=True),
    BlockKind(
        "dsa", "ds with an activation after the 1x1's BN and no residual (timm's dsa; "
        "MobileNetV1)",
        _tokens(*_ROW, ("kernels", REQUIRED, True), ("split", "equal"), ("proj_groups", 1),
                ("stride", 1), *_SE, *_TAIL),
        mid="in", mixconv=True, cost=_cost_separable, static="DepthwiseSeparable",
        args=_args_separable_act, dynamic="DynamicSeparable", proxy_mixconv=True),
    BlockKind(
        "ir", "inverted residual: 1x1 expand -> BN -> act -> MixConv -> BN -> act -> [SE] "
        "-> 1x1 project -> BN [+ input]",
        _tokens(*_ROW, ("kernels", REQUIRED, True), ("split", "equal"), ("exp_groups", 1),
                ("proj_groups", 1), ("stride", 1), ("expansion", REQUIRED, True), *_SE,
                *_TAIL, ("skip", True)),
        mid="expand", mixconv=True, residual=_residual_if_same_shape, cost=_cost_inverted,
        static="InvertedResidual", args=_args_inverted, dynamic="DynamicInverted",
        label="", expansion_shown=True, proxy_mixconv=True),
    BlockKind(
        "cn", "dense k x k conv -> BN -> act (timm's cn; MobileNetV3/V4's 1x1 and 3x3 conv "
        "rows)",
        _tokens(*_ROW, ("kernels:dense", REQUIRED, True), ("stride", 1), *_TAIL),
        mid="out", cost=_cost_conv, static="ConvBNAct", args=_args_conv,
        dynamic="DynamicConvBNAct"),
    BlockKind(
        "uir", "MobileNetV4's Universal Inverted Bottleneck (timm's uir): [MixConv a -> BN] "
        "-> 1x1 expand -> BN -> act -> [MixConv k -> BN -> act] -> [SE] -> 1x1 -> BN "
        "[+ input]; a0 and k0 leave a depthwise conv out: IB (a0), ExtraDW (a, k), "
        "ConvNext-like (k0), FFN (a0_k0)",
        _tokens(*_ROW, ("start", ()), ("kernels:middle", REQUIRED, True), ("split", "equal"),
                ("stride", 1), ("expansion", REQUIRED, True), ("hse", 0.0), *_TAIL,
                ("skip", True)),
        mid="expand", mixconv=True, residual=_residual_if_same_shape, cost=_cost_uib,
        static="UniversalInvertedResidual", args=_args_uib, dynamic="DynamicInverted",
        expansion_shown=True),
    BlockKind(
        "cm", "ConvMixer layer: (MixConv with bias -> act -> BN) + input -> 1x1 with bias "
        "-> act -> BN",
        _tokens(*_ROW, ("kernels", REQUIRED, True), ("split", "equal"), *_TAIL),
        mid="in", mixconv=True, residual=lambda block, in_ch, stride: True,
        cost=_cost_convmixer, static="ConvMixerLayer", args=_args_convmixer,
        dynamic="DynamicConvMixer"),
    BlockKind(
        "pc", "FasterNet block: PConv (dense k x k conv on the first C/d channels, identity "
        "on the rest) -> 1x1 expand -> BN -> act -> 1x1 project, + input",
        _tokens(*_ROW, ("kernels:dense", (3,), True), ("expansion", 2.0), ("div", 4), *_TAIL),
        mid="expand", residual=lambda block, in_ch, stride: in_ch == block.out,
        part=lambda in_ch, div: in_ch // div, cost=_cost_pconv, static="PConvBlock",
        args=_args_pconv, dynamic="DynamicPConv", expansion_shown=True),
    BlockKind(
        "adown", "YOLOv9's ADown: 2x2 average pool (stride 1), then half the channels "
        "through a 3x3 stride-2 conv -> BN -> act, half through a 3x3 stride-2 max pool and "
        "a 1x1 conv -> BN -> act, concatenated (always stride 2)",
        _tokens(*_ROW, *_TAIL), mid="out", stride_each=2,
        min_size=(2, "ADown needs a feature map of at least 2x2 (its 2x2 average pool)"),
        out_size=lambda size, stride: adown_out_size(size), cost=_cost_adown,
        static="ADown", args=_args_adown, dynamic="DynamicADown"),
    BlockKind(
        "sh", "ShuffleNetV2's unit with MixConv depthwise convs: strided, both branches on "
        "the input (MixConv -> BN -> 1x1 -> BN -> act, and 1x1 -> BN -> act -> MixConv -> BN "
        "-> 1x1 -> BN -> act), else the second on the input's second half and the first half "
        "passed on; concatenated, channels shuffled in 2 groups",
        _tokens(*_ROW, ("kernels", REQUIRED, True), ("split", "equal"), ("stride", 1), *_TAIL),
        mid="half", mixconv=True, input_mixconv=True, keeps_width="unstrided",
        cost=_cost_shuffle, static="ShuffleUnit",
        args=_args_shuffle, dynamic="DynamicShuffle"),
    BlockKind(
        "mp", "3x3 max pool, stride s, padding 1 (ShuffleNet's and ResNet's after the stem); "
        "keeps its width",
        _tokens(*_ROW, ("stride", 2), *_TAIL), mid="in", keeps_width="always", cost=_cost_pool,
        static="MaxPoolBlock", args=_args_pool, dynamic="DynamicMaxPool"),
    BlockKind(
        "head", "[1x1 conv c -> BN -> act] -> global average pool -> [1x1 conv f with bias "
        "-> act, or with fbn: 1x1 conv f -> BN -> act] -> linear",
        _tokens(("out:head", 0), ("post", 0), ("post_bn", False), ("act", "relu")), row=False),
)}

#: Every kind, in the order messages list them (the head last).
KINDS: Tuple[str, ...] = tuple(k for k in BLOCK_KINDS if k != "head") + ("head",)
#: The kinds a stage row may have.
ROW_KINDS: Tuple[str, ...] = tuple(k for k, v in BLOCK_KINDS.items() if v.row)


def kind_of(name: str) -> BlockKind:
    """The :class:`BlockKind` named ``name`` (a KeyError names unknown ones)."""
    return BLOCK_KINDS[name]
