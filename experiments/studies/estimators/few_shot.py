"""Study: a few-shot supernet as a predictor feature (issue 28, item 3).

    E=experiments/studies/estimators
    nas supernet train --space $E/few_shot/mixnet_300m_s1act_relu.yaml \\
        --data ../shared/data/cifar10-jpg.tar.gz --steps 800 --seed 0 -o runs/fs-relu   # and swish
    .venv/bin/python $E/few_shot.py score runs/fs-relu REF2 [REF3 ...]        # and runs/fs-swish
    .venv/bin/python $E/few_shot.py report REF2 [REF3 ...] > $E/few_shot.txt

(and the same with ``--seed 1`` for a second pair of sub-supernets).

Few-shot NAS (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021) splits the
one-shot supernet by one coarse decision into sub-supernets, each sharing weights only
among architectures that agree on it, and scores an architecture with the sub-supernet of
its own value. The split here is stage 1's first activation (``s1.b0.act``, relu | swish):
the space's earliest decision, so every later shared layer is trained on the activations
of one value only; the summary encoding does not see it; it halves the study's
architectures (150 / 152). Each pair of sub-supernets is trained like the one-shot
supernets of ``run.py`` (800 sandwich steps of 64; pairs with seeds 0 and 1), so a pair
costs twice one supernet's training.

``score SUPERNET REF...`` scores every architecture of the truth (``variants.REFERENCE``,
"the 50" below) and of the REFs that lies in the supernet's sub-space, as ``run.py``
scores supernets: BatchNorm recalibrated on 2,048 training images, accuracy on the whole
5,000-image validation carve. Rows go to ``few_shot/scores_<value>_seed<seed>.csv`` one
at a time; a rerun skips those written, and refuses a file another supernet wrote.

``report REF...`` prints, on the 50:

- each pair's tau, raw and standardised within each split. The two sub-supernets'
  accuracies need not share a scale; each split is standardised by its mean and SD over
  the pool's architectures of that split, which needs no labels;
- the one-shot supernets' tau (``cache.csv``); two of them averaged cost the same
  training as one pair, and each pair's paired-bootstrap gain over them;
- a control: every score standardised per split on the 50 alone (the one-shot supernets
  scored nothing else), to tell the split's training from the standardisation;
- tau within each split;
- the few-shot score (averaged over pairs) as a feature of ridge/summary (raw, with its
  split, standardised) and added by rank to ridge's out-of-fold prediction
  (``variants.py``'s folds), each with the paired-bootstrap gain over ridge/summary.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata
from variants import REFERENCE, out_of_fold, pool, print_gains, ridge

from nas.estimators import SupernetEstimator, rank_metrics, tau_gain
from nas.files import append_each, read_csv_rows
from nas.reference import reference_config
from nas.runs import supernet_checkpoint
from nas.train import load_supernet

HERE = Path(__file__).parent
SCORES = HERE / "few_shot"  # scores_<value>_seed<seed>.csv, one per sub-supernet
DECISION = "s1.b0.act"


def written() -> pd.DataFrame:
    """Every score row on file, checked whole (one per architecture and seed)."""
    rows = pd.DataFrame([r for f in sorted(SCORES.glob("scores_*.csv"))
                         for r in read_csv_rows(f)],
                        columns=["id", "split", "seed", "supernet", "score", "seconds"])
    rows = rows.astype({"seed": int, "score": float, "seconds": float})
    if rows[["id", "split", "score"]].isna().any().any() or rows.duplicated(["id", "seed"]).any():
        raise SystemExit(f"{SCORES}/scores_*.csv: a row is incomplete or repeated")
    return rows


def score(supernet: str, refs) -> None:
    data = pool(refs)
    run = load_supernet(supernet, device="cpu")
    truth = reference_config(REFERENCE)
    if (run.config.split_seed, run.config.val_fraction) != (truth.split_seed,
                                                            truth.val_fraction):
        raise SystemExit(f"{supernet} carved another validation split than the reference: "
                         "its scores would be measured on images it trained on")
    estimator = SupernetEstimator([run], calib_images=2048, val_images=5000)
    space = run.supernet.space
    # the sub-space fixes the split decision: read it off any of its points
    value = data.space.choices_of(space.extreme_arch(largest=True))[DECISION]
    seed, name = run.config.seed, supernet_checkpoint(supernet).resolve().parent.name
    path = SCORES / f"scores_{value}_seed{seed}.csv"
    rows = read_csv_rows(path)
    others = {r["supernet"] for r in rows} - {name}
    if others:  # a retrained or another supernet must not continue these rows
        raise SystemExit(f"{path} holds the scores of supernet {', '.join(sorted(others))}, "
                         f"not {name}: move it away first")
    todo = [i for i in data.archs if space.contains(data.archs[i])]
    print(f"{supernet}: {DECISION}={value}, {len(todo) - len(rows)} of {len(todo)} "
          "architectures to score", flush=True)

    def scored(i):
        start = time.perf_counter()
        (s,) = estimator.score([data.archs[i]])
        if len(rows) % 10 == 9:
            print(f"  {len(rows) + 1}/{len(todo)}", flush=True)
        return {"id": i, "split": value, "seed": seed, "supernet": name, "score": s,
                "seconds": round(time.perf_counter() - start, 2)}

    append_each(path, todo, lambda i: i, scored, rows, lambda r: r["id"])


def standardised(rows: pd.DataFrame, ids) -> dict:
    """``rows``' scores of ``ids``, each split's standardised on that split's architectures
    among ``ids`` (mean 0, SD 1): the sub-supernets' accuracies need not share a scale, and
    this needs no labels."""
    frame = rows.loc[ids]
    by_split = frame.groupby("split")["score"]
    return ((frame["score"] - by_split.transform("mean")) / by_split.transform("std")).to_dict()


def report(refs) -> None:
    data = pool(refs)
    rows = written()
    everything, ids, truth = list(data.archs), list(data.ref.id), data.truth
    seeds = sorted(rows.seed.unique())
    per_seed = {}
    for seed in seeds:
        mine = rows[rows.seed == seed].set_index("id")
        missing = [i for i in everything if i not in mine.index]
        if missing:
            raise SystemExit(f"{SCORES}/scores_*_seed{seed}.csv lack {len(missing)} "
                             "architectures: run `score` for both sub-supernets of that seed")
        per_seed[seed] = mine
    split = per_seed[seeds[0]]["split"]
    raw = {i: np.mean([per_seed[s].score[i] for s in seeds]) for i in everything}
    z_seed = {s: standardised(per_seed[s], everything) for s in seeds}
    z = {i: np.mean([z_seed[s][i] for s in seeds]) for i in everything}
    relu = {i: float(split[i] == "relu") for i in everything}
    one_shot = pd.read_csv(HERE / "cache.csv", dtype={"id": str}).set_index("id").loc[ids]
    one_shot = one_shot.assign(split=split.loc[ids])
    both = ["supernet:cifar-800-s0", "supernet:cifar-800-s1"]
    one_avg = one_shot[both].mean(axis=1)
    print(f"{len(ids)} truth architectures (3-seed means); {len(data.extra)} more at one seed "
          f"train each fold; split {DECISION}: "
          + ", ".join(f"{v} {c}" for v, c in split.loc[everything].value_counts().items())
          + f"; sub-supernet seeds {', '.join(map(str, seeds))}; "
          f"{rows.seconds.median():.1f} s an architecture (median)")
    alone = {}
    for seed in seeds:
        alone[f"few-shot, seed {seed}, raw"] = [per_seed[seed].score[i] for i in ids]
        alone[f"few-shot, seed {seed}, standardised per split"] = [z_seed[seed][i]
                                                                  for i in ids]
    if len(seeds) > 1:
        alone["few-shot, both seeds' standardised averaged"] = [z[i] for i in ids]
    alone["one-shot, seed 0 (cache.csv)"] = list(one_shot[both[0]])
    alone["one-shot, seed 1 (cache.csv)"] = list(one_shot[both[1]])
    alone["one-shot, seeds 0 and 1 averaged"] = list(one_avg)
    for name, values in alone.items():
        m = rank_metrics(values, truth)
        print(f"{name:48s} tau {m['kendall']:.3f} [{m['kendall_ci'][0]:.3f}, "
              f"{m['kendall_ci'][1]:.3f}]")
    for seed in seeds:
        # equal compute: two 800-step sub-supernets against two one-shot supernets averaged
        even = tau_gain([z_seed[seed][i] for i in ids], list(one_avg), truth)
        print(f"  seed {seed} standardised minus the two one-shot averaged (equal compute): "
              f"{even['gain']:+.3f} [{even['gain_ci'][0]:+.3f}, {even['gain_ci'][1]:+.3f}]")
    # control: is it the split's training or only the standardisation? Both standardised on
    # the truth's 50 alone (the one-shot supernets scored nothing else)
    control = {f"few-shot, seed {seed}": standardised(per_seed[seed], ids) for seed in seeds}
    control |= {f"one-shot, seed {k}": standardised(one_shot.assign(score=one_shot[c]), ids)
                for k, c in enumerate(both)}
    control["one-shot, seeds averaged"] = standardised(one_shot.assign(score=one_avg), ids)
    print("  standardised per split on the truth's 50 alone: " + "; ".join(
        f"{k} {kendalltau([v[i] for i in ids], truth)[0]:.3f}" for k, v in control.items()))
    for value in sorted(split.unique()):
        inside = [k for k, i in enumerate(ids) if split[i] == value]
        line = f"  within {DECISION}={value} ({len(inside)}): tau"
        for seed in seeds:
            scores = [per_seed[seed].score[ids[k]] for k in inside]
            line += f" seed {seed} {kendalltau(scores, truth[inside])[0]:.3f},"
        line += (" one-shot seed 0 on the same "
                 f"{kendalltau(one_shot[both[0]].iloc[inside], truth[inside])[0]:.3f}")
        print(line)
    summary = data.summary
    base = [out_of_fold(data, summary.get, ridge, False, r) for r in range(5)]
    features = {"+ few-shot score": lambda i: np.r_[summary[i], raw[i]],
                "+ few-shot score and its split": lambda i: np.r_[summary[i], raw[i], relu[i]],
                "+ standardised few-shot score": lambda i: np.r_[summary[i], z[i]]}
    variants = {"ridge/summary": base}
    for name, f in features.items():
        variants[f"ridge/summary {name}"] = [out_of_fold(data, f, ridge, False, r)
                                             for r in range(5)]
    rank_few = rankdata([z[i] for i in ids])
    for w in (0.25, 0.5, 1.0):
        variants[f"ridge/summary rank + {w} x standardised rank"] = [
            rankdata(b) + w * rank_few for b in base]
    print_gains(variants, truth)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "score" and len(sys.argv) >= 3:
        score(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "report":
        report(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
