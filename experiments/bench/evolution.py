"""Benchmark: the evolutionary search's candidates per second on one core, where its time
goes, and the predictor's batch scoring against per-architecture scoring and against a
baseline revision.

    .venv/bin/python experiments/bench/evolution.py --predictor P.json \\
        [--rounds 5] [--candidates 100000] [--core 0] [--baseline ffc62a1]

Part 1, the figure: :func:`nas.search.evolution.evolve` on ``mixnet_300m`` at MixNet-S's
251.7M FLOPs (accuracy alone as the reward), the predictor's defaults of ``nas search
--sampler evolution`` (population 500, parents 0.25, mutation 0.1), ``--candidates``
scored. Each run is a fresh process pinned to ``--core`` with one thread for torch, numpy
and BLAS, and a seed no other run used, so every run meets the space's rows for the first
time, as a ``nas search`` does. Three variants per round, their order rotating between
rounds so that load from other processes hits each alike:

* ``batched``: each generation's children scored in one call (what the search does);
* ``per-arch``: the same evolution scoring one architecture per call, as an Optuna trial
  does (the baseline);
* ``table``: ``batched``, plus every candidate within the FLOPs budget priced by a latency
  table of every unit of the space (made-up entries: a table's speed does not depend on
  them) with ``gamma = 0.001`` and a latency budget.

Printed per variant: the median over rounds of CPU seconds (``time.process_time``: what
one core gives) and wall seconds, candidates scored per CPU second, and each phase's share
of the time (space ops: sample, mutate, crossover; ``count_cost``; latency; the
estimator; selection of parents, front and pool), with the ratio per-arch / batched
within each round. Each round's line also gives the best reward found and its FLOPs (the
predicted accuracy for ``batched`` and ``per-arch``; less 0.001 per ms for ``table``).

Part 2: the predictor alone, this tree against ``--baseline`` (the revision before the
encoding remembered each row's sums; its ``nas`` imported under another name from ``git
archive``, as ``arch_ops.py`` does), in one process on one core: per round a space loaded
afresh (untimed) and 10,000 architectures never scored before, scored in batches of 500;
the trees alternate. Printed: architectures/s of each (median) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 251_736_960  # MixNet-S at 224x224
VARIANTS = ("batched", "per-arch", "table")
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}


def child(args) -> None:
    """One evolution in this process: prints its figures as one JSON line."""
    import nas
    from nas.estimators import PredictorEstimator
    from nas.search.evolution import evolve

    space = nas.load_space("mixnet_300m")
    est = PredictorEstimator(args.predictor)
    score = est.score
    if args.variant == "per-arch":
        def score(archs):
            return [est.score([a])[0] for a in archs]
    options = {}
    if args.variant == "table":
        from nas.latency import LatencyTable
        from nas.latency.units import space_units

        keys = sorted(space_units(space))
        table = LatencyTable("torch", {k: 0.05 + (i % 17) / 100 for i, k in enumerate(keys)})
        options = dict(latency=table.predict, gamma=0.001, latency_budget_ms=40.0)
    cpu, wall = time.process_time(), time.perf_counter()
    evo = evolve(space, score, BUDGET, population=500, candidates=args.candidates,
                 seed=args.seed, **options)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"variant": args.variant, "seed": args.seed, "cpu_s": cpu, "wall_s": wall,
                      "scored": evo.scored, "generated": evo.generated,
                      "distinct": evo.distinct, "over": evo.over_budget,
                      "phases": evo.seconds, "best": evo.population[0].reward,
                      "best_flops": evo.population[0].flops}))


def run_child(args, variant: str, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--seed", str(seed),
           "--predictor", args.predictor, "--candidates", str(args.candidates),
           "--core", str(args.core)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, **ONE_THREAD})
    return json.loads(out.stdout.strip().splitlines()[-1])


def part1(args) -> None:
    rows = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        for variant in order:
            row = run_child(args, variant, seed=1000 + r)
            rows[variant].append(row)
            print(f"round {r} {variant:8s} cpu {row['cpu_s']:6.1f} s  wall {row['wall_s']:6.1f} s"
                  f"  {row['scored'] / row['cpu_s']:7,.0f} candidates/s (CPU)  best "
                  f"{row['best']:.4f} at {row['best_flops'] / 1e6:.1f}M", flush=True)
    print(f"\n{args.candidates:,} candidates, mixnet_300m, budget {BUDGET:,} FLOPs, one core "
          f"(core {args.core}), medians of {args.rounds} rounds:")
    print(f"{'variant':9s} {'CPU s':>7s} {'wall s':>7s} {'cand/s':>8s}  share of the time: "
          "space ops, count_cost, latency, estimator, selection, other  generated  distinct")
    phases = ("space", "cost", "latency", "score", "select")
    for variant in VARIANTS:
        rs = rows[variant]
        # shares of the evolution's wall time (timed with perf_counter inside it: a CPU
        # clock costs ~4 us a call); other processes' load spreads over the phases alike
        share = {k: statistics.median(r["phases"][k] / r["phases"]["total"] for r in rs)
                 for k in phases}
        share["other"] = 1 - sum(share.values())
        cpu = statistics.median(r["cpu_s"] for r in rs)
        print(f"{variant:9s} {cpu:7.1f} {statistics.median(r['wall_s'] for r in rs):7.1f} "
              f"{statistics.median(r['scored'] / r['cpu_s'] for r in rs):8,.0f}  "
              + ", ".join(f"{v:.0%}" for v in share.values())
              + f"  {statistics.median(r['generated'] for r in rs):,.0f}"
              f"  {statistics.median(r['distinct'] for r in rs):,.0f}")
    ratios = [p["cpu_s"] / b["cpu_s"] for p, b in zip(rows["per-arch"], rows["batched"])]
    table = [t["cpu_s"] / b["cpu_s"] for t, b in zip(rows["table"], rows["batched"])]
    print(f"per-arch / batched CPU time: median {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); table / batched: "
          f"{statistics.median(table):.2f}")
    best = [r["best"] for r in rows["batched"]]
    print(f"best predicted accuracy found (batched, {len(best)} seeds): "
          f"{min(best):.4f}-{max(best):.4f}")


def import_baseline(revision: str, where: Path):
    sys.path.insert(0, str(ROOT / "experiments" / "bench"))
    from arch_ops import import_baseline as load

    return load(revision, where)


def part2(args) -> None:
    import nas

    os.sched_setaffinity(0, {args.core})
    with tempfile.TemporaryDirectory() as tmp:
        base = import_baseline(args.baseline, Path(tmp))
        trees = {"this tree": nas, args.baseline: base}
        import importlib

        estimators = {name: importlib.import_module(pkg.__name__ + ".estimators")
                      .PredictorEstimator(args.predictor) for name, pkg in trees.items()}
        speeds = {name: [] for name in trees}
        for r in range(args.rounds):
            names = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in names:
                pkg = trees[name]
                space = pkg.load_space("mixnet_300m")  # afresh: its rows not yet met
                rng = random.Random(5000 + r)
                archs = [space.sample(rng) for _ in range(10_000)]
                start = time.process_time()
                for i in range(0, len(archs), 500):
                    estimators[name].score(archs[i:i + 500])
                speeds[name].append(len(archs) / (time.process_time() - start))
        ratio = [a / b for a, b in zip(speeds["this tree"], speeds[args.baseline])]
        print(f"\npredictor (ridge, summary encoding), 10,000 architectures never scored "
              f"before per round, batches of 500, one core, medians of {args.rounds} rounds:")
        for name, s in speeds.items():
            print(f"  {name:10s} {statistics.median(s):8,.0f} architectures/s")
        print(f"  this tree / {args.baseline}: {statistics.median(ratio):.2f}x the speed "
              f"(range {min(ratio):.2f}-{max(ratio):.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictor", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--candidates", type=int, default=100_000)
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--baseline", default="ffc62a1")
    p.add_argument("--child", choices=VARIANTS, dest="variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-baseline", action="store_true", help="part 1 only")
    args = p.parse_args()
    if args.variant:
        os.sched_setaffinity(0, {args.core})
        return child(args)
    print(f"started {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)", flush=True)
    part1(args)
    if not args.skip_baseline:
        part2(args)


if __name__ == "__main__":
    main()
