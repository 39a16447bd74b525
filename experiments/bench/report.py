"""Benchmark: `nas report` on a 1,000-trial study (goal: under 5 s, HTML under 5 MB), as a
ratio to reading the same study with Optuna in the same run.

    .venv/bin/python experiments/bench/report.py [--trials 1000] [--repeats 3] [--run DIR]

The study is synthetic but valid (tests/synthetic.py): 1,000 sampled architectures of
mixnet_300m stored through Optuna's public API (``create_trial`` + ``add_trials``) in a
SQLite run directory, as ``nas search`` stores them, with exact FLOPs and params and
synthetic accuracy and latency; about half are over the 300M budget. ``--run DIR`` keeps
the study for the next run (building it takes ~1-2 min: SQLite inserts).

Per repeat it times, in one process:

* baseline: ``optuna.load_study(...).get_trials()``: what any reader of the study pays;
* ``open_run``: nas's reading of the run (the same load, plus the rows);
* ``write_report``: everything after loading: recommendations, history, decision
  importance (PED-ANOVA, 3 targets), front plot, a picture per front member, the page,
  pareto.png;
* ``nas report RUN`` as a user runs it (a fresh interpreter: imports, load, report, table),
  and the imports alone in another fresh interpreter (nas's report and search faces,
  ``optuna.importance``, which imports scikit-learn for its fANOVA evaluator, and
  matplotlib): no torch since issue 17.

It prints medians of wall and CPU time (CPU time is what a quiet 2-core machine would
take: this one is shared), and each as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from synthetic import synthetic_run  # noqa: E402

from nas.report import importances, write_report  # noqa: E402
from nas.report.table import arch_of  # noqa: E402
from nas.runs import SearchDir  # noqa: E402
from nas.search import STUDY_NAME, open_run  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fresh(code: str, run_dir: Path):
    """(wall, CPU) seconds of ``code`` in a new interpreter (``sys.argv[1]`` = run_dir)."""
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", "import sys, resource; " + code + "; "
                            "u = resource.getrusage(resource.RUSAGE_SELF); "
                            "print('CPU', u.ru_utime + u.ru_stime, file=sys.stderr); "
                            "sys.exit(code)", str(run_dir)],
                           capture_output=True, text=True, check=True)
    return time.perf_counter() - start, float(child.stderr.strip().split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--run", default="", help="keep (or reuse) the synthetic study here")
    args = p.parse_args()
    run_dir = Path(args.run) if args.run else Path(tempfile.mkdtemp()) / "run"
    if not SearchDir(run_dir).config.is_file():
        _, wall, _ = timed(lambda: synthetic_run(run_dir, args.trials))
        print(f"built {args.trials} synthetic trials of mixnet_300m in {wall:.0f} s: {run_dir}")
    url = f"sqlite:///{SearchDir(run_dir).study_db}"
    times = {k: [] for k in ("baseline", "open_run", "importance", "write_report", "cli",
                             "imports")}
    size = 0
    for _ in range(args.repeats):
        _, w, c = timed(lambda: optuna.load_study(study_name=STUDY_NAME,
                                                  storage=url).get_trials())
        times["baseline"].append((w, c))
        run, w, c = timed(open_run, run_dir)
        times["open_run"].append((w, c))
        _, w, c = timed(importances, run)
        times["importance"].append((w, c))
        arch_of.cache_clear()  # each repeat parses the architectures again, as a user's run
        result, w, c = timed(write_report, run)
        times["write_report"].append((w, c))
        size = result.html.stat().st_size
        times["cli"].append(fresh("from nas.cli import main; "
                                  "code = main(['report', sys.argv[1]])", run_dir))
        times["imports"].append(fresh(
            "import nas.cli, nas.report, nas.search.results, optuna.importance, "
            "matplotlib.figure; assert 'torch' not in sys.modules; code = 0", run_dir))
    n, feasible, front = len(run.rows), len(run.feasible), len(result.front)
    base_w = statistics.median(w for w, _ in times["baseline"])
    base_c = statistics.median(c for _, c in times["baseline"])
    print(f"{n} trials ({feasible} feasible, {front} on the front), median of "
          f"{args.repeats} repeats; ratio = time / Optuna's load of the same study")
    labels = {"baseline": "baseline: optuna load_study + get_trials",
              "open_run": "open_run (nas reads the run)",
              "importance": "  importance alone (PED-ANOVA x 3 targets; in write_report)",
              "write_report": "write_report (all after loading; importance included)",
              "cli": "nas report RUN, fresh interpreter (goal < 5 s)",
              "imports": "  its imports alone (fresh interpreter; no torch)"}
    for key, label in labels.items():
        w = statistics.median(v for v, _ in times[key])
        c = statistics.median(v for _, v in times[key])
        print(f"  {label:<56} wall {w:6.2f} s ({w / base_w:4.2f}x)   "
              f"CPU {c:6.2f} s ({c / base_c:4.2f}x)")
    print(f"  report.html: {size / 1e6:.2f} MB (goal < 5 MB)")


if __name__ == "__main__":
    main()
