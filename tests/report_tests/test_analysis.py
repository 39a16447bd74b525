"""The report's analysis and pictures: importance against Optuna's own API, history against
moocore's hypervolume, the knee, the architecture picture against the channel arithmetic,
``nas report --trial N``, and hostile strings in the new parts of the page.

Cost: one session fixture (tests/conftest.py: two synthetic runs of 60 + 40 trials, ~10 s
on 2 cores); each test here takes under 2 s.
"""

import base64
import hashlib
import json
import re
import shlex
import shutil
import sqlite3
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import optuna
import pytest

import nas
from nas.cli import main
from nas.report import (
    CSP,
    IMPORTANCE_MIN_TRIALS,
    arch_picture,
    export_command,
    histories,
    importances,
    knee,
    recommendations,
    write_report,
)
from nas.report.pictures import KERNEL_COLOURS
from nas.search import open_run
from nas.search.results import hypervolume

optuna.logging.set_verbosity(optuna.logging.WARNING)
SVG = "{http://www.w3.org/2000/svg}"


def test_importance_is_optunas_over_the_feasible_trials(synthetic_run_dir):
    run = open_run(synthetic_run_dir)
    result = importances(run)
    assert result.trials == len(run.feasible) >= IMPORTANCE_MIN_TRIALS
    assert set(result.values) == {"accuracy", "FLOPs", "latency"}
    # the oracle: Optuna's own call on a study holding only the feasible trials
    feasible = {r["trial"] for r in run.feasible}
    study = optuna.create_study()
    study.add_trials([t for t in run.study.get_trials() if t.number in feasible])
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=result.quantile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: -t.user_attrs["accuracy"])
    assert result.values["accuracy"] == pytest.approx(expected)
    # the planted decision drives accuracy; an activation never changes FLOPs
    assert next(iter(result.values["accuracy"])) == "s2.b0.k"
    assert not next(iter(result.values["FLOPs"])).endswith(".act")
    assert sum(result.values["FLOPs"].values()) == pytest.approx(1.0)


def test_too_few_trials_give_a_note_not_a_chart(search_run_dir):
    run = open_run(search_run_dir)  # a real tiny search: 6 trials
    result = importances(run)
    assert not result.values
    assert f"at least {IMPORTANCE_MIN_TRIALS} feasible trials" in result.note
    page = write_report(run).html.read_text()
    assert f"at least {IMPORTANCE_MIN_TRIALS} feasible trials" in page
    assert 'class="chart imp"' not in page


def test_history_is_the_running_best_and_the_hypervolume(synthetic_run_dir, tmp_path):
    run = open_run(synthetic_run_dir)
    baseline = open_run(synthetic_run_dir.parent / "run-random")
    mine, theirs = histories(run, baseline)
    rows = sorted(run.rows, key=lambda r: r["trial"])
    best, expected = None, []
    for r in rows:
        if r["feasible"]:
            best = r["reward"] if best is None else max(best, r["reward"])
        expected.append(best)
    assert mine.best == expected and mine.metric == "best reward"
    assert mine.over_budget_share == pytest.approx(
        sum(not r["feasible"] for r in rows) / len(rows))
    assert len(theirs.best) == len(baseline.rows) and "random search" in theirs.label
    # Pareto mode: the hypervolume after the last trial is moocore's over all feasible points
    from synthetic import synthetic_run

    pareto = open_run(synthetic_run(tmp_path / "p", 25, objective="pareto", seed=3))
    (h,) = histories(pareto, None)
    ref = 1.1 * max(r["latency_ms"] for r in pareto.feasible)
    points = [[1 - r["accuracy"], r["flops"] / pareto.config.budget, r["latency_ms"] / ref]
              for r in pareto.feasible]
    assert h.metric == "hypervolume"
    assert h.best[-1] == pytest.approx(hypervolume(points, [1, 1, 1]))
    done = [v for v in h.best if v is not None]
    assert done == sorted(done) and done[-1] > 0


def test_the_sibling_random_run_is_found(synthetic_run_dir):
    result = write_report(open_run(synthetic_run_dir))
    assert result.baseline.path == synthetic_run_dir.parent / "run-random"
    page = result.html.read_text()
    assert "random search (run-random)" in page
    assert 'stroke-dasharray="6 4"' in page  # the baseline's dashed curve


