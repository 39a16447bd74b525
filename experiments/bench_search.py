"""Benchmark: search speed, the controller's share of it, and the cost of over-budget trials.

    .venv/bin/python experiments/bench_search.py [--trials 40] [--supernet RUN/supernet.pt]

Runs ``nas search`` at its default proxy settings (Fashion-MNIST 28x28, BN recalibration
on 4 batches, 1,000 validation images, latency at 3x224x224 batch 1) on a supernet
(trained briefly here unless one is given: accuracy does not matter for timing), with
the real SQLite storage, then reads per-trial timings back from the study:

* trials/min of feasible trials (goal >= 30), and the share of their time spent in the
  controller (suggestions, cost model, storage) rather than latency and evaluation;
* the cost of an over-budget trial, from a second study whose budget only the smallest
  architectures meet (goal < 10 ms each), as a ratio to a feasible trial in the same run.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import optuna
import torch

import nas
from nas.search import SearchConfig, run_search
from nas.static_tpe import StaticSpaceTPESampler
from nas.study_store import BufferedStudy
from nas.train import TrainConfig, train_supernet

SPENT = defaultdict(float)  # seconds inside the timed functions below


def timed(owner, name: str, key: str) -> None:
    """Wrap ``owner.name`` to add its wall time to ``SPENT[key]``."""
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[key] += time.perf_counter() - start

    setattr(owner, name, wrapper)


# The sampler's own work (TPE fits its density models and scores candidates on the
# first suggestion of a trial) and the durable write, to split an over-budget trial's cost.
for _method in ("infer_relative_search_space", "sample_relative", "sample_independent"):
    timed(optuna.samplers.TPESampler, _method, "sampler")
timed(StaticSpaceTPESampler, "infer_relative_search_space", "sampler")  # its override
timed(BufferedStudy, "_persist", "persist")
timed(BufferedStudy, "optimize", "loop")  # the trial loop, without the run's one-off setup


def durations(run_dir: Path):
    study = optuna.load_study(study_name="nas-search",
                              storage=f"sqlite:///{run_dir / 'study.db'}")
    feasible, infeasible = [], []
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        (feasible if t.user_attrs.get("feasible") else infeasible).append((seconds, t.user_attrs))
    return feasible, infeasible


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--supernet", default="")
    p.add_argument("--supernet-steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(2)
    space = nas.load_space("mixnet_300m")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        supernet = args.supernet
        if not supernet:
            train_supernet(TrainConfig(steps=args.supernet_steps, checkpoint_every=10**6),
                           tmp / "sn", progress=False)
            supernet = str(tmp / "sn" / "supernet.pt")
        quiet = lambda m: None  # noqa: E731
        # 1. the default search: budget 300M
        run_search(SearchConfig(budget=300_000_000, trials=args.trials, supernet=supernet),
                   tmp / "s300", progress=False, log=quiet)
        feasible, _ = durations(tmp / "s300")
        per_trial = statistics.median(s for s, _ in feasible)
        total = sum(s for s, _ in feasible)
        work = sum(a["eval_s"] + a["latency_s"] for _, a in feasible)
        # 2. a budget only the smallest archs meet: nearly every trial is over budget
        tight = int(space.cost_range().flops_min * 1.15)
        SPENT.clear()
        result = run_search(SearchConfig(budget=tight, trials=args.trials, supernet=supernet),
                            tmp / "tight", progress=False, log=quiet)
        tight_feasible, infeasible = durations(tmp / "tight")
    # Wall time of the whole trial loop (sampling, cost model, SQLite writes) less the
    # few feasible trials' own time, per over-budget trial: persistence is included; the
    # run's one-off setup (opening the study, loading data) is not.
    over_wall = ((SPENT["loop"] - sum(s for s, _ in tight_feasible)) / len(infeasible)
                 if infeasible else float("nan"))
    over = statistics.median(s for s, _ in infeasible) if infeasible else float("nan")
    n_trials = len(infeasible) + len(tight_feasible)  # the timers ran for all of them
    sampler_ms, persist_ms = (SPENT[k] / n_trials * 1000 for k in ("sampler", "persist"))
    print(f"default search (budget 300M, {args.trials} trials, SQLite storage, 2 threads):")
    print(f"  feasible trials: {len(feasible)}, median {per_trial:.2f} s each -> "
          f"{60 / per_trial:.1f} trials/min (goal >= 30)")
    print(f"  controller share of feasible-trial time: {1 - work / total:.1%} "
          f"(latency + BN recalibration + validation: {work / total:.1%})")
    print(f"over-budget trials (budget {tight / 1e6:.1f}M): {len(infeasible)}, mean "
          f"{over_wall * 1000:.1f} ms each including the SQLite write (goal < 10 ms), "
          f"{over_wall / per_trial:.4f}x a feasible trial; ask-to-tell median "
          f"{over * 1000:.1f} ms")
    print(f"  one-off setup of that search (data, study, outputs): "
          f"{result['seconds'] - SPENT['loop']:.2f} s")
    print(f"  of which, per trial: TPE sampling {sampler_ms:.1f} ms, SQLite write "
          f"{persist_ms:.1f} ms, the rest (70 suggest calls, cost model, constraint) "
          f"{over_wall * 1000 - sampler_ms - persist_ms:.1f} ms")


if __name__ == "__main__":
    main()
