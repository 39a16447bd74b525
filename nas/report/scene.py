"""Pictures as data: a :class:`Scene` of rectangles, lines, circles and text in pixels, drawn
either as inline SVG (the HTML page; no dependency) or as PNG through matplotlib.

Each chart of the report is built once as a scene, so the page and the PNG files show the
same picture. Every string a scene holds is escaped when written as SVG, and drawn with
mathtext off in matplotlib: text from a study is shown, never interpreted.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

__all__ = ["Scene", "viridis", "nice_ticks", "Axis"]

# matplotlib's viridis at 9 stops (its published table), interpolated linearly: the front's
# latency colour without importing matplotlib.
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
            "#addc30", "#fde725")


def viridis(t: float) -> str:
    """The colour at ``t`` in [0, 1] (clipped) as ``#rrggbb``."""
    t = min(max(t if math.isfinite(t) else 0.0, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    mix = [round(int(a[j:j + 2], 16) * (1 - (t - i)) + int(b[j:j + 2], 16) * (t - i))
           for j in (1, 3, 5)]
    return "#" + "".join(f"{v:02x}" for v in mix)


def nice_ticks(low: float, high: float, count: int = 5) -> List[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass
class Axis:
    """A linear map from data values [lo, hi] to pixels [p0, p1]."""

    lo: float
    hi: float
    p0: float
    p1: float

    @classmethod
    def around(cls, values: Sequence[float], p0: float, p1: float, pad: float = 0.05):
        finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(finite), max(finite)
        span = (hi - lo) or abs(hi) or 1.0
        return cls(lo - pad * span, hi + pad * span, p0, p1)

    def __call__(self, value: float) -> float:
        return self.p0 + (value - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


@dataclass
class _Item:
    kind: str
    geometry: Tuple[float, ...]
    style: Dict[str, object]
    text: str = ""
    tip: str = ""
    link: str = ""
    data: Dict[str, str] = field(default_factory=dict)
    cls: str = ""


class Scene:
    """A picture ``width`` x ``height`` pixels, y pointing down (as in SVG).

    Args:
        width, height: size in pixels.
        label: the picture's accessible name (``aria-label``).
        cls: CSS class of the ``<svg>`` element in the page.
    """

    def __init__(self, width: float, height: float, label: str = "", cls: str = ""):
        self.width, self.height, self.label, self.cls = width, height, label, cls
        self.items: List[_Item] = []

    # ------------------------------------------------------------------ building
    def rect(self, x, y, w, h, fill="none", stroke="none", width=1.0, tip="", link="",
             cls="", data=None, opacity=1.0):
        self.items.append(_Item("rect", (x, y, max(w, 0.0), max(h, 0.0)),
                                {"fill": fill, "stroke": stroke, "width": width,
                                 "opacity": opacity}, tip=tip, link=link, cls=cls,
                                data=data or {}))

    def line(self, points: Sequence[Tuple[float, float]], stroke="#333", width=1.0,
             dash: str = "", tip="", cls=""):
        flat = tuple(v for p in points for v in p)
        self.items.append(_Item("line", flat, {"stroke": stroke, "width": width, "dash": dash},
                                tip=tip, cls=cls))

    def circle(self, x, y, r, fill="#333", stroke="none", width=1.0, opacity=1.0, tip="",
               link="", cls="", data=None):
        self.items.append(_Item("circle", (x, y, r), {"fill": fill, "stroke": stroke,
                                                      "width": width, "opacity": opacity},
                                tip=tip, link=link, cls=cls, data=data or {}))

    def text(self, x, y, text, size=11.0, anchor="start", fill="#222", bold=False,
             rotate=0.0, tip=""):
        self.items.append(_Item("text", (x, y), {"size": size, "anchor": anchor, "fill": fill,
                                                 "bold": bold, "rotate": rotate},
                                text=str(text), tip=tip))

    # ------------------------------------------------------------------ SVG
    def svg(self, element_id: str = "") -> str:
        """Inline SVG (no XML prolog, no external references), every string escaped."""
        e = html.escape
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(self.width)} '
               f'{_n(self.height)}" width="{_n(self.width)}" height="{_n(self.height)}" '
               f'role="img" aria-label="{e(self.label)}"'
               + (f' class="{e(self.cls)}"' if self.cls else "")
               + (f' id="{e(element_id)}"' if element_id else "") + ">"]
        for item in self.items:
            out.append(_svg_item(item))
        out.append("</svg>")
        return "".join(out)

    # ------------------------------------------------------------------ PNG
    def png(self, scale: float = 2.0) -> bytes:
        """The same picture as PNG bytes, drawn by matplotlib (``nas[report]``).

        Raises:
            ImportError: without matplotlib.
        """
        from matplotlib.collections import PatchCollection
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle, Rectangle

        fig = Figure(figsize=(self.width / 100, self.height / 100), dpi=100 * scale)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.axis("off")
        circles = []  # drawn as one collection: a patch each is slow for 1,000 points
        for item in self.items:
            s = item.style
            if item.kind == "rect":
                x, y, w, h = item.geometry
                ax.add_patch(Rectangle((x, y), w, h, facecolor=_mpl(s["fill"]),
                                       edgecolor=_mpl(s["stroke"]), linewidth=s["width"] * .72,
                                       alpha=s["opacity"]))
            elif item.kind == "circle":
                x, y, r = item.geometry
                circles.append(Circle((x, y), r, facecolor=_mpl(s["fill"]),
                                      edgecolor=_mpl(s["stroke"]), linewidth=s["width"] * .72,
                                      alpha=s["opacity"]))
            elif item.kind == "line":
                xs, ys = item.geometry[0::2], item.geometry[1::2]
                ax.plot(xs, ys, color=s["stroke"], linewidth=s["width"] * .72,
                        linestyle=(0, tuple(float(v) * .72 for v in s["dash"].split()))
                        if s["dash"] else "-")
            else:
                x, y = item.geometry
                ax.text(x, y, item.text, fontsize=s["size"] * 0.72, color=s["fill"],
                        ha={"start": "left", "middle": "center", "end": "right"}[s["anchor"]],
                        va="baseline", rotation=-s["rotate"], rotation_mode="anchor",
                        fontweight="bold" if s["bold"] else "normal", parse_math=False)
        ax.add_collection(PatchCollection(circles, match_original=True, zorder=3))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()


def _n(value: float) -> str:
    """A coordinate with at most one decimal (keeps the page small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _mpl(colour: str):
    return "none" if colour == "none" else colour


def _svg_item(item: _Item) -> str:
    e = html.escape
    s = item.style
    attrs = "".join(f' data-{k}="{e(str(v))}"' for k, v in item.data.items())
    if item.cls:
        attrs += f' class="{e(item.cls)}"'
    title = f"<title>{e(item.tip)}</title>" if item.tip else ""
    if item.kind == "rect":
        x, y, w, h = item.geometry
        body = (f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"'
                + _paint(s) + attrs + (f">{title}</rect>" if title else "/>"))
    elif item.kind == "circle":
        x, y, r = item.geometry
        body = (f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}"' + _paint(s) + attrs
                + (f">{title}</circle>" if title else "/>"))
    elif item.kind == "line":
        points = " ".join(f"{_n(x)},{_n(y)}" for x, y in zip(item.geometry[0::2],
                                                            item.geometry[1::2]))
        dash = f' stroke-dasharray="{e(s["dash"])}"' if s["dash"] else ""
        body = (f'<polyline points="{points}" fill="none" stroke="{e(s["stroke"])}" '
                f'stroke-width="{_n(s["width"])}"{dash}{attrs}'
                + (f">{title}</polyline>" if title else "/>"))
    else:
        x, y = item.geometry
        rotate = f' transform="rotate({_n(s["rotate"])} {_n(x)} {_n(y)})"' if s["rotate"] else ""
        weight = ' font-weight="bold"' if s["bold"] else ""
        anchor = f' text-anchor="{s["anchor"]}"' if s["anchor"] != "start" else ""
        body = (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(s["size"])}" '
                f'fill="{e(s["fill"])}"{anchor}{weight}{rotate}>{title}{e(item.text)}</text>')
    if item.link:
        body = f'<a href="{e(item.link)}">{body}</a>'
    return body


def _paint(s) -> str:
    out = f' fill="{html.escape(str(s["fill"]))}"'
    if s["stroke"] != "none":
        out += f' stroke="{html.escape(str(s["stroke"]))}" stroke-width="{_n(s["width"])}"'
    if s.get("opacity", 1.0) != 1.0:
        out += f' opacity="{s["opacity"]:.2f}"'
    return out