def test_knee_lightest_and_most_accurate():
    def row(trial, flops, acc):
        return {"trial": trial, "flops": flops, "accuracy": acc, "latency_ms": 1.0}

    front = [row(0, 100, 0.50), row(1, 150, 0.70), row(2, 200, 0.74), row(3, 300, 0.76)]
    picks = recommendations(front)
    assert picks["lightest"]["trial"] == 0 and picks["most accurate"]["trial"] == 3
    assert picks["knee"]["trial"] == 1  # farthest above the chord in scaled coordinates
    straight = [row(0, 100, 0.5), row(1, 200, 0.6), row(2, 300, 0.7)]
    assert knee(straight) is None and "knee" not in recommendations(straight)
    assert knee(front[:2]) is None
    assert recommendations([]) == {}


def _rows_of(svg_text: str):
    """(label, [(kernel, width)]) per block row of an architecture picture."""
    root = ET.fromstring(svg_text)
    colour_to_kernel = {v: k for k, v in KERNEL_COLOURS.items()}
    rows, current = [], None
    for el in root:
        title = el.find(SVG + "title")
        text = (title.tail if title is not None else el.text) or ""
        if el.tag == SVG + "text" and re.fullmatch(r"s\d+\.b\d+( ↓)?", text):
            current = (text, [])
            rows.append(current)
        elif (el.tag == SVG + "rect" and current is not None and title is not None
              and el.get("fill") in colour_to_kernel):
            current[1].append((colour_to_kernel[el.get("fill")], float(el.get("width"))))
    return rows


def test_arch_picture_draws_every_kernel_group_at_its_channel_share():
    arch = nas.load_space("mixnet_m").sample(0)
    rows = _rows_of(arch_picture(arch).svg())
    layers = {}
    for layer in arch.layers():
        key = (layer.stage, layer.row)
        if key not in layers or layer.mid_ch > layers[key].mid_ch:
            layers[key] = layer
    assert len(rows) == len(layers)
    for (label, groups), ((s, r), layer) in zip(rows, sorted(layers.items())):
        assert label.split()[0] == f"s{s}.b{r}"
        assert [k for k, _ in groups] == list(layer.kernels)
        total = sum(w for _, w in groups)
        for (_, w), channels in zip(groups, layer.dw_splits):
            # widths are written to 0.1 px
            assert w == pytest.approx(total * channels / layer.mid_ch, abs=0.1 * len(groups))
    # a wider expanded width is a longer bar, on the scale shared by compared pictures
    lengths = [sum(w for _, w in g) for _, g in rows]
    mids = [layers[k].mid_ch for k in sorted(layers)]
    for (a, la), (b, lb) in zip(zip(mids, lengths), zip(mids[1:], lengths[1:])):
        assert (a < b) <= (la < lb + 1e-6)


def test_an_absent_optional_row_has_no_line_in_the_picture():
    # mobilenetv3_mixconv's rows may be r0: the picture draws the rows the network has
    space = nas.load_space("mobilenetv3_mixconv")
    arch = space.extreme_arch(largest=False)
    absent = {(s, r) for s, rows in enumerate(arch.stages) for r, b in enumerate(rows)
              if b.repeats == 0}
    assert absent, "the smallest network should leave an optional row out"
    labels = [label.split()[0] for label, _ in _rows_of(arch_picture(arch).svg())]
    present = {(layer.stage, layer.row) for layer in arch.layers()}
    assert labels == [f"s{s}.b{r}" for s, r in sorted(present)]
    assert not {f"s{s}.b{r}" for s, r in absent} & set(labels)


