"""Experiment: what moves the supernet's rank correlation with standalone training.

    .venv/bin/python experiments/studies/rank_factors/run.py [--archs 30] [--runs runs/rank]

One ``nas diagnose`` per variant, on the same 30 architectures (seed 0, 80-100% of the
300M budget) and the same standalone results: each architecture trained alone for 150
steps (batch 64, 10,000 training images, validation accuracy on the supernet's held-out
split). Those standalone runs depend only on the recipe, seed and split, which every
variant shares, so they are trained once and copied into each diagnosis (from
``--standalone``, an earlier diagnosis with the same recipe, when given).

Variants (Fashion-MNIST 28x28, AdamW, all seed 0):

* ``sandwich-200``: the default supernet of ``nas search`` (200 sandwich steps: largest,
  smallest and 2 random subnets per step, in-place distillation);
* ``uniform-800`` and ``budget-800``: single-path rules at about the same compute (800
  steps of one subnet each, a random one or one within +-20% of 300M FLOPs, vs 200 steps
  of 4; the sandwich's largest subnet makes its steps somewhat dearer);
* ``sandwich-800``: 4x the compute of the default;
* ``sandwich-800-bn20``: the same supernet, BN recalibrated on 20 batches instead of 4;
* ``sandwich-800-bn20-val6000``: and scored on the whole validation split (6,000 images)
  instead of the search's default 1,000 (binomial noise ~1.4 points at 70%).

Rerunning continues where it stopped. Writes ``rank_factors.csv`` and each
variant's per-arch rows to ``diagnose_<variant>.csv``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from nas.diagnose import DiagnoseConfig, diagnose
from nas.search import SearchConfig, run_search
from nas.train import TrainConfig, train_supernet

RESULTS = Path(__file__).parent
BUDGET = 300_000_000
# name: (supernet training settings, BN recalibration batches, validation images scored)
VARIANTS = {
    "sandwich-200": (dict(sampler="sandwich", steps=200), 4, 1000),
    "uniform-800": (dict(sampler="uniform", steps=800), 4, 1000),
    "budget-800": (dict(sampler="budget", steps=800, budget=BUDGET), 4, 1000),
    "sandwich-800": (dict(sampler="sandwich", steps=800), 4, 1000),
    "sandwich-800-bn20": (dict(sampler="sandwich", steps=800), 20, 1000),
    "sandwich-800-bn20-val6000": (dict(sampler="sandwich", steps=800), 20, 6000),
}


def supernet(runs: Path, settings: dict) -> Path:
    """Train (or finish training) the supernet of ``settings``; its checkpoint path."""
    name = f"sn-{settings['sampler']}-{settings['steps']}"
    run = runs / name
    checkpoint = run / "supernet.pt"
    resume = checkpoint.exists()
    last = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"] if resume else 0
    if last < settings["steps"]:
        train_supernet(None if resume else TrainConfig(checkpoint_every=100, **settings), run,
                       resume=resume, progress=False)
    return run / "supernet.pt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--runs", default="runs/rank")
    p.add_argument("--standalone", default="", help="an earlier diagnosis dir to copy the "
                   "standalone results from (same recipe, seed and split)")
    args = p.parse_args()
    torch.set_num_threads(2)
    runs = Path(args.runs)
    recipe = DiagnoseConfig(archs=args.archs, steps=150, batch_size=64, train_subset=10_000)
    shared = Path(args.standalone) / "archs" if args.standalone else None
    rows = []
    for name, (settings, bn, val_images) in VARIANTS.items():
        start = time.perf_counter()
        checkpoint = supernet(runs, settings)
        run = runs / f"search-{name}"
        # diagnose reads the budget, scoring settings and supernet from a search run: a
        # one-trial search makes one (the trial itself does not matter)
        if not (run / "config.json").exists():
            run_search(SearchConfig(budget=BUDGET, trials=1, supernet=str(checkpoint),
                                    recalibration_batches=bn, val_images=val_images),
                       run, progress=False,
                       log=lambda m: None)
        out = runs / f"diagnose-{name}"
        if shared is not None and shared.is_dir():
            shutil.copytree(shared, out / "archs", dirs_exist_ok=True)
        try:
            summary = diagnose(run, out, recipe, progress=False, log=lambda m: None)
        except Exception as e:  # report it, go on with the other variants
            print(f"{name}: failed: {e.__class__.__name__}: {e}", flush=True)
            continue
        shared = out / "archs"  # later variants reuse what this one trained
        shutil.copy(out / "diagnose.csv", RESULTS / f"diagnose_{name}.csv")
        rows.append({"variant": name, "supernet_steps": settings["steps"],
                     "bn_batches": bn, "val_images": val_images, "kendall": summary.kendall,
                     "spearman": summary.spearman, "kendall_ci": list(summary.kendall_ci),
                     "spearman_ci": list(summary.spearman_ci),
                     "wall_s": round(time.perf_counter() - start)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "rank_factors.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
