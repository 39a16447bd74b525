"""The block grammar: one compact string per stem, block row or head.

In the spirit of timm's ``ir_r2_k3.5.7_e6_c40_se0.5`` strings (block kinds and tokens
carry timm's names where timm has them), with two differences: any value may be a set
of alternatives separated by ``|``, and unknown, repeated or misplaced tokens are errors
(timm ignores them).

Grammar (``_`` separates tokens, ``|`` separates alternatives)::

    block    := KIND ( "_" token )*
    token    := KEY value ( "|" value )*  |  FLAG

Block kinds (a stage row is any kind but ``stem`` and ``head``): the table of block kinds,
:data:`nas.blocks.BLOCK_KINDS`, says what each kind is and which tokens it takes (``nas
space kinds`` prints it); the shipped ones::

    stem ds dsa ir cn uir cm pc adown sh mp head

Tokens (canonical order)::

    key  meaning                                   value                    kinds
    r    repeats of the row; 0 = the row is absent int in 0..32            rows (default 1)
    a    uir: depthwise kernel set before the      kernel set or 0          uir (default 0)
         expansion (0 = none)
    k    depthwise kernel set, increasing          k(.k)*, k in 3..11 odd   stem (3) ds dsa ir cm sh
         uir: the middle depthwise conv, 0 = none  kernel set or 0          uir (required)
         a dense conv's kernel                     1, 3, 5, 7, 9 or 11      cn pc (cn: required)
    x    channel split across the kernel set       equal | exp | n:n(:n)*   ds dsa ir uir cm sh
    a    groups of the 1x1 expand conv             1 | 2                    ir
    p    groups of the 1x1 project conv            1 | 2                    ds dsa ir
         stem: patch size (kernel = stride = p)    int in 1..32             stem
    s    stride of the first repeat (fixed)        1 | 2                    stem ds dsa ir cn uir sh
                                                                            mp (default 2)
    e    expansion ratio                           number in (0, 32]        ir uir pc (pc: 2)
    d    PConv divisor: the conv sees C/d channels int in 1..16             pc (default 4)
    se   SE, width = block *input* channels x se,  number in [0, 1]         ds dsa ir
         block act inside, sigmoid gate (MixNet)
    hse  SE, width = *expanded* channels x hse     number in [0, 1]         ds dsa ir uir
         rounded to a multiple of 8, ReLU inside,
         hard-sigmoid gate (MobileNetV3)
    c    output channels, a multiple of 4          int, 8..8192             all (head: 0 = no
                                                                            conv before pooling)
    f    1x1 conv after pooling, 0 = none          0 or a multiple of 8     head
    fbn  that conv has BN instead of a bias (V4)   flag                     head
    act  activation                                relu | relu6 | swish |   all (default relu)
                                                   hswish | gelu
    noskip  no residual connection                 flag                     ds ir uir

A row without ``c`` keeps the width it is fed, so its width is the same decision as
the row before it (the stem's, for the first row): ``ir_r1_k3_s2_e6_c24|32`` followed
by ``ir_r1|2_k3_e3`` gives a stage with one width choice and residuals throughout.
A row whose repeats include 0 is optional; absent, it passes its input on unchanged.
Numbers are written plainly (``6``, ``0.25``; at most 4 decimals). ``s``, ``noskip``
and ``fbn`` are fixed: they cannot take alternatives. Examples::

    stem_c16|24                             stem: 3x3 stride-2 conv, 16 or 24 channels
    ds_r1_k3_c16                            MixNet-S's first block
    ir_r1|2|3_k3|3.5|3.5.7_e3|6_se0|0.5_c40_actswish
    uir_r0|1_a0|3.5_k0|3.5.7_e4_c96         an optional UIB row, variant and kernels chosen
    head_c1536

An architecture uses the same grammar with exactly one value per token; its
canonical form (:func:`format_block`) writes the tokens in the order of the table
above and leaves out values equal to their defaults, except ``r``, ``k``, ``e`` and a
row's ``c``; an absent row is written ``KIND_r0``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .blocks import BLOCK_KINDS, KINDS, REQUIRED, ROW_KINDS, SAME  # noqa: F401 (re-exported)
from .errors import GrammarError

KERNELS = (3, 5, 7, 9, 11)
DENSE_KERNELS = (1, 3, 5, 7, 9, 11)
ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "gelu")
MAX_DECIMALS = 4
# Bounds keep one hostile or mistyped string from allocating a network that cannot fit
# in memory (r100000000 would build 1e8 layers); they are far above any MixNet.
MAX_REPEATS, MAX_WIDTH, MAX_EXPANSION, MAX_PATCH, MAX_DIV = 32, 8192, 32, 32, 16
_REQUIRED = REQUIRED


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
    if not 0 <= value <= MAX_REPEATS:
        raise ValueError(f"repeats (r) must be between 0 and {MAX_REPEATS}, got {value}")
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


def _parse_optional_kernels(text: str) -> Tuple[int, ...]:
    """A kernel set, or ``0``: no depthwise conv (the empty tuple)."""
    return () if text == "0" else _parse_kernels(text)


def _parse_dense_kernel(text: str) -> Tuple[int, ...]:
    value = _int(text, "kernel (k)")
    if value not in DENSE_KERNELS:
        raise ValueError(f"kernel {value} is not allowed: a dense conv's kernel is 1, 3, 5, "
                         "7, 9 or 11")
    return (value,)


def _format_kernels(kernels: Tuple[int, ...]) -> str:
    return ".".join(str(k) for k in kernels) if kernels else "0"


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


def _parse_bounded(what: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int(text, what)
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
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


def _parse_ratio(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _number(text, what)
        if value > 1:
            raise ValueError(f"{what} must be between 0 and 1, got '{text}'")
        return value

    return parse


def _parse_width(text: str) -> int:
    # A multiple of 4 (ShuffleNetV2's 116): every width a split or a branch sees is even.
    value = _int(text, "width (c)")
    if value < 8 or value % 4 or value > MAX_WIDTH:
        raise ValueError(f"width (c) must be a multiple of 4 from 8 up to {MAX_WIDTH}, "
                         f"got {value}")
    return value


def _parse_optional_width(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int(text, what)
        if value % 8 or value > MAX_WIDTH:
            raise ValueError(f"{what} must be 0 (none) or a multiple of 8 up to {MAX_WIDTH}, "
                             f"got {value}")
        return value

    return parse


def _parse_act(text: str) -> str:
    if text not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{text}'")
    return text


def _flag(value: bool) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        if text:
            raise ValueError("a flag takes no value")
        return value

    return parse


_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[a-z]")
_WORD_OR_DIGIT = re.compile(r"[a-z\d]")


@dataclass(frozen=True)
class Field:
    """One token kind of the grammar.

    ``start`` matches the first character of a value: a token whose value starts
    otherwise is not this key's token but an unknown one (``pwact`` is not ``p`` = "wact").
    ``flag`` fields take no value: the token alone sets ``default``'s opposite. Which kinds
    take it, with which default, and whether the canonical form always shows it, come from
    the table of block kinds (:mod:`nas.blocks`): ``kinds``, ``default`` and
    ``always_print`` are filled from there.
    """

    key: str
    name: str
    what: str
    parse: Callable[[str], Any]
    fmt: Callable[[Any], str] = str
    variant: str = ""  # one name, several meanings across kinds (the kernels of cn vs ir)
    choosable: bool = True
    start: Optional[re.Pattern] = _DIGIT
    absent: Any = None  # the value an absent (r0) row stores
    kinds: Tuple[str, ...] = ()
    default: Mapping[str, Any] = field(default_factory=dict)  # kind -> default
    always_print: Tuple[str, ...] = ()  # kinds whose canonical form always shows it

    @property
    def id(self) -> str:
        """How the table of block kinds names it: ``name`` or ``name:variant``."""
        return f"{self.name}:{self.variant}" if self.variant else self.name

    @property
    def flag(self) -> bool:
        return self.start is None

    def default_for(self, kind: str):
        return self.default.get(kind, _REQUIRED)


def _bound(f: Field) -> Field:
    """``f`` with the kinds that take it, their defaults and where it is always shown."""
    takes = {name: k for name, k in BLOCK_KINDS.items() if f.id in k.token_defaults}
    shown = tuple(name for name, k in takes.items()
                  if any(t.field == f.id and t.shown for t in k.tokens))
    defaults = {name: k.token_defaults[f.id] for name, k in takes.items()
                if k.token_defaults[f.id] is not _REQUIRED}
    return replace(f, kinds=tuple(takes), default=defaults, always_print=shown)


# Canonical token order. One key may mean different things in different kinds (``a`` is
# the expand groups of an ir block but the first depthwise kernel of a uir block, as in
# timm); within one kind, keys and names are unique.
FIELDS: Tuple[Field, ...] = tuple(_bound(f) for f in (
    Field("r", "repeats", "repeats", _parse_repeats),
    Field("a", "start", "depthwise kernel set before the expansion", _parse_optional_kernels,
          _format_kernels, absent=()),
    Field("k", "kernels", "kernel set", _parse_kernels, _format_kernels, absent=(3,)),
    Field("k", "kernels", "middle depthwise kernel set", _parse_optional_kernels,
          _format_kernels, variant="middle", absent=(3,)),
    Field("k", "kernels", "kernel", _parse_dense_kernel, _format_kernels, variant="dense",
          absent=(3,)),
    Field("x", "split", "channel split", _parse_split, format_split, start=_WORD_OR_DIGIT),
    Field("a", "exp_groups", "expand groups", _parse_groups("expand groups (a)")),
    Field("p", "proj_groups", "project groups", _parse_groups("project groups (p)")),
    Field("p", "patch", "patch size", _parse_bounded("patch size (p)", 1, MAX_PATCH)),
    Field("s", "stride", "stride", _parse_stride, choosable=False),
    Field("e", "expansion", "expansion ratio", _parse_expansion, format_number, absent=1.0),
    Field("d", "div", "PConv divisor", _parse_bounded("PConv divisor (d)", 1, MAX_DIV)),
    Field("se", "se", "SE ratio", _parse_ratio("SE ratio (se)"), format_number),
    Field("hse", "hse", "hard SE ratio", _parse_ratio("hard SE ratio (hse)"), format_number),
    Field("c", "out", "output channels", _parse_width, absent=SAME),
    Field("c", "out", "conv width before pooling", _parse_optional_width("head width (c)"),
          variant="head"),
    Field("f", "post", "conv width after pooling",
          _parse_optional_width("head width after pooling (f)")),
    Field("fbn", "post_bn", "BN after the pooled conv", _flag(True), choosable=False,
          start=None),
    Field("act", "act", "activation", _parse_act, start=_WORD),
    Field("noskip", "skip", "residual", _flag(False), choosable=False, start=None),
))
_unknown = {t.field for k in BLOCK_KINDS.values() for t in k.tokens} - {f.id for f in FIELDS}
if _unknown:  # a kind naming a token the grammar does not define
    raise TypeError(f"nas.blocks names undefined grammar fields: {sorted(_unknown)}")
# name -> a field of that name (fields that share a name share its value's format).
FIELD_BY_NAME: Dict[str, Field] = {}
for _f in FIELDS:
    FIELD_BY_NAME.setdefault(_f.name, _f)
_FIELDS_OF: Dict[str, Tuple[Field, ...]] = {
    kind: tuple(f for f in FIELDS if kind in f.kinds) for kind in KINDS}
FIELDS_BY_KIND: Dict[str, Dict[str, Field]] = {
    kind: {f.name: f for f in fs} for kind, fs in _FIELDS_OF.items()}
# Longest keys first so that "se" is not read as "s" + "e...", "act" not as "a" + "ct".
_KEYS_OF: Dict[str, List[Field]] = {
    kind: sorted(fs, key=lambda f: -len(f.key)) for kind, fs in _FIELDS_OF.items()}
_ALL_KEYS = sorted(FIELDS, key=lambda f: -len(f.key))


def fields_of(kind: str) -> Tuple[Field, ...]:
    """The fields a block of ``kind`` has, in canonical order."""
    return _FIELDS_OF[kind]


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
            f"unknown block kind '{kind}': expected {', '.join(kinds[:-1])} or {kinds[-1]}"
            if len(kinds) > 1 else f"unknown block kind '{kind}': expected {kinds[0]}",
            0, kind)
    values: Dict[str, Tuple[Any, ...]] = {}
    where: Dict[str, Tuple[int, str]] = {}
    offset = len(kind) + 1
    for token in tokens[1:]:
        _parse_token(token, offset, kind, values, where)
        offset += len(token) + 1
    absent = values.get("repeats") == (0,)  # an absent row: nothing else is required
    for f in _FIELDS_OF[kind]:
        if f.name not in values:
            default = f.default_for(kind)
            if default is _REQUIRED:
                if not absent:
                    raise GrammarError(
                        f"{kind} block needs a '{f.key}' token ({f.what})", 0, text)
                default = f.absent
            values[f.name] = (default,)
            where[f.name] = (0, kind)
    return ParsedBlock(kind, values, where)


def _match(token: str, candidates) -> Tuple[Optional[Field], Optional[Field]]:
    """``(field, prefix_only)``: the field whose key and value start ``token``; else the
    longest field whose key merely prefixes it (for "has no value" messages)."""
    prefix = None
    for f in candidates:
        if not token.startswith(f.key):
            continue
        body = token[len(f.key):]
        if f.flag:
            if not body or body.startswith("|"):  # "noskip|noskip" is refused as fixed
                return f, None
        elif body and f.start.match(body):
            return f, None
        elif not body and prefix is None:
            prefix = f
    return None, prefix


def _parse_token(token, offset, kind, values, where) -> None:
    if not token:
        raise GrammarError("empty token (two '_' in a row, or a trailing '_')", offset, token)
    f, prefix = _match(token, _KEYS_OF[kind])
    if f is None:
        if prefix is not None:
            raise GrammarError(f"token '{token}' has no value", offset, token)
        other, _ = _match(token, _ALL_KEYS)
        if other is not None:
            raise GrammarError(
                f"token '{token}' ({other.what}) does not apply to a {kind} block",
                offset, token)
        raise GrammarError(f"unknown token '{token}'", offset, token)
    if f.name in values:
        raise GrammarError(
            f"repeated token '{token}': {f.what} is already set by "
            f"'{where[f.name][1]}'", offset, token
        )
    body = token[len(f.key):]
    alternatives = body.split("|")
    if len(alternatives) > 1 and not f.choosable:
        raise GrammarError(
            f"{f.what} is fixed: '{token}' cannot list alternatives", offset, token
        )
    parsed = []
    alt_offset = offset + len(f.key)
    for alt in alternatives:
        try:
            value = f.parse(alt)
        except ValueError as e:
            raise GrammarError(f"{e} (in token '{token}')", alt_offset, alt or token) from None
        if value in parsed:
            raise GrammarError(f"alternative '{alt}' repeated in '{token}'", alt_offset, alt)
        parsed.append(value)
        alt_offset += len(alt) + 1
    values[f.name] = tuple(parsed)
    where[f.name] = (offset, token)


def format_block(kind: str, values: Mapping[str, Any]) -> str:
    """Canonical string of a block with one value per field (``KIND_r0`` when absent;
    a field whose value is None is left out)."""
    if values.get("repeats", 1) == 0:
        return f"{kind}_r0"
    parts = [kind]
    for f in _FIELDS_OF[kind]:
        value = values[f.name]
        if value is None or (kind not in f.always_print
                             and value == f.default.get(kind, _REQUIRED)):
            continue
        parts.append(f.key if f.flag else f.key + f.fmt(value))
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
