"""``RUN/report.html``: one self-contained page, and the files written beside it.

The page holds, in order: what to pick (the lightest, the most accurate and the knee of
the front, each with its ``nas export`` command), the front plot, the front's members with a
picture of each architecture, how the search went (best reward or hypervolume against trial
number, random search's curve when there is one, the share of trials over budget), what
mattered (decision importance), every trial, and the configuration.

It fetches nothing: pictures are inline SVG, and a Content-Security-Policy forbids every
fetch; its one inline script is allowed by its SHA-256 hash, not by 'unsafe-inline'. The
script only adds to what is there: a tooltip with a point's numbers and picture, the
selection of a clicked point's row, copy buttons. Without JavaScript every number, picture
and command is still on the page, a point's tooltip is the browser's own, and a click on a
point still jumps to its row and highlights it (CSS ``:target``). Every value from the
study or the configuration is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..arch import Architecture
from ..config import Settings, a_path, setting
from ..errors import RunError
from ..files import atomic_write_bytes, shell_path
from ..runs import SearchDir
from ..search.results import SearchRun, rejection, study_url
from ..space import load_space
from .analysis import Importance, baseline_run, histories, importances, recommendations
from .pictures import (
    arch_picture,
    front_plot,
    history_plot,
    importance_plot,
    kernel_legend,
    widest_row,
)
from .table import COLUMNS, fmt, front_table, is_num, latency_note, parse_arch, row_summary

__all__ = ["render_html", "write_report", "write_trial_picture", "export_command",
           "dashboard_command", "Report", "TrialPicture", "search_lines", "ReportConfig"]

@dataclass
class ReportConfig(Settings):
    """What ``nas report`` writes or prints: the whole report, the front as JSON, or one
    trial's picture; and the random-search run its history is compared with."""

    json: bool = setting(False, exclusive="what", help="print the front as JSON (nothing "
                                                       "else, no files written)")
    trial: Optional[int] = setting(None, metavar="N", exclusive="what",
                                   help="draw trial N's architecture alone: RUN/trial-N.svg "
                                        "(and .png)")
    baseline: Optional[str] = setting(None, path=a_path, metavar="RUN",
                                      help="a random-search run to compare the history with "
                                           "(none: RUN-random when it exists)")


_NO_MATPLOTLIB = 'pip install "nas[report]" for matplotlib'


@dataclass
class Report:
    """What :func:`write_report` wrote: the front it drew, ``report.html``, ``pareto.png``
    (None without matplotlib), the random-search run it compared with, and how long it
    took."""

    front: List[Dict[str, Any]]
    html: Path
    png: Optional[Path]
    baseline: Optional[SearchRun]
    seconds: float

    def lines(self, run: SearchRun) -> List[str]:
        """What ``nas report RUN`` prints: the trials, the front, the files, what next."""
        config = run.config
        latency = f" and {config.latency_budget_ms:g} ms" if config.latency_budget_ms else ""
        lines = [f"{run.path}: {len(run.rows)} finished trials, {len(run.feasible)} within "
                 f"budget ({config.budget / 1e6:g}M FLOPs{latency})"]
        if self.front:
            lines += ["Pareto front (accuracy up, FLOPs down, latency down):",
                      front_table(self.front), latency_note(run.feasible)]
        else:
            lines.append("No trial is feasible yet: the front is empty.")
        lines.append(f"report: {self.html} ({self.seconds:.1f} s)"
                     + (f", compared with random search in {self.baseline.path}"
                        if self.baseline else ""))
        lines.append(f"plot:   {self.png}" if self.png else
                     f"plot:   not drawn ({_NO_MATPLOTLIB})")
        if self.front:
            lines.append(f"export: nas export {shell_path(run.path)} --best -o "
                         f"{shell_path(run.dir.export)}")
        lines.append(f"study:  {dashboard_command(run)}")
        return lines


