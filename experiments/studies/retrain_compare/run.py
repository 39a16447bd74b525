"""Experiment: the architecture a search finds vs MixNet-S and MixNet-M, all retrained alike.

    .venv/bin/python experiments/studies/retrain_compare/run.py \
        --run runs/controllers/tpe-reward-seed0 [--epochs 1] [--seeds 0 1 2] [--data fashion-mnist]

Networks, each trained from scratch with ``nas train``'s recipe (AdamW, cosine, label
smoothing, pad-crop + flip) for the same epochs and seeds, then scored once on the
**test** split:

* ``found``: the search run's best-reward feasible trial;
* ``found<=S``: its best-reward trial with FLOPs <= MixNet-S's (the issue's comparison is
  at <= MixNet-S FLOPs); omitted when ``found`` already qualifies;
* ``mixnet_s``, ``mixnet_m``: the presets (the paper's layer tables).

Each (network, seed) trains into ``--out``/DATA-EPOCHS-RES/NAME-seedS; a rerun skips
finished ones and resumes a killed one. Raw rows: ``retrain_<data>[_<tag>].csv``;
the table is mean +- std.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

import nas
from nas.cost import count_cost
from nas.search import open_run
from nas.train import RetrainConfig, retrain

RESULTS = Path(__file__).parent


def candidates(run_dir: str):
    """(name, canonical arch) of the networks to compare."""
    run = open_run(run_dir)
    s_flops = count_cost(nas.load_space("mixnet_s").sample(0)).flops
    best = run.best("reward")
    out = [("found", best["arch"])]
    if best["flops"] > s_flops:
        small = [r for r in run.feasible if r["flops"] <= s_flops]
        if small:
            out.append(("found<=S", max(small, key=lambda r: r["reward"])["arch"]))
    for preset in ("mixnet_s", "mixnet_m"):
        out.append((preset, str(nas.load_space(preset).sample(0))))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a nas search run directory")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--resolution", type=int, default=0)
    p.add_argument("--out", default="runs/retrain")
    p.add_argument("--tag", default="", help="appended to the results' file name, so a "
                   "second search on the same data does not overwrite the first's")
    args = p.parse_args()
    torch.set_num_threads(2)
    data_name = Path(args.data).name.split(".")[0]
    rows = []
    for name, arch in candidates(args.run):
        for seed in args.seeds:
            # the settings are in the name: a finished run is reused only for the same ones
            out = (Path(args.out) / f"{data_name}-{args.epochs:g}ep-{args.resolution}px" /
                   f"{name.replace('<=', '_le_')}-seed{seed}")
            start = time.perf_counter()
            if (out / "metrics.json").exists():
                metrics = json.loads((out / "metrics.json").read_text())
            else:
                config = RetrainConfig(arch=arch, data=args.data, epochs=args.epochs, seed=seed,
                                       resolution=args.resolution)
                metrics = retrain(config, out, resume=(out / "checkpoint.pt").exists(),
                                  progress=False)
            # the table compares architectures at the space's target input (224²)
            target = metrics.get("target", metrics)
            rows.append({"network": name, "seed": seed, "test_accuracy": metrics["test_accuracy"],
                         "val_accuracy": metrics["val_accuracy"], "flops": target["flops"],
                         "params": target["params"], "latency_ms": target["latency_ms"],
                         "epochs": metrics["epochs"], "arch": target["arch"],
                         "wall_s": round(time.perf_counter() - start, 1)})
            print({k: v for k, v in rows[-1].items() if k != "arch"}, flush=True)
    RESULTS.mkdir(exist_ok=True)
    table = pd.DataFrame(rows)
    tag = f"_{args.tag}" if args.tag else ""
    table.to_csv(RESULTS / f"retrain_{data_name}{tag}.csv", index=False)
    agg = table.groupby("network", sort=False).agg(
        acc_mean=("test_accuracy", "mean"), acc_std=("test_accuracy", "std"),
        flops=("flops", "first"), params=("params", "first"), latency_ms=("latency_ms", "mean"))
    print(f"\n{args.data}, {args.epochs:g} epoch(s), seeds {args.seeds}, test split")
    print("| network | FLOPs (224²) | params | latency ms | test accuracy (mean ± std) |")
    print("|---|---|---|---|---|")
    for name, r in agg.iterrows():
        print(f"| {name} | {r.flops / 1e6:.0f}M | {r.params / 1e6:.2f}M | {r.latency_ms:.1f} | "
              f"{100 * r.acc_mean:.2f} ± {100 * r.acc_std:.2f} |")


if __name__ == "__main__":
    main()