def test_report_trial_writes_the_picture_alone(synthetic_run_dir, tmp_path, capsys):
    run_dir = tmp_path / "r"
    shutil.copytree(synthetic_run_dir, run_dir)
    run = open_run(run_dir)
    over = next(r["trial"] for r in run.rows if not r["feasible"])
    for trial in (run.front()[0]["trial"], over):
        assert main(["report", str(run_dir), "--trial", str(trial)]) == 0
        out = capsys.readouterr().out
        svg = run_dir / f"trial-{trial}.svg"
        assert str(svg) in out
        root = ET.fromstring(svg.read_text())  # well-formed, standalone
        assert root.tag == SVG + "svg" and f"trial {trial}" in svg.read_text()
        assert (run_dir / f"trial-{trial}.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(run_dir), "--trial", "12345"]) == 2
    assert "no finished trial 12345" in capsys.readouterr().err


def test_a_run_without_feasible_trials_still_reports(tmp_path, capsys):
    from synthetic import synthetic_run

    run_dir = synthetic_run(tmp_path / "none", 4, budget=50_000_000)  # all over budget
    assert main(["report", str(run_dir)]) == 0
    assert "No trial is feasible yet" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    assert "No feasible trial yet: nothing to pick." in page
    assert "4 over budget\n(100%)" in page and 'class="chart history"' in page


def test_page_without_matplotlib_is_complete(synthetic_run_dir, tmp_path, monkeypatch):
    import sys

    shutil.copytree(synthetic_run_dir, tmp_path / "r")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = write_report(open_run(tmp_path / "r"))
    assert result.png is None
    page = result.html.read_text()
    for part in ('class="chart front"', 'class="arch"', 'class="chart history"',
                 'class="chart imp"'):
        assert part in page


def test_the_scripts_hash_is_in_the_csp(synthetic_run_dir):
    page = write_report(open_run(synthetic_run_dir)).html.read_text()
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in CSP and CSP in page
    assert "unsafe-inline'; img-src" in CSP and "'unsafe-inline'" not in CSP.split("script-src")[1]


def _tags(page: str):
    """Every element the browser would build: (tag, attributes)."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(page)
    return found


HOSTILE = "<script>alert(1)</script>'$(touch /tmp/nas-pwned-17)\"<img src=x onerror=alert(2)>"


def test_hostile_strings_in_the_new_parts_are_escaped(synthetic_run_dir, tmp_path):
    """A run directory named with markup and shell syntax, and a study whose decision
    names, one front member's architecture and a preset hold markup: the page shows
    them as text, and the export commands stay one argument per path."""
    run_dir = tmp_path / "<b>run '$(touch x)'"
    shutil.copytree(synthetic_run_dir, run_dir)
    con = sqlite3.connect(run_dir / "study.db")
    con.execute("UPDATE trial_params SET param_name = ? WHERE param_name = 's2.b0.k'",
                (HOSTILE,))
    first = open_run(synthetic_run_dir).front()[0]["trial"]
    con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'arch' AND "
                "trial_id = (SELECT trial_id FROM trials WHERE number = ?)",
                (json.dumps(HOSTILE), first))
    con.execute("INSERT INTO trial_user_attributes (trial_id, key, value_json) SELECT "
                "trial_id, 'preset', ? FROM trials WHERE number = ?",
                (json.dumps(HOSTILE), first + 1))
    con.commit()
    con.close()
    run = open_run(run_dir)
    page = write_report(run).html.read_text()
    tags = _tags(page)
    assert [t for t, _ in tags if t in ("script", "img", "b", "iframe")] == ["script"]
    assert not [a for _, attrs in tags for a, _ in attrs if a.startswith("on")]
    assert page.count("<script") == 1  # the report's own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    for row in run.front():
        command = export_command(run, row["trial"])
        words = shlex.split(command)
        assert words[2] == str(run_dir) and words[-1].startswith(str(run_dir))
        assert command.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
            .replace('"', "&quot;").replace("'", "&#x27;") in page
    assert "(malformed architecture: no picture)" in page
    assert not Path("/tmp/nas-pwned-17").exists()


def test_the_picks_say_when_their_accuracies_are_within_noise(search_run_dir, capsys):
    """A new user's report offered 'most accurate' at 43.33% against the knee at 36.67%:
    13 against 11 of 30 images. The page now says how many images each accuracy counts,
    the 95% interval at that count, which picks it does not tell apart, and how to check."""
    from nas.report.page import chance_note, pick_noise

    def row(trial, acc, n=30):
        return {"trial": trial, "accuracy": acc, "val_images": n}

    picks = {"lightest": row(0, 0.20), "most accurate": row(2, 13 / 30),
             "knee": row(1, 11 / 30)}
    note = pick_noise(picks)
    # sqrt(0.433 * 0.567 / 30) * 1.96 = 17.7 points: the knee is within it, the lightest not
    assert "on 30 validation images" in note and "±17.7 points" in note
    assert "(here the most accurate and the knee)" in note
    many = {"knee": row(1, 11 / 30, 30_000), "most accurate": row(2, 13 / 30, 30_000)}
    assert "(here" not in pick_noise(many)  # 30,000 images tell 6.7 points apart
    assert pick_noise({"most accurate": {"trial": 0, "accuracy": 0.5}}) is None  # predicted
    # an edited study's values give no note, never a traceback
    for bad in ("ten", 0, -4, 2.5, float("nan"), True):
        assert pick_noise({"most accurate": row(2, 0.5, bad)}) is None
        assert chance_note(bad) == ""
    assert chance_note(1) == "" and chance_note(3.0) == " (3 classes: a uniform guess scores 33.3%)"
    assert main(["report", str(search_run_dir)]) == 0
    page = (search_run_dir / "report.html").read_text()
    assert "validation images: at" in page and "nas rerank" in page
    # what the accuracies were measured on, and the floor they are read against
    assert "data <code>fashion-mnist</code> (10 classes: a uniform guess scores 10.0%)" in page
