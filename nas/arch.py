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
from dataclasses import dataclass, fields
from typing import Any, Dict, Iterator, Mapping, Tuple

from .channels import check_groups, conv_out_size, mid_channels, se_channels, split_channels
from .errors import ArchError, GrammarError
from .grammar import (
    FIELD_BY_NAME,
    SAME,
    fields_of,
    format_block,
    parse_block,
    single_values,
)

__all__ = [
    "ArchError", "InputSpec", "Stem", "Block", "Head", "Layer", "Architecture", "block_layers",
    "normalize_split",
]


def _check_value(kind: str, name: str, value: Any) -> Any:
    """Validate one field value with the grammar's own rules; return it normalised.

    The value is written as a token and read back, so anything the grammar rejects
    (a width that is not a multiple of 8, a kernel of 4, text where a number belongs)
    is rejected here too, whether the object came from a string, JSON or code.
    """
    if name == "skip":
        if not isinstance(value, bool):
            raise ArchError(f"{kind}: skip must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str, tuple)):
        raise ArchError(f"{kind}: bad {name} {value!r}")
    if isinstance(value, tuple) and not all(type(v) is int for v in value):
        raise ArchError(f"{kind}: bad {name} {value!r}")
    grammar_field = FIELD_BY_NAME[name]
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
            _check_value(kind, "kernels", (obj.kernel,))
            continue
        object.__setattr__(obj, f.name, _check_value(kind, f.name, getattr(obj, f.name)))


def normalize_split(split, n_kernels: int):
    """One spelling for split rules that always give the same channel groups.

    Every channel count a split sees is a multiple of 8 (widths are, and expanded widths
    are rounded to one), so over one kernel every rule is the same network, and over two
    kernels ``exp`` (C/2, C - C/2) is ``equal``. Keeping one spelling keeps
    "the same network is the same Architecture" (and the same id) true.
    """
    if n_kernels == 1 or (n_kernels == 2 and split == "exp"):
        return "equal"
    return split


# Far above real inputs; they stop a typo from allocating an impossible network.
INPUT_LIMITS = {"channels": 1024, "resolution": 4096, "classes": 1_000_000}


@dataclass(frozen=True)
class InputSpec:
    """The target input the space is designed for (FLOPs are counted here)."""

    channels: int
    resolution: int
    classes: int

    def __post_init__(self):
        for name in ("channels", "resolution", "classes"):
            value = getattr(self, name)
            limit = INPUT_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ArchError(f"input {name} must be a whole number from 1 to {limit:,}, "
                                f"got {value!r}")

    def __str__(self) -> str:
        return f"{self.channels}x{self.resolution}x{self.resolution}-{self.classes}"


@dataclass(frozen=True)
class Stem:
    """``kernel``x``kernel`` conv, stride ``stride`` -> BN -> act."""

    kernel: int
    stride: int
    out: int
    act: str

    def __post_init__(self):
        _check_fields(self, "stem")

    def __str__(self) -> str:
        return format_block("stem", {"kernels": (self.kernel,), "stride": self.stride,
                                     "out": self.out, "act": self.act})


@dataclass(frozen=True)
class Block:
    """One row of a stage: ``repeats`` identical blocks, the first with ``stride``."""

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

    def __post_init__(self):
        if self.kind not in ("ds", "ir"):
            raise ArchError(f"block kind must be ds or ir, got {self.kind!r}")
        if isinstance(self.kernels, list):
            object.__setattr__(self, "kernels", tuple(self.kernels))
        if isinstance(self.split, list):
            object.__setattr__(self, "split", tuple(self.split))
        if self.kind == "ds" and (self.expansion != 1 or self.exp_groups != 1):
            raise ArchError("a ds block has no expand conv: expansion and exp_groups must be 1")
        _check_fields(self, self.kind)
        object.__setattr__(self, "split", normalize_split(self.split, len(self.kernels)))
        if not isinstance(self.split, str) and len(self.split) != len(self.kernels):
            raise ArchError(
                f"split {':'.join(map(str, self.split))} has {len(self.split)} parts "
                f"but kernel set {'.'.join(map(str, self.kernels))} has {len(self.kernels)}"
            )

    def values(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields_of(self.kind)}

    def __str__(self) -> str:
        return format_block(self.kind, self.values())

    @classmethod
    def from_values(cls, kind: str, values: Mapping[str, Any]) -> "Block":
        return cls(
            kind=kind, repeats=values["repeats"], kernels=values["kernels"],
            split=values["split"], exp_groups=values.get("exp_groups", 1),
            proj_groups=values["proj_groups"], stride=values["stride"],
            expansion=values.get("expansion", 1.0), se=values["se"], out=values["out"],
            act=values["act"], skip=values["skip"],
        )


@dataclass(frozen=True)
class Head:
    """1x1 conv to ``out`` -> BN -> act -> global average pool -> linear."""

    out: int
    act: str

    def __post_init__(self):
        _check_fields(self, "head")

    def __str__(self) -> str:
        return format_block("head", {"out": self.out, "act": self.act})


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


def block_layers(block: Block, in_ch: int, size: int, stage: int = 0, row: int = 0):
    """The concrete layers of one block row fed ``in_ch`` channels at ``size``x``size``."""
    layers = []
    for i in range(block.repeats):
        stride = block.stride if i == 0 else 1
        mid = in_ch if block.kind == "ds" else mid_channels(in_ch, block.expansion)
        out_size = conv_out_size(size, max(block.kernels), stride)
        layers.append(Layer(
            stage=stage, row=row, repeat=i, kind=block.kind, in_ch=in_ch, mid_ch=mid,
            out_ch=block.out, stride=stride, kernels=block.kernels,
            dw_splits=split_channels(mid, len(block.kernels), block.split),
            se_ch=se_channels(in_ch, block.se), exp_groups=block.exp_groups,
            proj_groups=block.proj_groups, act=block.act,
            residual=block.skip and stride == 1 and in_ch == block.out,
            in_size=size, out_size=out_size,
        ))
        size, in_ch = out_size, block.out
    return layers


@dataclass(frozen=True)
class Architecture:
    """A network: target input, stem, stages of block rows, head."""

    input: InputSpec
    stem: Stem
    stages: Tuple[Tuple[Block, ...], ...]
    head: Head

    def __post_init__(self):
        stages = tuple(tuple(rows) for rows in self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages or any(not rows for rows in stages):
            raise ArchError("an architecture needs at least one stage, and no stage may be empty")
        for layer in self.layers():
            if not check_groups(layer.dw_splits):
                raise ArchError(
                    f"stage {layer.stage} row {layer.row}: splitting {layer.mid_ch} channels "
                    f"over kernels {'.'.join(map(str, layer.kernels))} leaves a group empty "
                    f"({'+'.join(map(str, layer.dw_splits))})"
                )

    # ----------------------------------------------------------- derived structure
    def layers(self) -> Iterator[Layer]:
        """Every block of the network in order, with widths and sizes resolved."""
        size = conv_out_size(self.input.resolution, self.stem.kernel, self.stem.stride)
        width = self.stem.out
        for s, rows in enumerate(self.stages):
            for r, block in enumerate(rows):
                layers = block_layers(block, width, size, stage=s, row=r)
                yield from layers
                size, width = layers[-1].out_size, block.out

    @property
    def last_width(self) -> int:
        return self.stages[-1][-1].out

    # ----------------------------------------------------------- canonical string
    def __str__(self) -> str:
        stages = "/".join(",".join(str(b) for b in rows) for rows in self.stages)
        return f"{self.input}/{self.stem}/{stages}/{self.head}"

    @property
    def id(self) -> str:
        """Stable id: the first 16 hex digits of the SHA-256 of the canonical string."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """Parse the canonical form (or any equivalent spelling of it).

        Raises:
            ArchError: naming the column and token that is wrong.
        """
        if not isinstance(text, str):
            raise ArchError(f"expected an architecture string, got {type(text).__name__}")
        text = text.strip()
        parts = text.split("/")
        if len(parts) < 4:
            raise ArchError(
                "an architecture string is INPUT/STEM/STAGE[/STAGE...]/HEAD, e.g. "
                "3x224x224-1000/stem_c16/ds_r1_k3_c16/head_c1536 "
                "(see `nas space sample SPACE`)"
            )
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)-(\d+)", parts[0])
        if not m or m.group(2) != m.group(3):
            raise ArchError(
                f"column 1: input '{parts[0]}' must be CxRxR-CLASSES, e.g. 3x224x224-1000"
            )
        spec = InputSpec(int(m.group(1)), int(m.group(2)), int(m.group(4)))
        offset = len(parts[0]) + 1

        def block(piece: str, kinds, at: int):
            try:
                parsed = parse_block(piece, kinds)
                return parsed.kind, single_values(parsed, piece)
            except GrammarError as e:
                raise ArchError(f"column {at + e.offset + 1}: {e.message}") from None

        _, v = block(parts[1], ("stem",), offset)
        if len(v["kernels"]) != 1:
            raise ArchError(f"column {offset + 1}: the stem takes a single kernel size")
        try:
            stem = Stem(kernel=v["kernels"][0], stride=v["stride"], out=v["out"], act=v["act"])
        except ArchError as e:
            raise ArchError(f"column {offset + 1}: {e}") from None
        offset += len(parts[1]) + 1
        stages = []
        width = stem.out
        for stage_text in parts[2:-1]:
            rows = []
            for row_text in stage_text.split(","):
                kind, v = block(row_text, ("ds", "ir"), offset)
                if v["out"] is SAME:
                    v["out"] = width
                width = v["out"]
                try:
                    rows.append(Block.from_values(kind, v))
                except ArchError as e:
                    raise ArchError(f"column {offset + 1}: {e}") from None
                offset += len(row_text) + 1
            stages.append(tuple(rows))
        _, v = block(parts[-1], ("head",), offset)
        return cls(spec, stem, tuple(stages), Head(out=v["out"], act=v["act"]))

    # ----------------------------------------------------------- JSON
    def to_dict(self) -> Dict[str, Any]:
        """Structured form; :meth:`from_dict` reads it back exactly."""

        def block_dict(b: Block) -> Dict[str, Any]:
            d = {f.name: getattr(b, f.name) for f in fields(b)}
            d["kernels"] = list(b.kernels)
            d["split"] = b.split if isinstance(b.split, str) else list(b.split)
            return d

        return {
            "input": {"channels": self.input.channels, "resolution": self.input.resolution,
                      "classes": self.input.classes},
            "stem": {"kernel": self.stem.kernel, "stride": self.stem.stride,
                     "out": self.stem.out, "act": self.stem.act},
            "stages": [[block_dict(b) for b in rows] for rows in self.stages],
            "head": {"out": self.head.out, "act": self.head.act},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors."""

        def make(klass, d, where):
            if not isinstance(d, Mapping):
                raise ArchError(f"{where}: expected an object, got {type(d).__name__}")
            names = {f.name for f in fields(klass)}
            extra, missing = set(d) - names, names - set(d)
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
