"""Experiment: the controllers (TPE on the reward, NSGA-II on the Pareto front) vs random search.

    .venv/bin/python experiments/studies/controllers/run.py --supernet runs/sn-800/supernet.pt \
        [--budget 300M] [--trials 50] [--seeds 0 1 2]

Every controller runs ``nas search`` with the same supernet, budget, trial count and
seeds (one run directory each under ``--runs``; rerunning the script continues them).
All runs start with the same warm start (MixNet-S queued when it is within budget).
Per run it reports:

* best reward over the trials (``R = acc - beta ln FLOPs - gamma ms`` with the search's
  defaults), at 10, 25 and all trials;
* the hypervolume of the feasible trials in (1 - accuracy, FLOPs / budget,
  latency / LAT_REF_MS), all minimised, against the reference point (1, 1, 1): accuracy 0,
  FLOPs at the budget, latency LAT_REF_MS. Larger is better; 1 would be a perfect net
  with no cost.

Raw per-trial rows go to ``controllers[_DATA][_TAG]_trials.csv``, the per-run
summary to ``controllers[_DATA][_TAG]_summary.csv`` (``_DATA`` for other data than
Fashion-MNIST, ``_TAG`` from ``--tag``); the table printed is mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas.search import SearchConfig, run_search
from nas.search.results import hypervolume as exact_hypervolume
from nas.units import parse_flops

LAT_REF_MS = 100.0  # above any feasible net of mixnet_300m at 224x224 on this machine
CONTROLLERS = {  # name: (objective, sampler)
    "tpe-reward": ("reward", "tpe"),
    "nsga2-pareto": ("pareto", "nsga2"),
    "random": ("reward", "random"),
}
RESULTS = Path(__file__).parent


def hypervolume(rows: pd.DataFrame, budget: int) -> float:
    ok = rows[rows.feasible & (rows.latency_ms < LAT_REF_MS)]
    if ok.empty:
        return 0.0
    points = np.stack([1 - ok.accuracy, ok.flops / budget, ok.latency_ms / LAT_REF_MS], 1)
    return exact_hypervolume(points, np.ones(3))


def best_reward(rows: pd.DataFrame, first: int) -> float:
    """Best feasible reward among the first ``first`` finished trials (trial numbers can
    have gaps where a trial failed and was retried)."""
    head = rows.nsmallest(first, "trial")
    return float(head[head.feasible].reward.max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", required=True, help="a trained RUN/supernet.pt")
    p.add_argument("--budget", default="300M")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/controllers", help="run directories go here")
    p.add_argument("--data", default="fashion-mnist", help="the supernet's data")
    p.add_argument("--tag", default="", help="appended to the results' file names, so "
                   "a second supernet on the same data does not overwrite the first's")
    args = p.parse_args()
    torch.set_num_threads(2)
    budget = parse_flops(args.budget)
    trials, summary = [], []
    for seed in args.seeds:
        for name, (objective, sampler) in CONTROLLERS.items():
            run_dir = Path(args.runs) / f"{name}-seed{seed}"
            start = time.perf_counter()
            run_search(SearchConfig(budget=budget, objective=objective, sampler=sampler,
                                    trials=args.trials, supernet=args.supernet, seed=seed,
                                    data=args.data),
                       run_dir, progress=False, log=lambda m: None)
            rows = pd.read_csv(run_dir / "trials.csv")
            rows["feasible"] = rows.feasible.astype(bool)
            trials.append(rows.assign(controller=name, seed=seed))
            summary.append({
                "controller": name, "seed": seed, "trials": len(rows),
                "feasible": int(rows.feasible.sum()),
                "best_reward_10": best_reward(rows, 10), "best_reward_25": best_reward(rows, 25),
                "best_reward": best_reward(rows, len(rows)),
                "hypervolume": hypervolume(rows, budget),
                "best_acc": float(rows[rows.feasible].accuracy.max()),
                "wall_s": round(time.perf_counter() - start, 1)})
            print(summary[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.data == "fashion-mnist" else "_" + Path(args.data).name.split(".")[0]
    suffix += f"_{args.tag}" if args.tag else ""
    pd.concat(trials).to_csv(RESULTS / f"controllers{suffix}_trials.csv", index=False)
    table = pd.DataFrame(summary)
    table.to_csv(RESULTS / f"controllers{suffix}_summary.csv", index=False)
    cols = ["best_reward_10", "best_reward_25", "best_reward", "hypervolume", "best_acc",
            "feasible"]
    agg = table.groupby("controller", sort=False)[cols].agg(["mean", "std"])
    print(f"\nbudget {budget / 1e6:.0f}M, {args.trials} trials, seeds {args.seeds}; "
          f"hypervolume reference (acc 0, FLOPs {budget / 1e6:.0f}M, {LAT_REF_MS:.0f} ms)")
    print("| controller | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in agg.iterrows():
        cells = [f"{row[(c, 'mean')]:.4f} ± {row[(c, 'std')]:.4f}" for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
