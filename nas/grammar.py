"""The block grammar: one compact string per stem, block row or head.

In the spirit of timm's ``ir_r2_k3.5.7_e6_c40_se0.5`` strings, with two differences:
any value may be a set of alternatives separated by ``|``, and unknown, repeated or
misplaced tokens are errors (timm ignores them).

Grammar (``_`` separates tokens, ``|`` separates alternatives)::

    block    := KIND ( "_" token )*
    KIND     := "stem" | "ds" | "ir" | "head"
    token    := KEY value ( "|" value )*  |  "noskip"

    key  meaning                                  value                 kinds          default
    r    repeats of the row (stage depth)         int in 1..32          ds ir          1
    k    depthwise kernel set, increasing         k(.k)*, k in          stem ds ir     stem: 3;
                                                  {3,5,7,9,11}                         else required
    x    channel split across the kernel set     equal | exp | n:n(:n)* ds ir        equal
    a    groups of the 1x1 expand conv            1 | 2                 ir             1
    p    groups of the 1x1 project conv           1 | 2                 ds ir          1
    s    stride of the first repeat (fixed)       1 | 2                 stem ds ir     stem: 2; 1
    e    expansion ratio                          number in (0, 32]     ir             required
    se   squeeze-excitation ratio of the block's  number in [0, 1],     ds ir          0
         *input* channels (0 = no SE)             0 = off
    c    output channels, a multiple of 8         int, 8..8192          all            stem/head:
                                                                                       required;
                                                                                       ds/ir: same
                                                                                       as its input
    act  activation                               relu | swish | hswish all            relu
    noskip  no residual connection (no value)     flag                  ds ir          off

A row without ``c`` keeps the width it is fed, so its width is the same decision as
the row before it (the stem's, for the first row): ``ir_r1_k3_s2_e6_c24|32`` followed
by ``ir_r1|2_k3_e3`` gives a stage with one width choice and residuals throughout.
Numbers are written plainly (``6``, ``0.25``; at most 4 decimals). ``s`` and
``noskip`` are fixed: they cannot take alternatives. Examples::

    stem_c16|24                             stem: 3x3 stride-2 conv, 16 or 24 channels
    ds_r1_k3_c16                            MixNet-S's first block
    ir_r1|2|3_k3|3.5|3.5.7_e3|6_se0|0.5_c40_actswish
    head_c1536

An architecture uses the same grammar with exactly one value per token; its
canonical form (:func:`format_block`) writes the tokens in the order of the table
above and leaves out values equal to their defaults, except ``r``, ``k``, ``e``, ``c``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .errors import GrammarError

KINDS = ("stem", "ds", "ir", "head")
KERNELS = (3, 5, 7, 9, 11)
ACTIVATIONS = ("relu", "swish", "hswish")
MAX_DECIMALS = 4
# Bounds keep one hostile or mistyped string from allocating a network that cannot fit
# in memory (r100000000 would build 1e8 layers); they are far above any MixNet.
MAX_REPEATS, MAX_WIDTH, MAX_EXPANSION = 32, 8192, 32
_REQUIRED = object()


class _Same:
    """Default width of a stage row without a ``c`` token: keep the incoming width."""

    def __repr__(self) -> str:
        return "SAME"


SAME = _Same()


# ---------------------------------------------------------------- value parsers
_NUMBER = re.compile(r"^\d+(\.\d{1,%d})?$" % MAX_DECIMALS)


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{what} must be a whole number, got '{text}'")
    return int(text)


def _number(text: str, what: str) -> float:
    if not _NUMBER.match(text):
        raise ValueError(
            f"{what} must be a plain number with at most {MAX_DECIMALS} decimals, got '{text}'"
        )
    return float(text)


def format_number(value: float) -> str:
    """Shortest plain form of a grammar number: ``6``, ``0.25``."""
    text = f"{value:.{MAX_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"


def _parse_repeats(text: str) -> int:
    value = _int(text, "repeats (r)")
    if not 1 <= value <= MAX_REPEATS:
        raise ValueError(f"repeats (r) must be between 1 and {MAX_REPEATS}, got {value}")
    return value


def _parse_kernels(text: str) -> Tuple[int, ...]:
    parts = text.split(".")
    kernels = []
    for part in parts:
        if not part.isdigit():
            raise ValueError(f"kernel set '{text}' must be sizes joined by '.', like 3.5.7")
        k = int(part)
        if k not in KERNELS:
            raise ValueError(
                f"kernel {k} is not allowed: kernels are odd sizes 3, 5, 7, 9 or 11"
            )
        if k in kernels:
            raise ValueError(f"kernel {k} appears twice in kernel set '{text}'")
        kernels.append(k)
    if kernels != sorted(kernels):
        raise ValueError(
            f"kernel set '{text}' must be increasing (write {'.'.join(map(str, sorted(kernels)))})"
        )
    return tuple(kernels)


def _format_kernels(kernels: Tuple[int, ...]) -> str:
    return ".".join(str(k) for k in kernels)


def _parse_split(text: str):
    if text in ("equal", "exp"):
        return text
    if not re.fullmatch(r"\d+(:\d+)+", text):
        raise ValueError(
            f"channel split must be 'equal', 'exp' or ratios like 2:1:1, got '{text}'"
        )
    ratios = tuple(int(r) for r in text.split(":"))
    if min(ratios) < 1:
        raise ValueError(f"split ratios must be positive, got '{text}'")
    gcd = math.gcd(*ratios)
    ratios = tuple(r // gcd for r in ratios)
    # All-equal ratios are exactly the "equal" rule; keep one spelling of it.
    return "equal" if len(set(ratios)) == 1 else ratios


def format_split(split) -> str:
    return split if isinstance(split, str) else ":".join(str(r) for r in split)


def _parse_groups(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int(text, what)
        if value not in (1, 2):
            raise ValueError(f"{what} must be 1 or 2, got {value}")
        return value

    return parse


def _parse_stride(text: str) -> int:
    value = _int(text, "stride (s)")
    if value not in (1, 2):
        raise ValueError(f"stride (s) must be 1 or 2, got {value}")
    return value


def _parse_expansion(text: str) -> float:
    value = _number(text, "expansion (e)")
    if not 0 < value <= MAX_EXPANSION:
        raise ValueError(f"expansion (e) must be positive and at most {MAX_EXPANSION}, "
                         f"got '{text}'")
    return value


def _parse_se(text: str) -> float:
    value = _number(text, "SE ratio (se)")
    if value > 1:
        raise ValueError(f"SE ratio (se) must be between 0 and 1, got '{text}'")
    return value


def _parse_width(text: str) -> int:
    value = _int(text, "width (c)")
    if value < 8 or value % 8 or value > MAX_WIDTH:
        raise ValueError(f"width (c) must be a positive multiple of 8 up to {MAX_WIDTH}, "
                         f"got {value}")
    return value


def _parse_act(text: str) -> str:
    if text not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{text}'")
    return text


def _parse_flag(text: str) -> bool:
    if text:
        raise ValueError("noskip takes no value")
    return False


@dataclass(frozen=True)
class Field:
    """One token kind of the grammar."""

    key: str
    name: str
    kinds: Tuple[str, ...]
    parse: Callable[[str], Any]
    fmt: Callable[[Any], str] = str
    default: Mapping[str, Any] = field(default_factory=dict)  # kind -> default
    choosable: bool = True
    always_print: bool = False

    def default_for(self, kind: str):
        return self.default.get(kind, _REQUIRED)


# Canonical token order.
FIELDS: Tuple[Field, ...] = (
    Field("r", "repeats", ("ds", "ir"), _parse_repeats, default={"ds": 1, "ir": 1},
          always_print=True),
    Field("k", "kernels", ("stem", "ds", "ir"), _parse_kernels, _format_kernels,
          default={"stem": (3,)}, always_print=True),
    Field("x", "split", ("ds", "ir"), _parse_split, format_split,
          default={"ds": "equal", "ir": "equal"}),
    Field("a", "exp_groups", ("ir",), _parse_groups("expand groups (a)"), default={"ir": 1}),
    Field("p", "proj_groups", ("ds", "ir"), _parse_groups("project groups (p)"),
          default={"ds": 1, "ir": 1}),
    Field("s", "stride", ("stem", "ds", "ir"), _parse_stride,
          default={"stem": 2, "ds": 1, "ir": 1}, choosable=False),
    Field("e", "expansion", ("ir",), _parse_expansion, format_number, always_print=True),
    Field("se", "se", ("ds", "ir"), _parse_se, format_number, default={"ds": 0.0, "ir": 0.0}),
    Field("c", "out", KINDS, _parse_width, default={"ds": SAME, "ir": SAME},
          always_print=True),
    Field("act", "act", KINDS, _parse_act, default={k: "relu" for k in KINDS}),
    Field("noskip", "skip", ("ds", "ir"), _parse_flag, default={"ds": True, "ir": True},
          choosable=False),
)
FIELD_BY_NAME: Dict[str, Field] = {f.name: f for f in FIELDS}
# Longest keys first so that "se" is not read as "s" + "e...", "act" not as "a" + "ct".
_KEYS = sorted(FIELDS, key=lambda f: -len(f.key))


def fields_of(kind: str) -> Tuple[Field, ...]:
    """The fields a block of ``kind`` has, in canonical order."""
    return tuple(f for f in FIELDS if kind in f.kinds)


@dataclass(frozen=True)
class ParsedBlock:
    """A block string, parsed: every field of its kind with its alternatives.

    ``where[name]`` is ``(offset, token)`` of the token that set the field, or
    ``(0, kind)`` for defaulted fields, so later checks can point at the culprit.
    """

    kind: str
    values: Mapping[str, Tuple[Any, ...]]
    where: Mapping[str, Tuple[int, str]]


def parse_block(text: str, kinds: Tuple[str, ...] = KINDS) -> ParsedBlock:
    """Parse one block string.

    Args:
        text: the block string, e.g. ``"ir_r1|2_k3.5_e6_c40"``.
        kinds: the block kinds accepted here (a stage row cannot be a ``head``).

    Raises:
        GrammarError: with the offset and text of the offending token.
    """
    if not isinstance(text, str) or not text:
        raise GrammarError("expected a block string such as ir_r1_k3.5_e6_c40", 0, str(text))
    ws = re.search(r"\s", text)
    if ws:
        raise GrammarError("block strings cannot contain whitespace", ws.start(), text)
    tokens = text.split("_")
    kind = tokens[0]
    if kind not in kinds:
        raise GrammarError(
            f"unknown block kind '{kind}': expected {' or '.join(kinds)}", 0, kind
        )
    allowed = fields_of(kind)
    values: Dict[str, Tuple[Any, ...]] = {}
    where: Dict[str, Tuple[int, str]] = {}
    offset = len(kind) + 1
    for token in tokens[1:]:
        _parse_token(token, offset, kind, allowed, values, where)
        offset += len(token) + 1
    for f in allowed:
        if f.name not in values:
            default = f.default_for(kind)
            if default is _REQUIRED:
                raise GrammarError(
                    f"{kind} block needs a '{f.key}' token ({_describe(f)})", 0, text
                )
            values[f.name] = (default,)
            where[f.name] = (0, kind)
    return ParsedBlock(kind, values, where)


def _describe(f: Field) -> str:
    return {
        "repeats": "repeats", "kernels": "kernel set", "split": "channel split",
        "exp_groups": "expand groups", "proj_groups": "project groups", "stride": "stride",
        "expansion": "expansion ratio", "se": "SE ratio", "out": "output channels",
        "act": "activation", "skip": "residual",
    }[f.name]


def _parse_token(token, offset, kind, allowed, values, where) -> None:
    if not token:
        raise GrammarError("empty token (two '_' in a row, or a trailing '_')", offset, token)
    f = next((f for f in _KEYS if token.startswith(f.key)), None)
    if f is None:
        raise GrammarError(f"unknown token '{token}'", offset, token)
    if f not in allowed:
        raise GrammarError(
            f"token '{token}' ({_describe(f)}) does not apply to a {kind} block", offset, token
        )
    if f.name in values:
        raise GrammarError(
            f"repeated token '{token}': {_describe(f)} is already set by "
            f"'{where[f.name][1]}'", offset, token
        )
    body = token[len(f.key):]
    if f.key != "noskip" and not body:
        raise GrammarError(f"token '{token}' has no value", offset, token)
    alternatives = body.split("|")
    if len(alternatives) > 1 and not f.choosable:
        raise GrammarError(
            f"{_describe(f)} is fixed: '{token}' cannot list alternatives", offset, token
        )
    parsed = []
    alt_offset = offset + len(f.key)
    for alt in alternatives:
        try:
            value = f.parse(alt)
        except ValueError as e:
            raise GrammarError(str(e), alt_offset, alt or token) from None
        if value in parsed:
            raise GrammarError(f"alternative '{alt}' repeated in '{token}'", alt_offset, alt)
        parsed.append(value)
        alt_offset += len(alt) + 1
    values[f.name] = tuple(parsed)
    where[f.name] = (offset, token)


def format_block(kind: str, values: Mapping[str, Any]) -> str:
    """Canonical string of a block with one value per field."""
    parts = [kind]
    for f in fields_of(kind):
        value = values[f.name]
        if not f.always_print and value == f.default_for(kind):
            continue
        parts.append(f.key if f.key == "noskip" else f.key + f.fmt(value))
    return "_".join(parts)


def single_values(parsed: ParsedBlock, text: str) -> Dict[str, Any]:
    """The one value of each field; an error if any field lists alternatives."""
    out: Dict[str, Any] = {}
    for name, alts in parsed.values.items():
        if len(alts) != 1:
            offset, token = parsed.where[name]
            raise GrammarError(
                f"an architecture takes one value per token, '{token}' lists {len(alts)}",
                offset, token,
            )
        out[name] = alts[0]
    return out


def field_key(name: str) -> Optional[str]:
    f = FIELD_BY_NAME.get(name)
    return f.key if f else None