def search_lines(result, config, out) -> List[str]:
    """What ``nas search`` prints when it ends: the trials, the front, the pick and what to
    run next (``result``: :class:`nas.search.SearchResult`; ``config``: the search's
    settings; ``out``: its run directory)."""
    rejected = ", ".join(f"{n} over the {'FLOPs' if why == 'flops' else why} budget"
                         for why, n in sorted(result.rejected.items()))
    lines = [f"\n{result.trials} trials, {result.feasible} within budget"
             + (f" ({rejected})" if rejected else "")
             + f" ({result.seconds / 60:.1f} min this run)."]
    if not result.front:
        return lines + [f"No trial is feasible: none fits {config.budget:,} FLOPs"
                        + (f" and {config.latency_budget_ms:g} ms" if config.latency_budget_ms
                           else "") + ". Raise the budget or run more trials."]
    best, run = result.best, SearchDir(out)
    lines += ["Pareto front (accuracy up, FLOPs down, latency down):",
              front_table(result.front), latency_note(result.front)]
    if "standalone_accuracy" in best:
        lines.append(f"\nre-ranking winner: trial {best['trial']} "
                     f"({best['standalone_accuracy']:.2%} standalone, estimate "
                     f"{best['accuracy']:.2%}, {best['flops'] / 1e6:.1f}M FLOPs, "
                     f"{best['latency_ms']:.1f} ms)")
    else:
        lines.append(f"\nbest reward: trial {best['trial']} ({best['accuracy']:.2%}, "
                     f"{best['flops'] / 1e6:.1f}M FLOPs, {best['latency_ms']:.1f} ms)")
    if best.get("caveat"):
        lines.append(f"caveat:     {best['caveat']}")
    lines += [f"all trials: {run.trials_csv}   study: {result.study}",
              f"report:     nas report {shell_path(out)}",
              f"export it:  nas export {shell_path(out)} --best -o {shell_path(run.export)}"]
    if result.feasible > 1 and not run.rerank_json.exists():
        # measured: the supernet ranks a budget band at Kendall tau ~0.2 against standalone
        # training (experiments/README.md), so the pick is worth checking before retraining
        lines += [f"check it:   nas rerank {shell_path(out)} --top 3",
                  "            (the estimate ranks roughly: this trains the 3 best standalone, "
                  "2 seeds each, and --best then means the winner)"]
    return lines


