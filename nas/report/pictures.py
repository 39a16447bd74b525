"""The report's pictures, each a :class:`~nas.report.scene.Scene`: an architecture, the front,
the search's history and the decisions' importance.

The architecture picture draws one bar per block row: its length is the row's expanded
(depthwise) width on a scale shared by every picture it is compared with, and it is cut
into the MixConv's kernel groups in order (smallest kernel first), each as wide as its
channel share and coloured by kernel size. Beside it: repeats, stride, expansion, SE ratio,
grouped 1x1 convs, output width and activation.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from ..arch import Architecture
from ..blocks import kind_of
from ..search.objective import PRESETS
from .analysis import History, Importance
from .scene import Axis, Scene, nice_ticks, viridis
from .table import fmt

__all__ = ["KERNEL_COLOURS", "arch_picture", "kernel_legend", "widest_row", "front_plot",
           "history_plot", "importance_plot"]

#: One colour per kernel size, light to dark as the kernel grows (ColorBrewer "Blues").
KERNEL_COLOURS = {3: "#c6dbef", 5: "#6baed6", 7: "#2171b5", 9: "#08519c", 11: "#08306b"}
_DARK_TEXT = {3, 5}  # kernels whose colour is light enough for dark text
PRESET_NAMES = {"mixnet_s": "MixNet-S", "mixnet_m": "MixNet-M"}
_ROW, _GAP, _LABEL, _BAR = 15, 3, 58, 190


def _rows(arch: Architecture):
    """Per block row present in ``arch``: (stage, row, block, widest layer of the row). An
    absent optional row (``r0``) has no layer and no line in the picture."""
    widest: Dict[tuple, Any] = {}
    for layer in arch.layers():
        key = (layer.stage, layer.row)
        if key not in widest or layer.mid_ch > widest[key].mid_ch:
            widest[key] = layer
    return [(s, r, block, widest[(s, r)]) for s, rows in enumerate(arch.stages)
            for r, block in enumerate(rows) if (s, r) in widest]


def _bar_length(channels: int, full: int) -> float:
    """Log scale from 8 channels (the width divisor) to ``full``: every doubling of the
    width adds the same length, so a 16-channel row stays visible beside a 1,440-channel
    one, and the channel shares inside a bar stay linear."""
    span = math.log2(max(full, 16) / 4)
    return _BAR * max(math.log2(max(channels, 4) / 4), 0.5) / span


def widest_row(arch: Architecture) -> int:
    """The largest expanded width of ``arch``: the scale of its picture."""
    return max(layer.mid_ch for layer in arch.layers())


def arch_picture(arch: Architecture, scale_channels: Optional[int] = None,
                 title: str = "", legend: bool = True) -> Scene:
    """The architecture as a picture, about 420 px wide.

    Args:
        arch: the network.
        scale_channels: the expanded width drawn at full bar length; pass the largest
            :func:`widest_row` of the architectures shown together, so equal widths have
            equal lengths in every picture (default: this one's own).
        title: a first line (e.g. the trial and its numbers).
        legend: draw the kernel colours and the scale below (off where several pictures
            share one :func:`kernel_legend`).
    """
    rows = _rows(arch)
    full = scale_channels or widest_row(arch)
    top = 18 if title else 0
    height = top + (len(rows) + 2) * (_ROW + _GAP) + (36 if legend else 0)
    scene = Scene(_LABEL + _BAR + 172, height, label=f"architecture {title}".strip(),
                  cls="arch")
    if title:
        scene.text(0, 12, title, size=11, bold=True)
    y = top
    scene.text(0, y + 11, "stem", size=10, fill="#555")
    scene.text(_LABEL, y + 11, f"{arch.stem.kernel}x{arch.stem.kernel} conv, stride "
               f"{arch.stem.stride}, {arch.stem.out} ch, {arch.stem.act}", size=10, fill="#555")
    y += _ROW + _GAP
    for s, r, block, layer in rows:
        label = f"s{s}.b{r}" + (" ↓" if block.stride > 1 else "")
        scene.text(0, y + 11, label, size=10, fill="#333",
                   tip=f"stage {s}, row {r}" + (f": stride {block.stride}"
                                                if block.stride > 1 else ""))
        length = _bar_length(layer.mid_ch, full)
        x = _LABEL
        for k, channels in zip(block.kernels, layer.dw_splits):
            w = length * channels / layer.mid_ch
            colour = KERNEL_COLOURS.get(k, "#999999")
            scene.rect(x, y, w, _ROW, fill=colour, stroke="#fff", width=0.6,
                       tip=f"{k}x{k} depthwise, {channels} of {layer.mid_ch} channels")
            if w >= 20:
                scene.text(x + w / 2, y + 11, f"k{k}", size=9, anchor="middle",
                           fill="#08306b" if k in _DARK_TEXT else "#fff")
            x += w
        notes = [f"×{block.repeats}",
                 f"e{block.expansion:g}" if kind_of(block.kind).mid == "expand" else "dw",
                 f"se{block.se:g}" if block.se else "", f"c{block.out}",
                 block.act, f"a{block.exp_groups}" if block.exp_groups > 1 else "",
                 f"p{block.proj_groups}" if block.proj_groups > 1 else ""]
        detail = (f"{block.repeats} block(s) {block.kind}, {layer.in_ch}→{layer.mid_ch}→"
                  f"{block.out} channels, kernels {'.'.join(map(str, block.kernels))} split "
                  f"{'+'.join(map(str, layer.dw_splits))}, SE "
                  f"{'%g of the input (%d ch)' % (block.se, layer.se_ch) if block.se else 'off'}")
        scene.text(_LABEL + _BAR + 6, y + 11, " ".join(n for n in notes if n), size=10,
                   fill="#222", tip=detail)
        y += _ROW + _GAP
    scene.text(0, y + 11, "head", size=10, fill="#555")
    scene.text(_LABEL, y + 11, f"1x1 conv to {arch.head.out} ch, {arch.head.act}, pool, "
               f"linear to {arch.input.classes}", size=10, fill="#555")
    if legend:
        _legend(scene, y + _ROW + _GAP + 4, full)
    return scene


def _legend(scene: Scene, y: float, full: int) -> None:
    x = _LABEL
    for k, colour in KERNEL_COLOURS.items():
        scene.rect(x, y, 12, 10, fill=colour)
        scene.text(x + 15, y + 9, f"{k}x{k}", size=9, fill="#555")
        x += 46
    scene.text(_LABEL, y + 24, f"bar length: expanded width on a log scale (each doubling "
               f"+{_BAR / math.log2(max(full, 16) / 4):.0f} px, full bar {full} ch)", size=9,
               fill="#555")


def kernel_legend(full: int) -> Scene:
    """The kernel colours and the bar scale of pictures drawn with ``scale_channels=full``."""
    scene = Scene(_LABEL + _BAR + 172, 32, label="kernel colours", cls="legend")
    _legend(scene, 2, full)
    return scene


# ------------------------------------------------------------------ the front
_W, _H = 900, 440
_M = {"left": 62, "right": 110, "top": 40, "bottom": 46}


def _frame(scene: Scene, xa: Axis, ya: Axis, xlabel: str, ylabel: str, xfmt, yfmt) -> None:
    """Grid, ticks and axis labels."""
    left, right = _M["left"], scene.width - _M["right"]
    top, bottom = _M["top"], scene.height - _M["bottom"]
    for v in nice_ticks(xa.lo, xa.hi, 6):
        x = xa(v)
        scene.line([(x, top), (x, bottom)], stroke="#e4e4e4")
        scene.text(x, bottom + 15, xfmt(v), size=10, anchor="middle", fill="#444")
    for v in nice_ticks(ya.lo, ya.hi, 5):
        y = ya(v)
        scene.line([(left, y), (right, y)], stroke="#e4e4e4")
        scene.text(left - 6, y + 4, yfmt(v), size=10, anchor="end", fill="#444")
    scene.rect(left, top, right - left, bottom - top, stroke="#888")
    scene.text((left + right) / 2, scene.height - 8, xlabel, size=11, anchor="middle")
    scene.text(14, (top + bottom) / 2, ylabel, size=11, anchor="middle", rotate=-90)


def _tip(row: Dict[str, Any], summary: str) -> str:
    # accuracy, FLOPs, latency and reward of a feasible row are checked numbers
    # (nas.search.results); params is not, so it goes through fmt
    return (f"trial {row['trial']}: {100 * row['accuracy']:.2f}% accuracy, "
            f"{row['flops'] / 1e6:.1f}M FLOPs, {fmt(row.get('params'), 'mega2')} params, "
            f"{row['latency_ms']:.1f} ms, reward {row['reward']:.4f}\n{summary}")


def front_plot(feasible: List[Dict[str, Any]], front: List[Dict[str, Any]], budget: int,
               picks: Dict[str, Dict[str, Any]], summaries: Dict[int, str],
               title: str = "") -> Scene:
    """Accuracy against FLOPs: every feasible trial faint, the front coloured by latency
    (viridis), the budget line, MixNet-S/M when the study tried them, the recommendations
    labelled. Each point's tooltip holds its numbers and architecture summary; a front point
    links to its row (``#trial-N``), any other to its row in the table of all trials."""
    scene = Scene(_W, _H, label="accuracy against FLOPs", cls="chart front")
    if title:
        scene.text(_M["left"], 16, title, size=12, bold=True)
    xs = [r["flops"] / 1e6 for r in feasible] + [budget / 1e6]
    xa = Axis.around(xs, _M["left"], _W - _M["right"])
    ya = Axis.around([100 * r["accuracy"] for r in feasible], _H - _M["bottom"], _M["top"])
    _frame(scene, xa, ya, "FLOPs at the target input (millions, multiply-accumulates)",
           "validation accuracy (%)", lambda v: f"{v:g}", lambda v: f"{v:g}")
    on_front = {r["trial"] for r in front}
    lat = [r["latency_ms"] for r in front]
    lo, hi = (min(lat), max(lat)) if lat else (0.0, 1.0)
    bx = xa(budget / 1e6)
    scene.line([(bx, _M["top"]), (bx, _H - _M["bottom"])], stroke="#d62728", width=1.6,
               dash="6 4", tip=f"budget {budget / 1e6:g}M FLOPs")
    scene.text(bx - 4, _H - _M["bottom"] - 6, f"budget {budget / 1e6:g}M", size=10,
               anchor="end", fill="#d62728")
    for row in feasible:
        if row["trial"] in on_front:
            continue
        scene.circle(xa(row["flops"] / 1e6), ya(100 * row["accuracy"]), 3.2, fill="#888",
                     opacity=0.4, tip=_tip(row, summaries.get(row["trial"], "")),
                     link=f"#row-{row['trial']}", cls="pt",
                     data={"trial": str(row["trial"])})
    for row in front:
        t = (row["latency_ms"] - lo) / (hi - lo) if hi > lo else 0.5
        scene.circle(xa(row["flops"] / 1e6), ya(100 * row["accuracy"]), 6, fill=viridis(t),
                     stroke="#000", width=0.8, tip=_tip(row, summaries.get(row["trial"], "")),
                     link=f"#trial-{row['trial']}", cls="pt fr",
                     data={"trial": str(row["trial"])})
    for row in feasible:
        if row.get("preset") in PRESETS:
            x, y = xa(row["flops"] / 1e6), ya(100 * row["accuracy"])
            scene.text(x + 8, y + 14, PRESET_NAMES[row["preset"]], size=10, fill="#b35900")
    for name, row in picks.items():
        x, y = xa(row["flops"] / 1e6), ya(100 * row["accuracy"])
        scene.text(x, y - 10, name, size=10, anchor="middle", bold=True)
    # colour bar (latency of the front) in the right margin; the legend above the plot
    cx, top, bottom = _W - _M["right"] + 16, _M["top"] + 10, _H - _M["bottom"] - 10
    steps = 24
    for i in range(steps):
        y = bottom - (i + 1) * (bottom - top) / steps
        scene.rect(cx, y, 14, (bottom - top) / steps + 0.5, fill=viridis(i / (steps - 1)))
    scene.text(cx + 18, top + 8, f"{hi:.1f}", size=10, fill="#444")
    scene.text(cx + 18, bottom, f"{lo:.1f}", size=10, fill="#444")
    scene.text(cx + 62, (top + bottom) / 2, "front latency (ms, batch 1)", size=10,
               anchor="middle", fill="#444", rotate=-90)
    ly, lx = _M["top"] - 10, _W - _M["right"]
    scene.text(lx, ly, "Pareto front (accuracy, FLOPs, latency)", size=10, anchor="end",
               fill="#444")
    scene.circle(lx - 232, ly - 4, 6, fill=viridis(0.5), stroke="#000", width=0.8)
    scene.text(lx - 322, ly, "feasible trial", size=10, fill="#444")
    scene.circle(lx - 330, ly - 4, 3.2, fill="#888", opacity=0.4)
    return scene


# ------------------------------------------------------------------ the history
def history_plot(runs: Sequence[History], budget_label: str) -> Scene:
    """Best value so far against trial number (one line per run: solid for this run,
    dashed for random search), and below it the share of trials over budget in windows."""
    scene = Scene(_W, 330, label="best value against trial number", cls="chart history")
    main = runs[0]
    values = [v for h in runs for v in h.best if v is not None]
    n = max((len(h.trials) for h in runs), default=1)
    xa = Axis(0, max(n, 1), _M["left"], _W - _M["right"])
    plot_bottom = 200
    ya = Axis.around(values or [0.0, 1.0], plot_bottom, _M["top"])
    left, right = _M["left"], _W - _M["right"]
    for v in nice_ticks(ya.lo, ya.hi, 4):
        scene.line([(left, ya(v)), (right, ya(v))], stroke="#e4e4e4")
        scene.text(left - 6, ya(v) + 4, f"{v:.3g}", size=10, anchor="end", fill="#444")
    scene.rect(left, _M["top"], right - left, plot_bottom - _M["top"], stroke="#888")
    scene.text(14, (plot_bottom + _M["top"]) / 2, main.metric, size=11, anchor="middle",
               rotate=-90)
    styles = [("#1f77b4", ""), ("#ff7f0e", "6 4")]
    for h, (colour, dash) in zip(runs, styles):
        points = [(xa(i + 1), ya(v)) for i, v in enumerate(h.best) if v is not None]
        if points:
            points.append((xa(len(h.best)), points[-1][1]))
            steps = [points[0]]
            for p in points[1:]:  # a step line: the best so far holds until it improves
                steps += [(p[0], steps[-1][1]), p]
            scene.line(steps, stroke=colour, width=2, dash=dash,
                       tip=f"{h.label}: {h.metric} {h.best[-1]:.4g} after "
                           f"{len(h.trials)} trials" if h.best[-1] is not None else h.label)
    ly = _M["top"] - 10
    x = left
    for h, (colour, dash) in zip(runs, styles):
        scene.line([(x, ly - 4), (x + 24, ly - 4)], stroke=colour, width=2, dash=dash)
        text = (f"{h.label}: {h.best[-1]:.4g}" if h.best and h.best[-1] is not None
                else h.label)
        scene.text(x + 30, ly, text, size=10, fill="#333")
        x += 30 + 7 * len(text) + 20
    # over budget, per window of trials
    top2, bottom2 = 228, 300
    window = max(5, math.ceil(n / 25))
    scene.rect(left, top2, right - left, bottom2 - top2, stroke="#888")
    for frac in (0.5, 1.0):
        y = bottom2 - frac * (bottom2 - top2)
        scene.line([(left, y), (right, y)], stroke="#e4e4e4")
        scene.text(left - 6, y + 4, f"{frac:.0%}", size=10, anchor="end", fill="#444")
    for h, (colour, dash) in zip(runs, styles):
        bars = []
        for start in range(0, len(h.over_budget), window):
            chunk = h.over_budget[start:start + window]
            share = sum(chunk) / len(chunk)
            bars.append((start, len(chunk), share))
        if h is main:
            for start, size, share in bars:
                x0, x1 = xa(start), xa(start + size)
                scene.rect(x0 + 1, bottom2 - share * (bottom2 - top2), x1 - x0 - 2,
                           share * (bottom2 - top2), fill="#d62728", opacity=0.55,
                           tip=f"trials {start}-{start + size - 1}: {share:.0%} over "
                               f"{budget_label}")
        else:
            pts = [(xa(s + size / 2), bottom2 - share * (bottom2 - top2))
                   for s, size, share in bars]
            if pts:
                scene.line(pts, stroke=colour, width=1.6, dash=dash,
                           tip=f"{h.label}: {h.over_budget_share:.0%} over budget")
    for v in nice_ticks(0, n, 6):
        scene.text(xa(v), bottom2 + 15, f"{v:g}", size=10, anchor="middle", fill="#444")
    scene.text((left + right) / 2, bottom2 + 28, "trial number", size=11, anchor="middle")
    scene.text(left, top2 - 6, f"over budget ({budget_label}), per {window} trials: this run "
               f"{main.over_budget_share:.0%}" + "".join(
                   f", {h.label} {h.over_budget_share:.0%}" for h in runs[1:]),
               size=10, fill="#333")
    return scene


# ------------------------------------------------------------------ importance
def importance_plot(result: Importance, fields: Optional[Dict[str, str]] = None,
                    top: int = 10) -> Scene:
    """Horizontal bars: the ``top`` decisions per target (accuracy, FLOPs, latency).

    Args:
        fields: decision name (``s2.b0.k``) -> its grammar field (``kernels``), shown as
            ``s2.b0 kernels``.
    """
    fields = fields or {}
    panel, gap = 290, 15
    bar_h = 14
    height = 40 + top * (bar_h + 4) + 10
    scene = Scene(3 * panel + 2 * gap, height, label="decision importance", cls="chart imp")
    for i, (target, values) in enumerate(result.values.items()):
        x0 = i * (panel + gap)
        scene.text(x0, 14, f"for {target}", size=12, bold=True)
        items = list(values.items())[:top]
        peak = max((v for _, v in items), default=0.0) or 1.0
        label_w, bar_w = 120, panel - 120 - 36
        for j, (name, value) in enumerate(items):
            y = 28 + j * (bar_h + 4)
            label = (f"{name.rsplit('.', 1)[0]} {fields[name].replace('_', ' ')}"
                     if name in fields else name)
            scene.text(x0 + label_w - 4, y + 11, label, size=10, anchor="end", fill="#333",
                       tip=name)
            scene.rect(x0 + label_w, y, bar_w * value / peak, bar_h, fill="#4c78a8",
                       tip=f"{name}: importance {value:.3f} for {target}")
            scene.text(x0 + label_w + bar_w * value / peak + 3, y + 11, f"{value:.2f}",
                       size=9, fill="#444")
    return scene
