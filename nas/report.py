"""The Pareto-front report of a search: terminal table, self-contained HTML, PNG.

``nas report RUN`` reads the run's finished trials (:func:`nas.search.open_run`), prints the
front, and writes ``RUN/report.html`` (inline SVG plot, trial table, configuration; no
network fetches) and ``RUN/pareto.png``. The plot needs matplotlib (``pip install
nas[report]``); without it the table and the HTML page (minus its plot) are still written.

Everything shown comes from the study database, which anyone may have edited: the page
escapes every value, and numbers are formatted only when they are numbers.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from .arch import Architecture
from .files import atomic_write_bytes
from .runs import SearchDir
from .search import SearchRun
from .search.objective import PRESETS
from .search.results import rejection

__all__ = ["arch_summary", "front_table", "front_json", "plot_front", "render_html",
           "write_report"]


def arch_summary(arch: Architecture) -> str:
    """Kernel sets and expansions per stage, SE marked: '1x k3 e1 | 2x k3.5 e6+se, ...'."""
    stages = []
    for rows in arch.stages:
        parts = []
        for b in rows:
            k = ".".join(map(str, b.kernels))
            parts.append(f"{b.repeats}x k{k} e{b.expansion:g}{'+se' if b.se else ''}")
        stages.append(", ".join(parts))
    return " | ".join(stages)


def _summary(row: Dict[str, Any]) -> str:
    try:
        return arch_summary(Architecture.parse(str(row.get("arch", ""))))
    except ValueError:
        return "(malformed architecture)"


def _is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value, kind: str) -> str:
    """A cell: formatted when it is a number, else the value as text (escaped later)."""
    if not _is_num(value):
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
        cells = [f"{_fmt(row.get(key), kind):>{w}}" for (key, _, kind), w in zip(COLUMNS, widths)]
        lines.append("  ".join(cells) + "  " + _summary(row))
    return "\n".join(lines)


def _plottable(rows):
    return [r for r in rows if all(_is_num(r.get(k)) for k in ("accuracy", "flops", "latency_ms"))]


def plot_front(run: SearchRun, front: List[Dict[str, Any]]):
    """A matplotlib Figure: accuracy vs FLOPs, all feasible trials faint, the front coloured
    by latency, the budget line, and MixNet-S/M when the study tried them."""
    from matplotlib.figure import Figure  # optional dependency: nas[report]

    feasible = _plottable(run.feasible)
    front = _plottable(front)
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    if feasible:
        ax.scatter([r["flops"] / 1e6 for r in feasible], [100 * r["accuracy"] for r in feasible],
                   s=18, color="0.6", alpha=0.35, label="feasible trials", zorder=1)
    if front:
        points = ax.scatter([r["flops"] / 1e6 for r in front],
                            [100 * r["accuracy"] for r in front],
                            c=[r["latency_ms"] for r in front], cmap="viridis", s=46,
                            edgecolors="black", linewidths=0.6, label="Pareto front", zorder=3)
        fig.colorbar(points, ax=ax, label="latency (ms, batch 1)")
    budget = run.config.budget / 1e6
    ax.axvline(budget, color="tab:red", linestyle="--", linewidth=1.2,
               label=f"budget {budget:g}M FLOPs")
    for row in feasible:
        if row.get("preset") in PRESETS:
            name = {"mixnet_s": "MixNet-S", "mixnet_m": "MixNet-M"}[row["preset"]]
            x, y = row["flops"] / 1e6, 100 * row["accuracy"]
            ax.scatter([x], [y], marker="*", s=180, color="tab:orange", edgecolors="black",
                       zorder=4)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set_xlabel("FLOPs at the target input (millions, multiply-accumulates)")
    ax.set_ylabel("validation accuracy from the supernet (%)")
    ax.set_title(f"{len(run.rows)} trials, {len(run.feasible)} feasible, "
                 f"{len(front)} on the front")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline in HTML: drop the XML prolog and DOCTYPE (a DTD URL the page must not name).
    return text[text.index("<svg"):]


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
td.arch{text-align:left;font-family:monospace;white-space:nowrap}
tr.front{background:#e8f4e8;font-weight:600}
.plot svg{max-width:100%;height:auto}
.note{color:#666}
"""


def render_html(run: SearchRun, front: List[Dict[str, Any]], svg: Optional[str]) -> str:
    """The report page; every value from the study or the config is escaped."""
    e = html.escape
    on_front = {r["trial"] for r in front}
    config = asdict(run.config)
    rows_html = []
    for row in sorted(run.rows, key=lambda r: r["trial"] if _is_num(r["trial"]) else -1):
        cells = "".join(f"<td>{e(_fmt(row.get(key), kind))}</td>" for key, _, kind in COLUMNS)
        status = "front" if row["trial"] in on_front else (
            "feasible" if row["feasible"] else rejection(row))
        rows_html.append(
            f'<tr class="{"front" if status == "front" else ""}">{cells}'
            f"<td>{e(status)}</td><td class=\"arch\">{e(_summary(row))}<br>"
            f"{e(str(row.get('arch', '')))}</td></tr>")
    head = "".join(f"<th>{e(title)}</th>" for _, title, _ in COLUMNS)
    config_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(json.dumps(v))}</td></tr>"
                          for k, v in config.items())
    plot = (f'<div class="plot">{svg}</div>' if svg else
            '<p class="note">The plot needs matplotlib: pip install "nas[report]", then rerun '
            "nas report.</p>")
    title = f"nas search report: {run.config.space}, budget {run.config.budget / 1e6:g}M FLOPs"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{e(title)}</h1>
<p>{len(run.rows)} finished trials, {len(run.feasible)} within budget, {len(front)} on the
Pareto front (accuracy up, FLOPs down, latency down). Run directory: {e(str(run.path))}</p>
{plot}
<h2>Trials</h2>
<table><thead><tr>{head}<th>status</th><th>architecture</th></tr></thead>
<tbody>
{chr(10).join(rows_html)}
</tbody></table>
<h2>Configuration (config.json)</h2>
<table>{config_rows}</table>
</body></html>
"""


def write_report(run: SearchRun, out_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Write ``report.html`` (and ``pareto.png`` with matplotlib) into ``out_dir`` (RUN).

    Returns:
        ``{"front", "html", "png"}``; ``png`` is None without matplotlib.
    """
    out = SearchDir(out_dir or run.path)
    front = run.front()
    svg = png = None
    try:
        fig = plot_front(run, front)
    except ImportError:
        fig = None
    if fig is not None:
        svg = _svg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        png = out.pareto_png
        atomic_write_bytes(png, buffer.getvalue())
    page = out.report_html
    atomic_write_bytes(page, render_html(run, front, svg).encode())
    return {"front": front, "html": page, "png": png}


def front_json(front: List[Dict[str, Any]]) -> str:
    """The front for scripts: one JSON list of the stored trial attributes."""
    keep = ("trial", "accuracy", "flops", "params", "proxy_flops", "latency_ms", "reward", "arch")

    def clean(v):  # strict JSON: a non-finite number becomes null
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps([{k: clean(r.get(k)) for k in keep} for r in front], allow_nan=False)