@dataclass
class TrialPicture:
    """What :func:`write_trial_picture` wrote (``png``: None without matplotlib)."""

    trial: int
    svg: Path
    png: Optional[Path]
    row: Dict[str, Any]

    def line(self) -> str:
        return (f"trial {self.trial}: {self.svg}"
                + (f"  {self.png}" if self.png else f"  (no PNG: {_NO_MATPLOTLIB})"))

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1232px;padding:0 12px;
color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f4f4f4}
td.l,th.l{text-align:left}
code{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere;
word-break:break-all}
details code{display:block;margin-top:4px;color:#444}
tr.front{background:#e8f4e8}
tr:target,tr.selected{background:#fff3b0;outline:2px solid #e0a800}
svg{max-width:100%;height:auto}
svg.arch{display:block}
svg .pt{cursor:pointer}
svg .pt:hover{stroke:#d62728;stroke-width:2}
.note{color:#666}
.picks{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:12px}
.pick{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:0}
.pick h3{margin:0 0 4px;font-size:14px}
.badge{display:inline-block;background:#2171b5;color:#fff;border-radius:8px;padding:0 6px;
margin:1px;font-size:11px;white-space:nowrap}
.cmd{display:flex;gap:6px;align-items:flex-start}
.cmd button{font-size:11px;flex:none}
#tip{position:fixed;z-index:10;max-width:460px;background:#fff;border:1px solid #888;
border-radius:4px;padding:6px 8px;font-size:12px;white-space:pre-wrap;pointer-events:none;
box-shadow:0 2px 8px rgba(0,0,0,.25)}
"""

# Adds to the static page, never replaces it (see the module docstring). Values are moved
# between elements with textContent and cloneNode only: no markup is built from strings.
_SCRIPT = """
(function () {
  var tip = document.getElementById("tip");
  var points = document.querySelectorAll("svg .pt");
  for (var i = 0; i < points.length; i++) {
    var title = points[i].querySelector("title");
    if (title) { points[i].setAttribute("data-tip", title.textContent); title.remove(); }
  }
  function place(e) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + w > window.innerWidth - 4) { x = Math.max(4, e.clientX - w - 14); }
    if (y + h > window.innerHeight - 4) { y = Math.max(4, e.clientY - h - 14); }
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  document.addEventListener("mouseover", function (e) {
    var p = e.target.closest && e.target.closest(".pt");
    if (!p) { tip.hidden = true; return; }
    tip.textContent = p.getAttribute("data-tip");
    var row = document.getElementById("trial-" + p.getAttribute("data-trial"));
    var pic = row && row.querySelector("svg.arch");
    if (pic) { tip.appendChild(pic.cloneNode(true)); }
    tip.hidden = false; place(e);
  });
  document.addEventListener("mousemove", function (e) { if (!tip.hidden) { place(e); } });
  function select(id) {
    var old = document.querySelectorAll("tr.selected");
    for (var i = 0; i < old.length; i++) { old[i].classList.remove("selected"); }
    var row = document.getElementById(id);
    if (row) { row.classList.add("selected"); }
  }
  document.addEventListener("click", function (e) {
    var p = e.target.closest && e.target.closest(".pt");
    if (!p) { return; }
    var n = p.getAttribute("data-trial");
    select(document.getElementById("trial-" + n) ? "trial-" + n : "row-" + n);
  });
  var codes = document.querySelectorAll(".cmd code");
  for (var j = 0; j < codes.length; j++) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = "copy";
    b.addEventListener("click", function (code, button) {
      return function () {
        navigator.clipboard.writeText(code.textContent).then(
          function () { button.textContent = "copied"; });
      };
    }(codes[j], b));
    codes[j].parentNode.appendChild(b);
  }
})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       f"script-src 'sha256-{_SCRIPT_HASH}'")


def pick_noise(picks: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """How far apart two picks' accuracies must be to tell them apart, in words: each is
    scored on ``val_images`` validation images, so one accuracy ``p`` carries a 95% binomial
    interval of ±1.96 sqrt(p (1 - p) / n) (normal approximation); None when the picks'
    accuracies were not counted on images (a predictor's)."""
    best = picks.get("most accurate")
    n = _count((best or {}).get("val_images"), 1)
    if not best or not n or best.get("accuracy") is None:
        return None
    p = float(best["accuracy"])
    half = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / n)
    close = sorted(name for name, row in picks.items() if name != "most accurate"
                   and row["trial"] != best["trial"] and p - float(row["accuracy"]) < half)
    words = (f"Each accuracy is the supernet's on {n:,} validation images: at "
             f"{100 * p:.1f}% that is ±{100 * half:.1f} points (95% interval), and picks "
             "closer than that are not told apart")
    if close:
        names = [f"the {name}" for name in ["most accurate", *close]]
        words += f" (here {', '.join(names[:-1])} and {names[-1]})"
    return words + "."


def chance_note(classes: Any) -> str:
    """`` (10 classes: a uniform guess scores 10.0%)``, the floor an accuracy is read
    against; empty when the trials did not record their classes (a predictor's) or the
    study holds something else there (an edited one)."""
    n = _count(classes, 2)
    return f" ({n} classes: a uniform guess scores {100 / n:.1f}%)" if n else ""


def _count(value: Any, least: int) -> Optional[int]:
    """A count read from the study (an integer of at least ``least``; a whole float, as a
    table may give it back), else None."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    return None


def export_command(run: SearchRun, trial: int) -> str:
    """``nas export RUN --trial N -o RUN/export-N``, quoted for a POSIX shell."""
    out = run.dir.trial_export(trial)
    return (f"nas export {shlex.quote(str(run.path))} --trial {int(trial)} "
            f"-o {shlex.quote(str(out))}")


def dashboard_command(run: SearchRun) -> str:
    """The optuna-dashboard command that opens the run's study (a password is hidden)."""
    url = study_url(run.config, run.dir)
    if url.startswith("journal:"):
        url = url[len("journal:"):]
    elif "://" in url and "@" in url:
        from sqlalchemy.engine import make_url

        url = make_url(url).render_as_string(hide_password=True)
    return f"optuna-dashboard {shlex.quote(url)}"


def _space_fields(run: SearchRun) -> Dict[str, str]:
    """Decision name -> its grammar field, when the run's space can still be loaded."""
    try:
        return {d.name: d.field for d in load_space(run.config.space).decisions}
    except (ValueError, OSError):
        return {}


def _cells(row: Dict[str, Any]) -> str:
    return "".join(f"<td>{html.escape(fmt(row.get(key), kind))}</td>" for key, _, kind in COLUMNS)


def _arch_details(row: Dict[str, Any]) -> str:
    e = html.escape
    # over-budget rows are many and never picked: their string alone, without a summary
    # (each summary parses the string, the report's main cost in a 1,000-trial study)
    label = row_summary(row) if row["feasible"] or row.get("malformed") else "architecture"
    return (f"<details><summary>{e(label)}</summary>"
            f"<code>{e(str(row.get('arch', '')))}</code></details>")


def _cmd(text: str) -> str:
    return f'<div class="cmd"><code>{html.escape(text)}</code></div>'


def render_html(run: SearchRun, front: List[Dict[str, Any]],
                importance: Optional[Importance] = None,
                baseline: Optional[SearchRun] = None) -> str:
    """The report page; every value from the study or the config is escaped.

    Args:
        run: the run (:func:`nas.search.open_run`).
        front: its Pareto front (``run.front()``).
        importance: :func:`~nas.report.analysis.importances` of the run (computed when None).
        baseline: a random-search run to draw beside this one in the history.
    """
    e = html.escape
    importance = importance if importance is not None else importances(run)
    picks = recommendations(front)
    picked: Dict[int, List[str]] = {}
    for name, row in picks.items():
        picked.setdefault(row["trial"], []).append(name)
    archs = {r["trial"]: parse_arch(r) for r in front}
    scale = max((widest_row(a) for a in archs.values() if a), default=1)
    summaries = {r["trial"]: row_summary(r) for r in run.feasible}
    budget = run.config.budget
    title = f"nas search report: {run.config.space}, budget {budget / 1e6:g}M FLOPs"
    over = sum(1 for r in run.rows if not r["feasible"] and not r.get("malformed"))
    chance = chance_note(next((r["classes"] for r in run.feasible if r.get("classes")), None))
    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body>
<div id="tip" hidden></div>
<h1>{e(title)}</h1>
<p>{len(run.rows)} finished trials: {len(run.feasible)} within budget, {over} over budget
({over / max(len(run.rows), 1):.0%}), {len(front)} on the Pareto front (accuracy up, FLOPs
down, latency down). Objective: {e(run.config.objective)}, sampler
{e(run.config.sampler_kind)}, data <code>{e(str(run.config.data))}</code>{e(chance)}. Run directory:
<code>{e(str(run.path))}</code></p>
<p>{e(latency_note(run.feasible) or "No latency measured yet.")}</p>
<p>Open the study in Optuna's dashboard:</p>{_cmd(dashboard_command(run))}"""]

    parts.append("<h2>What to pick</h2>")
    if picks:
        parts.append('<div class="picks">')
        why = {"lightest": "fewest FLOPs on the front",
               "most accurate": "highest supernet accuracy on the front",
               "knee": "the best trade-off: where more FLOPs stop buying much accuracy"}
        for name, row in picks.items():
            parts.append(
                f'<div class="pick"><h3>{e(name)}: <a href="#trial-{row["trial"]}">trial '
                f'{row["trial"]}</a></h3><div class="note">{e(why[name])}</div>'
                f'<p>{e(fmt(row["accuracy"], "pct"))} accuracy, {e(fmt(row["flops"], "mega"))} '
                f'FLOPs, {e(fmt(row.get("params"), "mega2"))} params, '
                f'{e(fmt(row["latency_ms"], "ms"))} ms</p>{_cmd(export_command(run, row["trial"]))}'
                "</div>")
        parts.append("</div>")
        noise = pick_noise(picks)
        if noise and run.dir.rerank_json.exists():
            parts.append(f'<p class="note">{e(noise)}</p>')
        elif noise:  # what nas search prints after its run, here too
            parts.append(f'<p class="note">{e(noise)} Retrain the best few standalone '
                         "before choosing (3 architectures, 2 seeds each):</p>")
            parts.append(_cmd(f"nas rerank {shlex.quote(str(run.path))} --top 3"))
        if "knee" not in picks:
            parts.append('<p class="note">No knee: the accuracy-FLOPs front has fewer than 3 '
                         "members or no bend.</p>")
    else:
        parts.append('<p class="note">No feasible trial yet: nothing to pick.</p>')

    parts.append("<h2>The front</h2>")
    if run.feasible:
        parts.append('<p class="note">Hover a point for its numbers; click one to select its '
                     "row.</p>")
        parts.append(front_plot(run.feasible, front, budget, picks, summaries).svg())
        parts.append('<h2>Front members</h2><p class="note">One bar per block row, cut into '
                     "the MixConv's kernel groups at their channel shares; beside it: "
                     "repeats, expansion, SE ratio, output width, activation, grouped 1x1 "
                     "convs (a/p). Hover a bar or a row for its channels.</p>"
                     + kernel_legend(scale).svg())
        parts.append('<table><thead><tr>' + "".join(
            f"<th>{e(t)}</th>" for _, t, _ in COLUMNS)
            + '<th class="l">architecture</th><th class="l">export</th></tr></thead><tbody>')
        for row in front:
            arch = archs[row["trial"]]
            badges = "".join(f'<span class="badge">{e(n)}</span>' for n in
                             picked.get(row["trial"], []))
            if row.get("caveat"):  # e.g. a predictor asked outside its training data
                badges += f'<p class="note caveat">caveat: {e(str(row["caveat"]))}</p>'
            picture = (arch_picture(arch, scale, legend=False).svg() if arch else
                       '<p class="note">(malformed architecture: no picture)</p>')
            parts.append(
                f'<tr id="trial-{row["trial"]}" class="front">{_cells(row)}'
                f'<td class="l">{badges}{picture}{_arch_details(row)}</td>'
                f'<td class="l">{_cmd(export_command(run, row["trial"]))}</td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="note">No feasible trial yet.</p>')

    parts.append("<h2>How the search went</h2>")
    runs = histories(run, baseline)
    metric = runs[0].metric
    explain = ("the best reward R = acc − β·ln(FLOPs) − γ·ms among the feasible trials so far"
               if metric == "best reward" else
               "the hypervolume of the feasible trials so far in (1 − accuracy, FLOPs / budget, "
               "latency / reference), against (1, 1, 1); the reference latency is the latency "
               "budget, or 1.1 × the slowest feasible trial")
    parts.append(f'<p class="note">{e(explain)}. '
                 + ("Dashed: random search on the same space and budget "
                    f"(<code>{e(str(baseline.path))}</code>)." if baseline else
                    "No random-search run to compare with: run <code>nas search ... --sampler "
                    "random</code> (it writes RUN-random), or pass --baseline RUN.")
                 + "</p>")
    parts.append(history_plot(runs, f"{budget / 1e6:g}M FLOPs").svg())

    parts.append("<h2>What mattered</h2>")
    if importance.values:
        parts.append(
            f'<p class="note">Importance of each decision of the space, from Optuna\'s '
            f"PED-ANOVA evaluator over the {importance.trials} feasible trials: how much "
            f"the decision's distribution among the best {importance.quantile:.0%} differs "
            "from its distribution over all of them, normalised to sum 1 per target. The "
            "accuracy is the supernet's: read it as what the search saw.</p>")
        parts.append(importance_plot(importance, _space_fields(run)).svg())
    else:
        parts.append(f'<p class="note">{e(importance.note)}</p>')

    parts.append("<h2>All trials</h2><table><thead><tr>" + "".join(
        f"<th>{e(t)}</th>" for _, t, _ in COLUMNS)
        + '<th>status</th><th class="l">architecture</th></tr></thead><tbody>')
    on_front = {r["trial"] for r in front}
    for row in sorted(run.rows, key=lambda r: r["trial"] if is_num(r["trial"]) else -1):
        status = "front" if row["trial"] in on_front else (
            "feasible" if row["feasible"] else rejection(row))
        parts.append(f'<tr id="row-{e(str(row["trial"]))}"'
                     f'{" class=front" if status == "front" else ""}>{_cells(row)}'
                     f'<td>{e(status)}</td><td class="l">{_arch_details(row)}</td></tr>')
    parts.append("</tbody></table>")
    config_rows = "".join(f'<tr><th class="l">{e(str(k))}</th><td class="l"><code>'
                          f"{e(json.dumps(v))}</code></td></tr>"
                          for k, v in asdict(run.config).items())
    parts.append(f"<h2>Configuration (config.json)</h2><table>{config_rows}</table>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


def write_report(run: SearchRun, out_dir: Optional[Path] = None,
                 baseline: Optional[SearchRun] = None) -> Report:
    """Write ``report.html`` (and ``pareto.png`` with matplotlib) into ``out_dir`` (RUN).

    Args:
        baseline: a random-search run for the history; by default the sibling
            ``RUN-random`` when it exists (:func:`~nas.report.analysis.baseline_run`).

    Returns:
        What was written (:class:`Report`).
    """
    start = time.perf_counter()
    out = SearchDir(out_dir or run.path)
    front = run.front()
    baseline = baseline if baseline is not None else baseline_run(run)
    page = out.report_html
    atomic_write_bytes(page, render_html(run, front, baseline=baseline).encode())
    png = None
    if run.feasible:
        picks = recommendations(front)
        scene = front_plot(run.feasible, front, run.config.budget, picks,
                           {r["trial"]: row_summary(r) for r in front},
                           title=f"{len(run.rows)} trials, {len(run.feasible)} feasible, "
                                 f"{len(front)} on the front")
        try:
            data = scene.png()
        except ImportError:
            data = None
        if data is not None:
            png = out.pareto_png
            atomic_write_bytes(png, data)
    return Report(front, page, png, baseline, time.perf_counter() - start)


def write_trial_picture(run: SearchRun, trial: int) -> TrialPicture:
    """``RUN/trial-N.svg`` (and ``.png`` with matplotlib): trial N's architecture alone.

    Raises:
        RunError: no finished trial N, or its architecture is malformed.
    """
    row = next((r for r in run.rows if r["trial"] == trial), None)
    if row is None:
        raise RunError(f"{run.path} has no finished trial {trial} "
                       f"(finished: {len(run.rows)}; see `nas report {run.path}`)")
    arch = parse_arch(row)
    if not isinstance(arch, Architecture):
        raise RunError(f"trial {trial} of {run.path} has a malformed architecture string")
    numbers = (f": {fmt(row.get('accuracy'), 'pct')}, {fmt(row.get('flops'), 'mega')} FLOPs, "
               f"{fmt(row.get('latency_ms'), 'ms')} ms" if row["feasible"] else
               f": {fmt(row.get('flops'), 'mega')} FLOPs, {rejection(row)}")
    scene = arch_picture(arch, title=f"trial {trial}{numbers}")
    svg_path = run.dir.trial_picture(trial, "svg")
    atomic_write_bytes(svg_path, ('<?xml version="1.0" encoding="utf-8"?>\n' + scene.svg()
                                  ).encode())
    png_path = None
    try:
        data = scene.png()
    except ImportError:
        data = None
    if data is not None:
        png_path = run.dir.trial_picture(trial, "png")
        atomic_write_bytes(png_path, data)
    return TrialPicture(trial, svg_path, png_path, row)
