"""``load_space``: read a space file strictly, with file:line:column errors.

A space file is YAML with exactly these keys::

    description: free text (optional)
    input: {channels: 3, resolution: 224, classes: 1000}   # the target FLOPs are counted at
    stem: stem_c16|24                                       # block grammar, see grammar.py
    stages:                                                 # a list of stages,
      - [ds_r1_k3_c16]                                      # each a list of block rows
      - [ir_r1_k3|3.5_a2_p2_s2_e6_c24, ir_r1|2_k3_a2_p2_e3_c24]
    head: head_c1536

The YAML is composed into nodes (not loaded into dicts) so that every error can name
the line and column of the offending token; duplicate keys, which PyYAML would
silently merge, are errors too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import yaml

from ..arch import INPUT_LIMITS, InputSpec
from ..blocks import kind_of
from ..channels import split_channels
from ..errors import GrammarError, SpaceError
from ..grammar import ROW_KINDS, SAME, format_split, parse_block
from .search_space import RowSpace, SearchSpace

__all__ = ["SpaceError", "load_space", "available_spaces", "space_location"]

SPACES_ENV = "NAS_SPACES_PATH"
_TOP_KEYS = ("description", "input", "stem", "stages", "head")
_INPUT_KEYS = ("channels", "resolution", "classes")


@dataclass
class _Loc:
    file: str

    def error(self, node: yaml.Node, message: str, offset: int = 0) -> SpaceError:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line:
            col += offset + (1 if node.style in ("'", '"') else 0)
        return SpaceError(self.file, line, col, message)


def available_spaces() -> Dict[str, Path]:
    """Registered spaces: file stem -> path (shipped spaces, then ``$NAS_SPACES_PATH`` dirs)."""
    found: Dict[str, Path] = {}
    shipped = resources.files("nas.search_spaces")
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            found[entry.name[:-5]] = Path(str(entry))
    for folder in filter(None, os.environ.get(SPACES_ENV, "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*.yaml")):
            if not path.name.startswith("."):  # hidden files, macOS's ._name copies
                found[path.stem] = path
    return found


def space_location(spec: str) -> Optional[Tuple[str, str]]:
    """``("", path)`` when a ``--space`` value names a file, None for a registered name
    (for settings stored independently of the working directory, :mod:`nas.config`)."""
    return None if not spec or "\n" in spec or spec in available_spaces() else ("", spec)


def load_space(spec: Union[str, os.PathLike]) -> SearchSpace:
    """Load a space by registered name, path to a ``.yaml`` file, or YAML text.

    Raises:
        SpaceError: the file is malformed (message ``FILE:LINE:COL: ...``).
        FileNotFoundError: no such space or file (the message lists the registered names).
    """
    text_spec = str(spec)
    if isinstance(spec, str) and "\n" in spec:
        return parse_space(spec, "<string>", "<string>")
    registry = available_spaces()
    if isinstance(spec, str) and text_spec in registry:
        path = registry[text_spec]
    else:
        path = Path(text_spec)
        if not path.is_file():
            raise FileNotFoundError(
                f"no space named '{text_spec}' and no such file; registered spaces: "
                f"{', '.join(registry)}"
            )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpaceError(str(path), 1, 1, f"not UTF-8 text ({e.reason})") from None
    return parse_space(text, path.stem, str(path))


def parse_space(text: str, name: str, file: str) -> SearchSpace:
    """Parse space YAML ``text``; ``file`` is used in error messages."""
    loc = _Loc(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        if e.context and e.context_mark and e.problem_mark:
            # e.g. an unclosed '[' is noticed lines later: say where it began.
            problem += f" ({e.context} on line {e.context_mark.line + 1})"
        raise SpaceError(file, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                         f"invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise SpaceError(file, 1, 1, f"invalid YAML: {e}") from None
    if root is None:
        raise SpaceError(file, 1, 1, "empty space file: expected keys input, stem, stages, head")
    top = _mapping(loc, root, "the space file", _TOP_KEYS, required=_TOP_KEYS[1:])

    description = ""
    if "description" in top:
        description = _scalar(loc, top["description"][1], "description")
    input_spec = _input(loc, top["input"])
    stem_node = top["stem"][1]
    stem = _row(loc, stem_node, ("stem",))
    kernels = stem.alternatives["kernels"]
    if len(kernels) != 1 or len(kernels[0]) != 1:
        raise loc.error(stem_node, "the stem takes one fixed kernel size, e.g. stem_k3_c16")
    patches = stem.alternatives["patch"]
    if (0 in patches and len(patches) > 1) or (patches != (0,) and (
            stem.where["kernels"][1] != "stem" or stem.where["stride"][1] != "stem")):
        raise loc.error(stem_node, "a patch stem (p) has kernel = stride = patch size: leave "
                                   "out k and s, and do not mix it with a plain stem",
                        stem.where["patch"][0])

    _, stages_node = top["stages"]
    if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
        raise loc.error(stages_node, "stages must be a non-empty list of stages")
    stages: List[Tuple[RowSpace, ...]] = []
    row_nodes = {"stem": stem_node}
    width_alts = set(stem.alternatives["out"])
    for s, stage_node in enumerate(stages_node.value):
        if not isinstance(stage_node, yaml.SequenceNode):
            raise loc.error(stage_node, f"stage {s} must be a list of block rows, e.g. "
                                        "[ir_r1_k3_e6_c24]")
        if not stage_node.value:
            raise loc.error(stage_node, f"stage {s} is empty: a stage needs at least one row")
        rows = []
        for r, row_node in enumerate(stage_node.value):
            row_nodes[f"s{s}.b{r}"] = row_node
            row = _row(loc, row_node, ROW_KINDS)
            _check_row(loc, row_node, row, width_alts)
            if row.alternatives["out"] != (SAME,):
                outs = set(row.alternatives["out"])
                width_alts = outs | width_alts if 0 in row.alternatives["repeats"] else outs
            rows.append(row)
        stages.append(tuple(rows))
    head = _row(loc, top["head"][1], ("head",))
    if 0 in head.alternatives["out"] and len(head.alternatives["out"]) > 1:
        raise loc.error(top["head"][1], "the head's conv before pooling is there or not: c0 "
                                        "cannot be one of its alternatives",
                        head.where["out"][0])
    space = SearchSpace(name, description, input_spec, stem, stages, head, source=file, text=text)
    problem = space.size_problem(input_spec.resolution)
    if problem:
        where, why = problem
        raise loc.error(row_nodes[where], f"{why} at the target input "
                                          f"{input_spec.resolution}x{input_spec.resolution}")
    return space


def _mapping(loc: _Loc, node, what: str, allowed, required=()) -> Dict[str, tuple]:
    if not isinstance(node, yaml.MappingNode):
        raise loc.error(node, f"{what} must be a mapping with keys {', '.join(allowed)}")
    out: Dict[str, tuple] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in allowed:
            raise loc.error(key_node, f"unknown key '{key}' in {what}: expected "
                                      f"{', '.join(allowed)}")
        if key in out:
            raise loc.error(key_node, f"duplicate key '{key}' in {what} (first on line "
                                      f"{out[key][0].start_mark.line + 1})")
        out[key] = (key_node, value_node)
    missing = [k for k in required if k not in out]
    if missing:
        raise loc.error(node, f"{what} is missing {', '.join(repr(k) for k in missing)}")
    return out


def _scalar(loc: _Loc, node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise loc.error(node, f"{what} must be a string")
    return node.value


def _input(loc: _Loc, pair) -> InputSpec:
    key_node, node = pair
    fields = _mapping(loc, node, "input", _INPUT_KEYS, required=_INPUT_KEYS)
    values = {}
    for key in _INPUT_KEYS:
        value_node = fields[key][1]
        text = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        limit = INPUT_LIMITS[key]
        if (not isinstance(text, str) or not text.isdigit() or not 1 <= int(text) <= limit
                or value_node.tag != "tag:yaml.org,2002:int"):
            raise loc.error(value_node, f"input {key} must be a positive whole number up to "
                                        f"{limit:,}, got '{text if text is not None else '...'}'")
        values[key] = int(text)
    return InputSpec(**values)


def _row(loc: _Loc, node, kinds) -> RowSpace:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise loc.error(node, "expected a block string such as ir_r1_k3.5_e6_c40")
    try:
        parsed = parse_block(node.value, kinds)
    except GrammarError as e:
        raise loc.error(node, e.message, e.offset) from None
    return RowSpace(parsed.kind, dict(parsed.values), dict(parsed.where))


def _check_row(loc: _Loc, node, row: RowSpace, in_widths) -> None:
    """Rules that span tokens: split arity and non-empty channel groups for every combination."""
    alts = row.alternatives
    where = row.where
    kind = kind_of(row.kind)
    if 0 in alts["repeats"] and (alts.get("stride", (1,)) != (1,) or kind.stride_each > 1):
        raise loc.error(node, "a stride-2 row cannot be optional (r0): the network's "
                              "reductions would change", where["repeats"][0])
    if row.kind == "uir" and alts["stride"] != (1,) and () in alts["kernels"] and \
            () in alts["start"]:
        raise loc.error(node, "a stride-2 uir row needs a depthwise conv: a0 and k0 cannot "
                              "both be alternatives", where["kernels"][0])
    if any(alts.get("se", (0,))) and any(alts.get("hse", (0,))):
        raise loc.error(node, "a block has one SE: se and hse cannot both be non-zero",
                        where["hse"][0])
    if kind.part and kind.part(min(in_widths), max(alts["div"])) < 1:
        raise loc.error(node, f"PConv over {min(in_widths)} channels with d{max(alts['div'])} "
                              "convolves none", where["div"][0])
    if "split" not in alts:
        return
    x_offset, x_token = where["split"]
    kernel_sets = list(alts["kernels"]) + list(alts.get("start", ()))
    for split in alts["split"]:
        if isinstance(split, str):
            continue
        for kernels in kernel_sets:
            if len(kernels) > 1 and len(kernels) != len(split):
                raise loc.error(node, f"split {format_split(split)} has {len(split)} parts but "
                                      f"kernel set {'.'.join(map(str, kernels))} has "
                                      f"{len(kernels)}", x_offset)
    # Every width the depthwise conv can see: first repeat from the previous row's
    # widths, later repeats from this row's own widths.
    widths = set(in_widths)
    if max(alts["repeats"]) > 1 and alts["out"] != (SAME,):
        widths |= set(alts["out"])
    outs = widths if alts["out"] == (SAME,) else set(alts["out"])
    mids = {kind.mid_width(w, o, e) for w in widths for o in outs
            for e in alts.get("expansion", (1.0,))}
    if "start" in alts:  # uir: the first depthwise conv runs on the input widths
        _check_splits(loc, node, row, sorted(widths), alts["start"])
    _check_splits(loc, node, row, sorted(mids), alts["kernels"])


def _check_splits(loc: _Loc, node, row: RowSpace, mids, kernel_sets) -> None:
    alts, where = row.alternatives, row.where
    x_offset, x_token = where["split"]
    for mid in mids:
        for kernels in kernel_sets:
            for split in alts["split"]:
                if len(kernels) <= 1:
                    continue
                sizes = split_channels(mid, len(kernels), split)
                if min(sizes) < 1:
                    at = x_offset if x_token != row.kind else where["kernels"][0]
                    raise loc.error(
                        node, f"splitting {mid} channels over kernels "
                              f"{'.'.join(map(str, kernels))} with '{format_split(split)}' "
                              f"leaves a group empty ({'+'.join(map(str, sizes))})", at)
