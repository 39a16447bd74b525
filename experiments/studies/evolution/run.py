"""Study: the evolutionary search (``--sampler evolution``) against TPE and NSGA-II on the same
predictor and budget: the best predicted accuracy each finds, and how its pick trains.

    .venv/bin/python experiments/studies/evolution/run.py --predictor P.json \\
        --data ../shared/data/cifar10-jpg.tar.gz [--budget 251736960] [--seeds 0 1 2] \\
        [--trials 500] [--train-seeds 0 1 2] [--epochs 1] [--out runs/evolution-study] \\
        [--stage search|train|summary] [--shard I/N]

Searches (stage ``search``; every one at ``--budget`` FLOPs at 224², accuracy alone as the
reward: ``--beta 0 --gamma 0``, as the issue-19 search that found the best network; the
latency of each recorded trial is measured in torch eager but enters nothing):

* ``tpe``: multivariate TPE, ``--trials`` trials (each scored by the predictor);
* ``nsga2``: NSGA-II as a single-objective genetic algorithm on the same reward,
  ``--trials`` trials;
* ``evolution``: ``--sampler evolution`` with its defaults (10^5 candidates scored,
  population 500), 50 recorded trials;
* ``evolution_small``: the same evolution with as many candidates as the others have
  trials (population 50), to separate the algorithm from the number of evaluations.

One row per (search, seed) is appended to ``searches.csv`` beside this script: the best
trial by predicted accuracy (``nas export --best``), its FLOPs and caveat, the architectures
scored and the wall time. A rerun skips finished rows and continues a killed search.

Stage ``train``: each distinct pick is trained from scratch with ``nas train``'s recipe for
``--epochs`` (1: the reference's recipe) per ``--train-seeds``, on the training split less the
seeded validation carve, and scored on that **validation** carve only (what a search may
look at; the test split is not read here). Rows in ``retrain.csv``; ``--shard I/N`` splits
the jobs over processes as ``nas reference`` does, ``--searches NAME ...`` takes the picks
of those searches only. Stage ``summary`` (also printed after the others) prints the tables
and writes the per-search one to ``summary.csv`` beside this script: recomputed from the two
CSVs alone, no run directory needed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
SEARCHES, RETRAIN, SUMMARY = (HERE / "searches.csv", HERE / "retrain.csv",
                               HERE / "summary.csv")
MIXNET_S_FLOPS = 251_736_960


def searches(trials: int):
    """``{name: SearchConfig overrides}`` of the compared searches."""
    return {
        "tpe": dict(sampler="tpe", trials=trials),
        "nsga2": dict(sampler="nsga2", trials=trials),
        "evolution": dict(sampler="evolution", trials=50),
        "evolution_small": dict(sampler="evolution", trials=50, evolution_population=50,
                                evolution_candidates=trials),
    }


def run_searches(args) -> None:
    from nas.files import append_csv_row, read_csv_rows
    from nas.search import SearchConfig, open_run, run_search

    done = {(r["search"], int(r["seed"])) for r in read_csv_rows(SEARCHES)}
    for seed in args.seeds:
        for name, extra in searches(args.trials).items():
            if (name, seed) in done:
                continue
            config = SearchConfig(budget=args.budget, data=args.data, beta=0.0, gamma=0.0,
                                  estimator=f"predictor:{args.predictor}", seed=seed,
                                  latency_repeats=1, **extra)
            out = Path(args.out) / f"{name}-seed{seed}"
            start = time.perf_counter()
            result = run_search(config, out, progress=False, log=lambda m: None)
            wall = time.perf_counter() - start
            run = open_run(out)
            best = run.best("acc")  # the predicted accuracy is the reward here
            evolution = run.study.user_attrs.get("evolution", {})
            row = {"search": name, "seed": seed, "budget": args.budget,
                   "scored": evolution.get("scored", result.feasible),
                   "recorded": result.trials, "wall_s": round(wall, 1),
                   "evolution_s": evolution.get("seconds", {}).get("total", ""),
                   "best_trial": best["trial"], "predicted": best["accuracy"],
                   "flops": best["flops"], "params": best["params"],
                   "caveat": bool(best.get("caveat")), "arch": best["arch"]}
            append_csv_row(SEARCHES, row)
            print({k: v for k, v in row.items() if k != "arch"}, flush=True)


def run_training(args) -> None:
    import nas
    from nas.files import append_csv_row, read_csv_rows
    from nas.reference import shard_indices
    from nas.train import RetrainConfig, retrain

    picks = {}
    for r in read_csv_rows(SEARCHES):
        if not args.searches or r["search"] in args.searches:
            picks.setdefault(r["arch"], r)
    jobs = [(seed, arch) for seed in args.train_seeds for arch in picks]
    for index in shard_indices(args.shard, len(jobs)):
        seed, arch = jobs[index]
        key = nas.Architecture.parse(arch).id
        if any(r["id"] == key and int(r["seed"]) == seed and r["data"] == args.data
               for r in read_csv_rows(RETRAIN)):
            continue
        out = Path(args.out) / "train" / f"{key}-seed{seed}"
        start = time.perf_counter()
        config = RetrainConfig(arch=arch, data=args.data, epochs=args.epochs, seed=seed)
        resume = (out / "checkpoint.pt").exists()
        m = retrain(None if resume else config, out, resume=resume, progress=False)
        row = {"id": key, "seed": seed, "val_accuracy": m["val_accuracy"],
               "epochs": m["epochs"], "flops": nas.count_cost(nas.Architecture.parse(arch)).flops,
               "data": args.data, "wall_s": round(time.perf_counter() - start, 1),
               "arch": arch}
        append_csv_row(RETRAIN, row)
        print({k: v for k, v in row.items() if k != "arch"}, flush=True)


def summarize() -> pd.DataFrame:
    """Per search and seed: the best trial by predicted accuracy and the validation accuracy
    its pick trained to. Per search (``summary.csv`` beside this script): candidates scored,
    wall time, best predicted accuracy (median and range over seeds), and the pick's
    standalone accuracy: each seed's pick averaged over its training seeds, then the mean
    over search seeds with a t-interval; then each search minus ``evolution`` (Welch).
    Returns the per-search table (accuracies in %)."""
    from scipy import stats

    from nas.arch import Architecture
    from nas.files import read_csv_rows

    found = pd.DataFrame(read_csv_rows(SEARCHES))
    if found.empty:
        print("no searches yet")
        return found
    for column in ("predicted", "wall_s", "flops"):
        found[column] = found[column].astype(float)
    found["seed"], found["scored"] = found.seed.astype(int), found.scored.astype(int)
    found["id"] = [Architecture.parse(a).id for a in found.arch]
    trained = pd.DataFrame(read_csv_rows(RETRAIN), columns=["id", "seed", "val_accuracy"])
    trained["val_accuracy"] = 100 * trained.val_accuracy.astype(float)
    trained["seed"] = trained.seed.astype(int)
    if trained.duplicated(["id", "seed"]).any():  # would weight one training twice
        raise SystemExit(f"{RETRAIN}: an (id, seed) row appears twice; remove the later copy")
    per_arch = trained.groupby("id").val_accuracy.agg(standalone="mean", trainings="count",
                                                      low="min", high="max")
    found = found.join(per_arch, on="id")
    found["trainings"] = found.trainings.fillna(0).astype(int)
    found["predicted"] *= 100
    print("per search and seed: the best trial by predicted accuracy (%), and its standalone "
          "validation accuracy (%, 1 epoch) over its training seeds")
    show = ["search", "seed", "scored", "wall_s", "predicted", "flops", "caveat", "id",
            "standalone", "trainings", "low", "high"]
    print(found[show].round(2).to_string(index=False))

    # how far two trainings of one network differ: the noise of one standalone number
    pairs = trained[trained.id.map(trained.id.value_counts()) > 1]
    noise = pairs.groupby("id").val_accuracy.std(ddof=1)
    if len(noise):
        print(f"\ntraining noise: SD between training seeds of one network "
              f"{(noise ** 2).mean() ** 0.5:.2f} points (pooled, {len(noise)} networks)")

    def interval(values):
        values = values.dropna()
        if len(values) < 2:
            return float("nan")
        return float(stats.t.ppf(0.975, len(values) - 1) * values.std() / len(values) ** 0.5)

    rows = []
    for name, group in found.groupby("search", sort=False):
        picks = group.standalone.dropna()
        rows.append({
            "search": name, "seeds": len(group),
            "scored": int(group.scored.median()),
            "wall_s": group.wall_s.median(), "wall_s_min": group.wall_s.min(),
            "wall_s_max": group.wall_s.max(),
            "predicted": group.predicted.median(), "predicted_min": group.predicted.min(),
            "predicted_max": group.predicted.max(),
            "distinct_picks": group.id.nunique(),
            # a pick two seeds share is one set of trainings
            "picks_trained": len(picks),
            "trainings": int(group.drop_duplicates("id").trainings.sum()),
            "standalone": picks.mean() if len(picks) else float("nan"),
            "standalone_ci95": interval(picks),
            "standalone_min": group.low.min(), "standalone_max": group.high.max()})
    table = pd.DataFrame(rows).set_index("search")
    reference = found[found.search == "evolution"].standalone.dropna()
    minus, half = [], []
    for name, group in found.groupby("search", sort=False):
        other = group.standalone.dropna()
        if name == "evolution" or len(other) < 2 or len(reference) < 2:
            minus.append(float("nan")), half.append(float("nan"))
            continue
        va, vb = reference.var() / len(reference), other.var() / len(other)
        dof = (va + vb) ** 2 / (va ** 2 / (len(reference) - 1) + vb ** 2 / (len(other) - 1))
        minus.append(other.mean() - reference.mean())
        half.append(float(stats.t.ppf(0.975, dof) * (va + vb) ** 0.5))
    table["minus_evolution"], table["minus_evolution_ci95"] = minus, half
    table = table.round(3)
    table.to_csv(SUMMARY)
    print("\nper search over its seeds (accuracies in %; predicted: median and range; "
          "standalone: mean of the seeds' picks, each averaged over its trainings, 95% "
          "t-interval half-width, range of single trainings, distinct trainings; "
          "minus_evolution: Welch, 95% half-width)")
    print(table.to_string())
    print(f"written: {SUMMARY}")
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictor", help="a predictor file (nas predictor fit)")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", type=int, default=MIXNET_S_FLOPS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/evolution-study")
    p.add_argument("--stage", choices=("search", "train", "summary"), default="summary")
    p.add_argument("--shard", default="0/1", help="I/N: this process takes every N-th job")
    p.add_argument("--searches", nargs="*", default=[],
                   help="stage train: only the picks of these searches (default: all)")
    args = p.parse_args()
    if Path(args.data).exists():  # rows name the data absolutely: a rerun from elsewhere resumes
        args.data = os.path.abspath(args.data)
    if args.stage == "summary":
        return summarize()
    import torch

    torch.set_num_threads(args.threads)
    if args.stage == "search":
        if not args.predictor:
            raise SystemExit("--stage search needs --predictor")
        run_searches(args)
    else:
        run_training(args)
    summarize()


if __name__ == "__main__":
    main()
