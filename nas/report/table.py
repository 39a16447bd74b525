"""The front as text: the terminal table, the JSON for scripts, and the one-line summary of
an architecture.

Everything shown comes from the study database, which anyone may have edited: numbers are
formatted only when they are numbers, and other values are cut to printable characters.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Dict, List, Optional

from ..arch import Architecture
from ..blocks import kind_of

__all__ = ["arch_summary", "front_table", "front_json", "COLUMNS", "fmt", "is_num",
           "parse_arch", "arch_of", "latency_note",
           "row_summary"]


def arch_summary(arch: Architecture) -> str:
    """Kernel sets and expansions per stage, SE marked: '1x k3 | 2x k3.5 e6+se, ...'.

    Rows other than MixNet's ``ds``/``ir`` name their kind (``uir``, ``cn``, ...); a UIB's
    optional depthwise convs read ``a3``/``k0`` as in the grammar, rows without a
    depthwise conv or an expansion (``adown``) show neither, and an absent optional row
    reads ``0x KIND``.
    """
    stages = []
    for rows in arch.stages:
        parts = []
        for b in rows:
            if not b.repeats:  # an absent optional row: its other fields are placeholders
                parts.append(f"0x {b.kind}")
                continue
            kind = kind_of(b.kind)
            words = [f"{b.repeats}x"] + ([kind.shown_name] if kind.shown_name else [])
            if "start" in kind.token_defaults:
                words.append("a" + (".".join(map(str, b.start)) or "0"))
            if any(t.field.startswith("kernels") for t in kind.tokens):
                words.append("k" + (".".join(map(str, b.kernels)) or "0"))
            if kind.expansion_shown or b.expansion != 1:
                words.append(f"e{b.expansion:g}")
            text = " ".join(words)
            parts.append(text + ("+se" if b.se else "+hse" if b.hse else ""))
        stages.append(", ".join(parts))
    return " | ".join(stages)


def parse_arch(row: Dict[str, Any]) -> Optional[Architecture]:
    """The row's architecture, or None when its string is malformed (an edited study)."""
    return arch_of(str(row.get("arch", "")))


@functools.lru_cache(maxsize=4096)
def arch_of(text: str) -> Optional[Architecture]:
    """:meth:`Architecture.parse`, or None for a malformed string; cached, because a report
    shows each string several times (tooltip, tables, picture) and parsing is its main
    cost (``arch_of.cache_clear()`` empties it)."""
    try:
        return Architecture.parse(text)
    except ValueError:
        return None


def row_summary(row: Dict[str, Any]) -> str:
    arch = parse_arch(row)
    return arch_summary(arch) if arch else "(malformed architecture)"


def is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, kind: str) -> str:
    """A cell: formatted when it is a number, else the value as text (escaped later)."""
    if not is_num(value):
        # Printable characters only: a study value must not drive the terminal.
        return "" if value is None else "".join(
            c if c.isprintable() else "?" for c in str(value))[:80]
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "mega":
        return f"{value / 1e6:.1f}M"
    if kind == "mega2":
        return f"{value / 1e6:.2f}M"
    if kind == "ms":
        return f"{value:.1f}"
    if kind == "reward":
        return f"{value:.4f}"
    return str(value)


COLUMNS = (("trial", "trial", "int"), ("accuracy", "acc", "pct"), ("flops", "FLOPs", "mega"),
           ("params", "params", "mega2"), ("latency_ms", "ms", "ms"),
           ("reward", "reward", "reward"))


def front_table(front: List[Dict[str, Any]]) -> str:
    """The front as aligned text: trial, accuracy, FLOPs, params, latency, reward, arch."""
    widths = (5, 7, 8, 7, 6, 8)
    lines = ["  ".join(f"{title:>{w}}" for (_, title, _), w in zip(COLUMNS, widths)) + "  arch"]
    for row in front:
        cells = [f"{fmt(row.get(key), kind):>{w}}" for (key, _, kind), w in zip(COLUMNS, widths)]
        mark = " (*)" if row.get("caveat") else ""
        lines.append("  ".join(cells) + "  " + row_summary(row) + mark)
    if any(row.get("caveat") for row in front):
        lines.append("(*) the estimator flagged this accuracy: see the trial's 'caveat' in "
                     "trials.csv")
    return "\n".join(lines)


def latency_note(rows: List[Dict[str, Any]]) -> str:
    """Which runtime gave the latencies of ``rows`` (feasible trials), in words: e.g.
    ``latency: ms at batch 1, measured in onnxruntime-int8`` (several, with counts, when a
    study mixes them)."""
    counts: Dict[str, int] = {}
    for row in rows:
        backend = str(row.get("latency_backend") or "unrecorded")[:40]
        backend = "".join(c if c.isprintable() else "?" for c in backend)
        source = {"table": "predicted by a table for", "measured": "measured in"}.get(
            row.get("latency_source"), "from")
        key = f"{source} {backend}"
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return ""
    if len(counts) == 1:
        return f"latency: ms at batch 1, the space's target input, {next(iter(counts))}"
    return ("latency: ms at batch 1, the space's target input, "
            + "; ".join(f"{k} ({n} trials)" for k, n in sorted(counts.items())))


def front_json(front: List[Dict[str, Any]]) -> str:
    """The front for scripts: one JSON list of the stored trial attributes."""
    keep = ("trial", "accuracy", "flops", "params", "proxy_flops", "latency_ms",
            "latency_backend", "latency_source", "reward", "caveat", "arch")

    def clean(v):  # strict JSON: a non-finite number becomes null
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps([{k: clean(r.get(k)) for k in keep} for r in front], allow_nan=False)

