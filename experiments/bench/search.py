"""Benchmark: what the search machinery (Optuna's TPE and SQLite storage, the cost model)
costs a user's default search, as ratios measured in the same run.

    .venv/bin/python experiments/bench/search.py [--seeds 0 1 2] [--supernet RUN/supernet.pt]

Runs the default search (``nas search --budget 300M``: mixnet_300m, Fashion-MNIST 28x28,
50 trials, multivariate TPE, SQLite in the run directory, BN recalibration on 4 batches,
1,000 validation images, latency measured at 3x224x224 batch 1) once per seed, on a
briefly trained supernet (accuracy does not matter for timing), and reads each trial's
wall time back from the study. Per seed it prints:

* feasible trials/min (the median feasible trial; goal >= 45) and that trial's time as a
  ratio to its own evaluation (latency measurement + BN recalibration + validation), i.e.
  what the controller and the storage add;
* the over-budget trials' share of the trial phase's wall time (goal <= 5%), and an
  over-budget trial's time as a ratio to a feasible one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

from nas.search import SearchConfig, loop, run_search, trials
from nas.train import TrainConfig, train_supernet

PHASE = {"seconds": 0.0}


def _timed_run_until(real):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            PHASE["seconds"] += time.perf_counter() - start
    return wrapper


# The trial phase: the loop over trials, without supernet loading and data setup.
trials.run_until = _timed_run_until(loop.run_until)


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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--supernet", default="")
    p.add_argument("--supernet-steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(2)
    rates, shares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        supernet = args.supernet
        if not supernet:
            train_supernet(TrainConfig(steps=args.supernet_steps, checkpoint_every=10**6),
                           tmp / "sn", progress=False)
            supernet = str(tmp / "sn" / "supernet.pt")
        print(f"default search (budget 300M, {args.trials} trials, TPE, SQLite, 2 threads), "
              f"optuna {optuna.__version__}:")
        for seed in args.seeds:
            PHASE["seconds"] = 0.0
            run_search(SearchConfig(budget=300_000_000, trials=args.trials, supernet=supernet,
                                    seed=seed), tmp / f"s{seed}", progress=False,
                       log=lambda m: None)
            feasible, infeasible = durations(tmp / f"s{seed}")
            per_trial = statistics.median(s for s, _ in feasible)
            work = statistics.median(a["eval_s"] + a["latency_s"] for _, a in feasible)
            over = statistics.median(s for s, _ in infeasible) if infeasible else float("nan")
            share = sum(s for s, _ in infeasible) / PHASE["seconds"]
            rates.append(60 / per_trial)
            shares.append(share)
            print(f"  seed {seed}: {len(feasible)} feasible, median {per_trial:.3f} s -> "
                  f"{60 / per_trial:.1f} trials/min; trial / its evaluation = "
                  f"{per_trial / work:.3f}")
            print(f"          {len(infeasible)} over budget, median {over * 1000:.0f} ms "
                  f"({over / per_trial:.3f}x a feasible trial): {share:.1%} of the trial "
                  f"phase's {PHASE['seconds']:.1f} s")
    print(f"median over seeds: {statistics.median(rates):.1f} feasible trials/min "
          f"(goal >= 45); over-budget trials {statistics.median(shares):.1%} of the trial "
          "phase (goal <= 5%)")


if __name__ == "__main__":
    main()
