"""Architecture: one point of a search space, as a frozen, validated value object.

The canonical one-line form is the block grammar (:mod:`nas.grammar`) with one
value per token, stages separated by ``/`` and rows of a stage by ``,``, preceded by
the target input ``CxRxR-CLASSES``::

    3x224x224-1000/stem_k3_c16/ds_r1_k3_c16/ir_r1_k3_a2_p2_s2_e6_c24,ir_r1_k3_a2_p2_e3_c24/.../head_c1536

It has no spaces or shell metacharacters, so it can be passed to ``--arch`` unquoted.
Identity is structural: the same network found in two spaces is the same Architecture.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import MISSING, dataclass, fields, replace
from functools import lru_cache
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from .blocks import kind_of
from .channels import (
    check_groups,
    conv_out_size,
    hard_se_channels,
    se_channels,
    split_channels,
)
from .errors import ArchError, GrammarError
from .grammar import (
    _REQUIRED,
    FIELDS_BY_KIND,
    ROW_KINDS,
    SAME,
    fields_of,
    format_block,
    parse_block,
    single_values,
)

__all__ = [
    "ArchError", "InputSpec", "Stem", "Block", "Head", "Layer", "Architecture", "block_layers",
    "normalize_split", "out_size_of", "size_problem", "read_arch",
]


# What a field that does not apply to a block kind holds (a ds block has no expansion).
NEUTRAL = {"split": "equal", "exp_groups": 1, "proj_groups": 1, "stride": 1, "expansion": 1.0,
           "se": 0.0, "hse": 0.0, "start": (), "div": 4, "skip": True, "kernels": (3,),
           "patch": 0}


_HASHABLE = (bool, int, float, str, tuple)


def _check_value(kind: str, name: str, value: Any) -> Any:
    """:func:`_validate`, remembered per (kind, field, value and the value's types): a
    search builds the same few hundred field values for every architecture it samples."""
    if type(value) not in _HASHABLE:
        return _validate(kind, name, value)
    types = tuple(map(type, value)) if type(value) is tuple else type(value)
    try:
        return _validated(kind, name, value, types)
    except TypeError:  # a tuple holding something unhashable: refused, uncached
        return _validate(kind, name, value)


@lru_cache(maxsize=8192)
def _validated(kind: str, name: str, value: Any, types) -> Any:
    # ``types`` keeps 1, 1.0 and True (equal, with equal hashes) apart in the cache.
    return _validate(kind, name, value)


def _validate(kind: str, name: str, value: Any) -> Any:
    """Validate one field value with the grammar's own rules; return it normalised.

    The value is written as a token and read back, so anything the grammar rejects
    (a width that is not a multiple of 8, a kernel of 4, text where a number belongs)
    is rejected here too, whether the object came from a string, JSON or code.
    """
    grammar_field = FIELDS_BY_KIND[kind].get(name)
    if grammar_field is None:  # not a field of this kind: only its neutral value
        neutral = NEUTRAL[name]
        if isinstance(value, bool) != isinstance(neutral, bool) or value != neutral:
            raise ArchError(f"a {kind} block has no {name}: it must be {neutral!r}, "
                            f"got {value!r}")
        return neutral
    default = grammar_field.default.get(kind, SAME)
    if default is not SAME and value == default and \
            isinstance(value, bool) == isinstance(default, bool) and \
            isinstance(value, tuple) == isinstance(default, tuple):
        return default  # a kind's defaults are valid (and a patch stem's 0 means none)
    if grammar_field.flag:
        if not isinstance(value, bool):
            raise ArchError(f"{kind}: {name} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str, tuple)):
        raise ArchError(f"{kind}: bad {name} {value!r}")
    if isinstance(value, tuple) and not all(type(v) is int for v in value):
        raise ArchError(f"{kind}: bad {name} {value!r}")
    try:
        parsed = grammar_field.parse(grammar_field.fmt(value))
    except (ValueError, TypeError) as e:
        raise ArchError(f"{kind}: {e}") from None
    # Numbers must survive the round trip unchanged (no silent rounding of 2.33333).
    if isinstance(value, (int, float)) and float(parsed) != float(value):
        raise ArchError(f"{kind}: {name} {value!r} has more than 4 decimals")
    return parsed


def _check_fields(obj, kind: str) -> None:
    for f in fields(obj):
        if f.name == "kind":
            continue
        if f.name == "kernel":  # the stem stores its single kernel as an int
            if not obj.patch:  # a patch stem's kernel and stride are its patch size
                _check_value(kind, "kernels", (obj.kernel,))
            continue
        if f.name == "stride" and kind == "stem" and obj.patch:
            continue
        object.__setattr__(obj, f.name, _check_value(kind, f.name, getattr(obj, f.name)))


class _Memo:
    """Remembers what is derived from an immutable value (its hash, canonical string, and
    per input width and size its validity and cost) in a dict beside its fields.

    A search hashes, formats, validates and costs the same few thousand rows for every
    architecture it samples, mutates or parses; deriving each once is what keeps it at
    predictor speed (experiments/bench/arch_ops.py). The memo is not part of the value:
    equality and ``repr`` read the fields only, and pickles and copies leave it out (a
    ``str``'s hash differs between processes). It is made with the value (``_start``, first
    thing in ``__post_init__``), so that instances keep sharing one key table. A dataclass
    keeps a ``__hash__`` only when its own class body defines one, so each class says
    ``__hash__ = _Memo.__hash__``.
    """

    def _start(self) -> None:
        object.__setattr__(self, "_memo", {})

    def __hash__(self) -> int:
        memo = self._memo
        value = memo.get("hash")
        if value is None:
            value = memo["hash"] = hash(tuple(getattr(self, f.name) for f in fields(self)))
        return value

    def __str__(self) -> str:
        memo = self._memo
        text = memo.get("text")
        if text is None:
            text = memo["text"] = self._format()
        return text

    def __getstate__(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def _format(self) -> str:
        raise NotImplementedError


def memo_table(value: Any, name: str) -> Dict[Any, Any]:
    """The table ``name`` in which something derived from the immutable ``value`` (a
    Stem, Block or Head) is remembered, e.g. ``nas.cost`` keeps a row's cost per
    (width, size) there. Lives and dies with ``value``; never pickled or copied."""
    memo = value._memo
    table = memo.get(name)
    if table is None:
        table = memo[name] = {}
    return table


def normalize_split(split, n_kernels: int):
    """One spelling for split rules that always give the same channel groups.

    Every channel count a split sees is even (widths are multiples of 4, expanded widths
    of 8, a shuffle unit's branches half a width), so over one kernel every rule is the
    same network, and over two kernels ``exp`` (C/2, C - C/2) is ``equal``. Keeping one
    spelling keeps "the same network is the same Architecture" (and the same id) true.
    """
    if n_kernels == 1 or (n_kernels == 2 and split == "exp"):
        return "equal"
    return split


# Far above real inputs; they stop a typo from allocating an impossible network.
INPUT_LIMITS = {"channels": 1024, "resolution": 4096, "classes": 1_000_000}


@dataclass(frozen=True)
class InputSpec(_Memo):
    """The target input the space is designed for (FLOPs are counted here)."""

    channels: int
    resolution: int
    classes: int

    __hash__ = _Memo.__hash__

    def __post_init__(self):
        self._start()
        for name in ("channels", "resolution", "classes"):
            value = getattr(self, name)
            limit = INPUT_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ArchError(f"input {name} must be a whole number from 1 to {limit:,}, "
                                f"got {value!r}")

    def _format(self) -> str:
        return f"{self.channels}x{self.resolution}x{self.resolution}-{self.classes}"


@dataclass(frozen=True)
class Stem(_Memo):
    """``kernel``x``kernel`` conv, stride ``stride`` -> BN -> act; or, when ``patch`` is set,
    ConvMixer's patch embedding: ``patch``x``patch`` conv with bias, stride ``patch``, no
    padding -> act -> BN (``kernel`` and ``stride`` are then ``patch``)."""

    kernel: int
    stride: int
    out: int
    act: str
    patch: int = 0

    __hash__ = _Memo.__hash__

    def __post_init__(self):
        self._start()
        _check_fields(self, "stem")
        if self.patch:
            object.__setattr__(self, "kernel", self.patch)
            object.__setattr__(self, "stride", self.patch)

    def _format(self) -> str:
        if self.patch:
            return format_block("stem", {"kernels": None, "stride": 2, "patch": self.patch,
                                         "out": self.out, "act": self.act})
        return format_block("stem", {"kernels": (self.kernel,), "stride": self.stride,
                                     "patch": 0, "out": self.out, "act": self.act})



@dataclass(frozen=True)
class Block(_Memo):
    """One row of a stage: ``repeats`` identical blocks, the first with ``stride``.

    Fields a kind does not have hold their neutral value (``NEUTRAL``). A row with
    ``repeats == 0`` is absent: every field but ``out`` (which the architecture sets to
    the row's input width) takes one fixed value, so absent rows compare equal.
    """

    kind: str
    repeats: int
    kernels: Tuple[int, ...]
    split: Any
    exp_groups: int
    proj_groups: int
    stride: int
    expansion: float
    se: float
    out: int
    act: str
    skip: bool
    start: Tuple[int, ...] = ()
    hse: float = 0.0
    div: int = 4

    __hash__ = _Memo.__hash__

    def __post_init__(self):
        self._start()
        if self.kind not in ROW_FIELDS:
            raise ArchError(f"block kind must be one of {', '.join(ROW_FIELDS)}, "
                            f"got {self.kind!r}")
        for name in ("kernels", "split", "start"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.repeats == 0:
            for name, value in _absent_values(self.kind).items():
                object.__setattr__(self, name, value)
        _check_fields(self, self.kind)
        if self.se and self.hse:
            raise ArchError(f"{self.kind}: a block has one SE, se or hse, not both")
        if self.kind == "uir" and self.stride == 2 and not self.kernels and not self.start:
            raise ArchError("a stride-2 uir block needs a depthwise conv (a or k not 0)")
        object.__setattr__(self, "split", normalize_split(
            self.split, max(len(self.kernels), len(self.start))))
        for kernels in (self.kernels, self.start):
            if not isinstance(self.split, str) and len(kernels) > 1 and \
                    len(self.split) != len(kernels):
                raise ArchError(
                    f"split {':'.join(map(str, self.split))} has {len(self.split)} parts "
                    f"but kernel set {'.'.join(map(str, kernels))} has {len(kernels)}"
                )

    def values(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_FIELDS[self.kind]}

    def _format(self) -> str:
        return format_block(self.kind, self.values())

    @classmethod
    def from_values(cls, kind: str, values: Mapping[str, Any]) -> "Block":
        return cls(kind=kind, **{name: values.get(name, neutral)
                                 for name, neutral in _BLOCK_NEUTRAL.items()})


ROW_FIELDS: Dict[str, Tuple[str, ...]] = {
    kind: tuple(f.name for f in fields_of(kind)) for kind in ROW_KINDS}
_BLOCK_NEUTRAL = {f.name: NEUTRAL.get(f.name) for f in fields(Block) if f.name != "kind"}


@lru_cache(maxsize=None)
def _absent_values(kind: str) -> Dict[str, Any]:
    """What an absent (r0) row of ``kind`` holds, but for its width."""
    values = {}
    for name in _BLOCK_NEUTRAL:
        if name in ("repeats", "out"):
            continue
        f = FIELDS_BY_KIND[kind].get(name)
        if f is None:
            values[name] = NEUTRAL[name]
        else:
            default = f.default_for(kind)
            values[name] = f.absent if default is _REQUIRED else default
    return values


@dataclass(frozen=True)
class Head(_Memo):
    """[1x1 conv to ``out`` -> BN -> act] -> global average pool -> [1x1 conv to ``post``
    (with bias, or with ``post_bn`` a BN) -> act] -> linear. ``out`` or ``post`` 0: no
    such conv (MobileNetV1 and ConvMixer have neither; MobileNetV3/V4 only ``post``)."""

    out: int
    act: str
    post: int = 0
    post_bn: bool = False

    __hash__ = _Memo.__hash__

    def __post_init__(self):
        self._start()
        _check_fields(self, "head")

    def _format(self) -> str:
        return format_block("head", {"out": self.out, "post": self.post,
                                     "post_bn": self.post_bn, "act": self.act})

    def features(self, in_ch: int) -> int:
        """Width of what the classifier sees, fed ``in_ch`` channels."""
        return self.post or self.out or in_ch


@dataclass(frozen=True)
class Layer:
    """One concrete block of the network with every width and size resolved.

    Derived from an :class:`Architecture` by :meth:`Architecture.layers`; the cost
    model, the builders and the exporter all read these, never re-derive widths.
    """

    stage: int
    row: int
    repeat: int
    kind: str
    in_ch: int
    mid_ch: int
    out_ch: int
    stride: int
    kernels: Tuple[int, ...]
    dw_splits: Tuple[int, ...]
    se_ch: int
    exp_groups: int
    proj_groups: int
    act: str
    residual: bool
    in_size: int
    out_size: int
    # uir: the depthwise conv before the expansion (empty: none) and its channel groups
    start_kernels: Tuple[int, ...] = ()
    start_splits: Tuple[int, ...] = ()
    se_hard: bool = False  # MobileNetV3's SE: ReLU inside, hard-sigmoid gate
    part_ch: int = 0  # pc: the channels PConv convolves


def size_problem(kind: str, size: int) -> Optional[str]:
    """Why a block of ``kind`` cannot take a ``size`` x ``size`` map, or None.

    Strided convs are 'same'-padded, so they never shrink a map below 1x1; a kind with a
    larger smallest input says so in the table of block kinds (ADown's 2x2 average pool,
    stride 1, no padding, as in ultralytics' ``ADown``: torch refuses a 1x1 input).
    """
    least, why = kind_of(kind).min_size
    if size < least:
        return f"{why}, it is fed {size}x{size}"
    return None


def out_size_of(kind: str, size: int, stride: int) -> int:
    """Spatial output size of a block of ``kind`` with ``stride`` fed ``size`` pixels
    (per side; 'same' padding keeps ceil(size / stride) whatever the odd kernel)."""
    return kind_of(kind).out_size(size, stride)


def block_layers(block: Block, in_ch: int, size: int, stage: int = 0, row: int = 0):
    """The concrete layers of one block row fed ``in_ch`` channels at ``size``x``size``,
    every width and rule from the table of block kinds (:mod:`nas.blocks`)."""
    layers = []
    kind = kind_of(block.kind)
    n = len(block.kernels)
    for i in range(block.repeats):
        stride = kind.stride_of(block, i)
        if block.out != in_ch and (kind.keeps_width == "always" or (
                kind.keeps_width == "unstrided" and stride == 1)):
            raise ArchError(f"a {'' if stride > 1 else 'stride-1 '}{block.kind} block keeps the "
                            f"width it is fed ({in_ch}): it cannot put out {block.out} channels")
        mid = kind.mid_width(in_ch, block.out, block.expansion)
        # a second MixConv over the input: a uir's first one, or a strided branch's
        start = block.start or (block.kernels if kind.input_mixconv and stride > 1 else ())
        out_size = kind.out_size(size, stride)
        if block.hse:
            se_ch, se_hard = hard_se_channels(mid, block.hse), True
        else:
            se_ch, se_hard = se_channels(in_ch, block.se), False
        layers.append(Layer(
            stage=stage, row=row, repeat=i, kind=block.kind, in_ch=in_ch, mid_ch=mid,
            out_ch=block.out, stride=stride, kernels=block.kernels,
            dw_splits=split_channels(mid, n, block.split) if n and kind.mixconv else (),
            se_ch=se_ch, exp_groups=block.exp_groups,
            proj_groups=block.proj_groups, act=block.act,
            residual=kind.residual(block, in_ch, stride), in_size=size, out_size=out_size,
            start_kernels=start,
            start_splits=split_channels(in_ch, len(start), block.split) if start else (),
            se_hard=se_hard, part_ch=kind.part(in_ch, block.div) if kind.part else 0,
        ))
        size, in_ch = out_size, block.out
    return layers


# ----------------------------------------------------------- parsing, piece by piece
# Each parser is remembered on success (errors are rare and re-derived); the bounds keep
# a stream of distinct strings from growing memory without limit.
_PIECES = 16384


@lru_cache(maxsize=256)
def _parse_input(text: str) -> InputSpec:
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)-(\d+)", text)
    if not m or m.group(2) != m.group(3):
        raise ArchError(f"column 1: input '{text}' must be CxRxR-CLASSES, e.g. 3x224x224-1000")
    return InputSpec(int(m.group(1)), int(m.group(2)), int(m.group(4)))


def _parse_piece(parse, text: str, offset: int, *args):
    """``parse(text, *args)``, its errors pointing at their column in the whole string."""
    try:
        return parse(text, *args)
    except GrammarError as e:
        raise ArchError(f"column {offset + e.offset + 1}: {e.message}") from None
    except ArchError as e:
        raise ArchError(f"column {offset + 1}: {e}") from None


def _values(text: str, kinds) -> Tuple[str, Dict[str, Any]]:
    parsed = parse_block(text, kinds)
    return parsed.kind, single_values(parsed, text)


@lru_cache(maxsize=256)
def _parse_stem(text: str) -> Stem:
    _, v = _values(text, ("stem",))
    if len(v["kernels"]) != 1:
        raise ArchError("the stem takes a single kernel size")
    if v["patch"] and (text.count("_k") or text.count("_s")):
        raise ArchError("a patch stem's kernel and stride are its patch size (p): leave out "
                        "k and s")
    return Stem(kernel=v["kernels"][0], stride=v["stride"], out=v["out"], act=v["act"],
                patch=v["patch"])


@lru_cache(maxsize=_PIECES)
def _parse_row(text: str, width: int) -> Block:
    """A stage row fed ``width`` channels (its width when it has no ``c`` or is absent)."""
    kind, v = _values(text, ROW_KINDS)
    if v["out"] is SAME or v["repeats"] == 0:
        v["out"] = width
    return Block.from_values(kind, v)


@lru_cache(maxsize=256)
def _parse_head(text: str) -> Head:
    _, v = _values(text, ("head",))
    return Head(out=v["out"], act=v["act"], post=v["post"], post_bn=v["post_bn"])


_NO_ROWS: Dict[Any, Any] = {}  # read-only: what a block has remembered before its first row


def _row_problem(block: Block, in_ch: int, size: int) -> Tuple[Optional[str], bool, int]:
    """Why a block row fed ``in_ch`` channels at ``size`` pixels cannot be built (None when
    it can), whether the reason depends on the input resolution, and the row's output size.

    Remembered with the block per (width, size): an architecture is validated whenever
    one is made, and a search makes the same rows over and over.
    """
    for layer in block_layers(block, in_ch, size):
        problem = size_problem(layer.kind, layer.in_size)
        if problem:
            return problem, True, size
        if not check_groups(layer.dw_splits) or not check_groups(layer.start_splits):
            return (f"splitting {layer.mid_ch} channels over kernels "
                    f"{'.'.join(map(str, layer.kernels))} leaves a group empty "
                    f"({'+'.join(map(str, layer.dw_splits))})"), False, size
        if layer.kind == "pc" and layer.part_ch < 1:
            return f"PConv over {layer.in_ch} // d channels convolves none", False, size
        if layer.out_size < 1:
            return "the feature map vanishes", True, size
        size = layer.out_size
    return None, False, size


@dataclass(frozen=True)
class Architecture:
    """A network: target input, stem, stages of block rows, head."""

    input: InputSpec
    stem: Stem
    stages: Tuple[Tuple[Block, ...], ...]
    head: Head

    def __post_init__(self):
        stages = tuple(map(tuple, self.stages))
        if not stages or not all(stages):
            raise ArchError("an architecture needs at least one stage, and no stage may be empty")
        stem = self.stem
        size = conv_out_size(self.input.resolution, stem.kernel, stem.stride,
                             0 if stem.patch else None)
        if size < 1:
            raise ArchError(f"the patch stem's {self.stem.patch}x{self.stem.patch} patches do "
                            f"not fit a {self.input.resolution}x{self.input.resolution} input")
        width = self.stem.out
        for s, rows in enumerate(stages):
            for r, block in enumerate(rows):
                if block.repeats == 0 and block.out != width:
                    stages = self._pass_absent_rows(stages)
                    block = stages[s][r]
                found = block._memo.get("_rows", _NO_ROWS).get((width, size))
                if found is None:
                    found = _row_problem(block, width, size)
                    memo_table(block, "_rows")[(width, size)] = found
                problem, at_resolution, size = found
                if problem:
                    res = self.input.resolution
                    raise ArchError(f"stage {s} row {r}: {problem}"
                                    + (f" at {res}x{res}" if at_resolution else ""))
                width = block.out
        object.__setattr__(self, "stages", stages)

    def _pass_absent_rows(self, stages):
        """Absent (r0) rows pass their input on: their width is their input width."""
        width, out = self.stem.out, []
        for rows in stages:
            kept = []
            for block in rows:
                if block.repeats == 0 and block.out != width:
                    block = replace(block, out=width)
                kept.append(block)
                width = block.out
            out.append(tuple(kept))
        return tuple(out)

    # ----------------------------------------------------------- derived structure
    def layers(self) -> Iterator[Layer]:
        """Every block of the network in order, with widths and sizes resolved."""
        size = self.stem_size()
        width = self.stem.out
        for s, rows in enumerate(self.stages):
            for r, block in enumerate(rows):
                layers = block_layers(block, width, size, stage=s, row=r)
                yield from layers
                if layers:
                    size, width = layers[-1].out_size, block.out

    def stem_size(self, resolution: int = 0) -> int:
        """Side of the stem's output map at ``resolution`` (default: the target's)."""
        stem = self.stem
        return conv_out_size(resolution or self.input.resolution, stem.kernel, stem.stride,
                             0 if stem.patch else None)

    @property
    def last_width(self) -> int:
        return self.stages[-1][-1].out

    # ----------------------------------------------------------- canonical string
    def __str__(self) -> str:
        stages = "/".join([",".join(map(str, rows)) for rows in self.stages])
        return f"{self.input}/{self.stem}/{stages}/{self.head}"

    @property
    def id(self) -> str:
        """Stable id: the first 16 hex digits of the SHA-256 of the canonical string."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """Parse the canonical form (or any equivalent spelling of it).

        Each piece (input, stem, row fed a given width, head) is parsed and validated
        once and remembered: a search parses the same rows over and over.

        Raises:
            ArchError: naming the column and token that is wrong.
        """
        if not isinstance(text, str):
            raise ArchError(f"expected an architecture string, got {type(text).__name__}")
        parts = text.strip().split("/")
        if len(parts) < 4:
            raise ArchError(
                "an architecture string is INPUT/STEM/STAGE[/STAGE...]/HEAD, e.g. "
                "3x224x224-1000/stem_c16/ds_r1_k3_c16/head_c1536 "
                "(see `nas space sample SPACE`)"
            )
        spec = _parse_input(parts[0])
        offset = len(parts[0]) + 1
        stem = _parse_piece(_parse_stem, parts[1], offset)
        offset += len(parts[1]) + 1
        stages = []
        width = stem.out
        for stage_text in parts[2:-1]:
            rows = []
            for row_text in stage_text.split(","):
                block = _parse_piece(_parse_row, row_text, offset, width)
                rows.append(block)
                width = block.out
                offset += len(row_text) + 1
            stages.append(tuple(rows))
        head = _parse_piece(_parse_head, parts[-1], offset)
        return cls(spec, stem, tuple(stages), head)

    # ----------------------------------------------------------- JSON
    def to_dict(self) -> Dict[str, Any]:
        """Structured form; :meth:`from_dict` reads it back exactly."""

        def block_dict(b: Block) -> Dict[str, Any]:
            d = {f.name: getattr(b, f.name) for f in fields(b)}
            d["kernels"] = list(b.kernels)
            d["start"] = list(b.start)
            d["split"] = b.split if isinstance(b.split, str) else list(b.split)
            return d

        return {
            "input": {"channels": self.input.channels, "resolution": self.input.resolution,
                      "classes": self.input.classes},
            "stem": {"kernel": self.stem.kernel, "stride": self.stem.stride,
                     "out": self.stem.out, "act": self.stem.act, "patch": self.stem.patch},
            "stages": [[block_dict(b) for b in rows] for rows in self.stages],
            "head": {"out": self.head.out, "act": self.head.act, "post": self.head.post,
                     "post_bn": self.head.post_bn},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors."""

        def make(klass, d, where):
            if not isinstance(d, Mapping):
                raise ArchError(f"{where}: expected an object, got {type(d).__name__}")
            names = {f.name for f in fields(klass)}
            # Fields added later (with defaults) may be missing from older files.
            required = {f.name for f in fields(klass) if f.default is MISSING}
            extra, missing = set(d) - names, required - set(d)
            if extra or missing:
                raise ArchError(
                    f"{where}: unknown keys {sorted(extra)}" if extra
                    else f"{where}: missing keys {sorted(missing)}"
                )
            try:
                return klass(**d)
            except ArchError as e:
                raise ArchError(f"{where}: {e}") from None

        if not isinstance(data, Mapping):
            raise ArchError("architecture JSON must be an object")
        expected = {"input", "stem", "stages", "head"}
        if set(data) != expected:
            raise ArchError(f"architecture JSON needs exactly the keys {sorted(expected)}")
        stages = data["stages"]
        if not isinstance(stages, list) or not all(isinstance(s, list) for s in stages):
            raise ArchError("stages: expected a list of lists of blocks")
        return cls(
            make(InputSpec, data["input"], "input"),
            make(Stem, data["stem"], "stem"),
            tuple(
                tuple(make(Block, b, f"stages[{i}][{j}]") for j, b in enumerate(rows))
                for i, rows in enumerate(stages)
            ),
            make(Head, data["head"], "head"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchError(f"invalid JSON: {e}") from None
        return cls.from_dict(data)


def read_arch(text: str) -> Architecture:
    """What ``--arch`` names: a canonical architecture string, or the path of a ``.json``
    file holding one (an export's ``arch.json``: its ``arch``) or an architecture's dict."""
    from pathlib import Path

    path = Path(text)
    if text.endswith(".json") and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArchError(f"{path}: not valid JSON ({e})") from None
        if isinstance(data, dict) and "arch" in data:
            return Architecture.parse(data["arch"])
        return Architecture.from_dict(data)
    return Architecture.parse(text)
