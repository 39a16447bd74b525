"""Study: the network a search finds vs MixNet-S and vs the best of 10 random architectures,
all at <= MixNet-S's FLOPs, retrained alike with several seeds and scored on the test split.

    .venv/bin/python experiments/studies/found_vs_mixnet/run.py \\
        --data ../shared/data/cifar10-jpg.tar.gz [--found NAME=RUN ...] [--epochs 3] \\
        [--seeds 0 1 2] [--random 10] [--out runs/found-vs-mixnet] [--shard I/N]

Networks: ``mixnet_s`` (the paper's layer table), ``randomI`` (I = 0..9: architectures of
mixnet_300m drawn uniformly with a fixed seed, kept when their FLOPs are <= MixNet-S's), and
each ``--found NAME=RUN``: the network ``nas export RUN --best`` would export (the run's
reranked winner when it has one, else its best reward), which must also be <= MixNet-S's FLOPs.
Each is trained from scratch with ``nas train``'s recipe (AdamW 2e-3, cosine, label smoothing
0.1, pad-crop and flip, batch 128) for ``--epochs`` on the training split less the seeded
validation carve, then scored once on the **test** split. Every (network, seed) row is
appended to ``rows.csv`` beside this script as it finishes (under a file lock); rerunning
skips finished rows and resumes a killed training, so networks can be added later (the found
one after its search). ``--shard I/N`` (as in ``nas reference``): process ``I`` of ``N``
takes every N-th (seed, network) job, so N processes share the cores; give every shard the
same other arguments (the job list is numbered from them). ``--summary`` prints the table
and the comparisons from ``rows.csv`` without training.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pandas as pd
import torch

import nas
from nas.files import append_csv_row, read_csv_rows
from nas.reference import shard_indices
from nas.train import RetrainConfig, retrain

HERE = Path(__file__).parent
ROWS = HERE / "rows.csv"


def networks(found, n_random: int, seed: int = 0):
    """``[(name, canonical arch)]``: MixNet-S, the found ones, the random draws."""
    from nas.search import open_run

    s = nas.load_space("mixnet_s").sample(0)
    limit = nas.count_cost(s).flops
    out = [("mixnet_s", str(s))]
    for item in found:
        name, _, run = item.partition("=")
        row = open_run(run).best("reward")  # the reranked winner when the run has one
        if row["flops"] > limit:
            raise SystemExit(f"{name}: {row['flops']:,} FLOPs > MixNet-S's {limit:,}")
        out.append((name, row["arch"]))
    space, rng, drawn = nas.load_space("mixnet_300m"), random.Random(seed), 0
    while drawn < n_random:
        arch = space.sample(rng)
        if nas.count_cost(arch).flops <= limit:
            out.append((f"random{drawn}", str(arch)))
            drawn += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--found", nargs="*", default=[], metavar="NAME=RUN")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--random", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/found-vs-mixnet")
    p.add_argument("--shard", default="0/1", help="I/N: this process takes every N-th job")
    p.add_argument("--summary", action="store_true", help="only summarize rows.csv")
    args = p.parse_args()
    if args.summary:
        return summarize(pd.DataFrame(read_csv_rows(ROWS)))
    torch.set_num_threads(args.threads)
    jobs = [(seed, name, arch) for seed in args.seeds
            for name, arch in networks(args.found, args.random)]
    # MixNet-S and the found networks for every seed first, then the random draws: a study
    # cut short has the comparison the issue asks for with all its seeds
    jobs.sort(key=lambda job: job[1].startswith("random"))
    for index in shard_indices(args.shard, len(jobs)):
        seed, name, arch = jobs[index]
        # rows hold the network as trained (the data's input size and classes): compare
        # everything after the input spec, so a name reused for another network trains anew
        done = {(r["network"], int(r["seed"]), r["arch"].split("/", 1)[1])
                for r in read_csv_rows(ROWS) if r["data"] == args.data}
        if (name, seed, arch.split("/", 1)[1]) in done:
            continue
        out = Path(args.out) / f"{name}-seed{seed}"
        start = time.perf_counter()
        config = RetrainConfig(arch=arch, data=args.data, epochs=args.epochs, seed=seed)
        resume = (out / "checkpoint.pt").exists()
        m = retrain(None if resume else config, out, resume=resume, progress=False)
        row = {"network": name, "seed": seed, "test_accuracy": m["test_accuracy"],
               "val_accuracy": m["val_accuracy"], "flops": m["flops"], "params": m["params"],
               "epochs": m["epochs"], "data": args.data, "arch": m["arch"],
               "wall_s": round(time.perf_counter() - start, 1)}
        append_csv_row(ROWS, row)
        print({k: v for k, v in row.items() if k != "arch"}, flush=True)
    summarize(pd.DataFrame(read_csv_rows(ROWS)))


def summarize(table: pd.DataFrame) -> None:
    """Per network: test accuracy per seed, mean and std; each found network minus MixNet-S
    seed by seed, with a t-interval over the seeds both have; and the best of the random
    draws, chosen by mean *validation* accuracy (the test split picks nothing)."""
    from scipy import stats

    if table.empty:
        print("no finished rows yet")
        return
    for column in ("test_accuracy", "val_accuracy", "flops", "params"):
        table[column] = table[column].astype(float)
    table["seed"] = table.seed.astype(int)
    twice = table.duplicated(["network", "seed"])
    if twice.any():  # would weight one seed twice in every mean below
        raise SystemExit(f"{ROWS}: {int(twice.sum())} (network, seed) rows appear twice; "
                         "remove the later copies")
    test = 100 * table.pivot_table(index="network", columns="seed", values="test_accuracy")
    agg = 100 * table.groupby("network").agg(test=("test_accuracy", "mean"),
                                             test_std=("test_accuracy", "std"),
                                             val=("val_accuracy", "mean"))
    # as trained: at the data's resolution and classes (the budget is at the space's 224²)
    agg["MFLOPs_trained"] = table.groupby("network").flops.first() / 1e6
    agg["Mparams_trained"] = table.groupby("network").params.first() / 1e6
    out = test.join(agg).sort_values("test", ascending=False)
    print("test accuracy (%) per seed; mean, std over seeds; mean validation accuracy")
    print(out.round(2).to_string())
    randoms = agg[agg.index.str.startswith("random")]
    best = randoms.val.idxmax() if len(randoms) else None
    if best is not None:
        print(f"best of {len(randoms)} random draws by validation accuracy: {best}")
    for name in agg.index:
        if name == "mixnet_s" or name.startswith("random") or "mixnet_s" not in test.index:
            continue
        for rival in ["mixnet_s"] + ([best] if best else []):
            diff = (test.loc[name] - test.loc[rival]).dropna()
            if len(diff) == 0:
                continue
            line = f"{name} - {rival}: " + ", ".join(f"seed {s} {d:+.2f}" for s, d in diff.items())
            if len(diff) > 1:
                half = stats.t.ppf(0.975, len(diff) - 1) * diff.std() / len(diff) ** 0.5
                line += (f"; mean {diff.mean():+.2f} ± {diff.std():.2f} (95% CI "
                         f"{diff.mean() - half:+.2f} to {diff.mean() + half:+.2f})")
            print(line + " points")


if __name__ == "__main__":
    main()
