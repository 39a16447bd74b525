"""Study: a few-shot supernet as a predictor feature (issue 28, item 3).

    E=experiments/studies/estimators
    nas supernet train --space $E/few_shot/mixnet_300m_s1act_relu.yaml \\
        --data ../shared/data/cifar10-jpg.tar.gz --steps 800 --seed 0 -o runs/fs-relu   # and swish
    .venv/bin/python $E/few_shot.py score runs/fs-relu REF2 [REF3 ...]        # and runs/fs-swish
    .venv/bin/python $E/few_shot.py report REF2 [REF3 ...] > $E/few_shot.txt

Few-shot NAS (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021) splits the
one-shot supernet by one coarse decision into sub-supernets, each sharing weights only
among architectures that agree on it, and scores an architecture with the sub-supernet of
its own value. The split here is stage 1's first activation (``s1.b0.act``, relu | swish:
the earliest decision whose two values cannot share weights meaningfully, and one the
summary encoding does not see; 150 / 152 of the study's architectures), two
sub-supernets trained like the one-shot supernets of ``run.py`` (800 sandwich steps of 64,
seed 0), so the split doubles the supernet's training.

``score SUPERNET REF...``: every architecture of the truth (``variants.REFERENCE``) and of
the REFs that lies in the supernet's sub-space, scored as ``run.py`` scores supernets
(BatchNorm recalibrated on 2,048 training images, accuracy on the whole 5,000-image
validation carve), appended one row at a time to ``few_shot/scores_<value>.csv`` (a rerun skips
the rows written). ``report REF...``: the few-shot score's tau on the truth, raw and
standardised within each split (the two sub-supernets' accuracies need not share a scale;
mean and SD over the pool's architectures of that split, which needs no labels), beside
the one-shot supernets' (``cache.csv``, same 50; two of them averaged is the same training
compute as the two sub-supernets); then as a feature of ridge/summary (raw, with its split,
standardised) and added by rank to its out-of-fold prediction (``variants.py``'s folds),
each with the paired-bootstrap gain over ridge/summary.
"""

import csv
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata
from variants import out_of_fold, paired_gain, pool, ridge

from nas.estimators import SupernetEstimator, rank_metrics, tau_gain
from nas.train import load_supernet

HERE = Path(__file__).parent
SCORES = HERE / "few_shot"  # scores_<value>.csv, one file per sub-supernet
DECISION = "s1.b0.act"


def written() -> pd.DataFrame:
    files = sorted(SCORES.glob("scores_*.csv"))
    if not files:
        return pd.DataFrame(columns=["id", "split", "score", "seconds"])
    return pd.concat([pd.read_csv(f, dtype={"id": str}) for f in files], ignore_index=True)


def score(supernet: str, refs) -> None:
    data = pool(refs)
    run = load_supernet(supernet, device="cpu")
    estimator = SupernetEstimator([run], calib_images=2048, val_images=5000)
    space = run.supernet.space
    # the sub-space fixes the split decision: read it off any of its points
    value = data.space.choices_of(space.extreme_arch(largest=True))[DECISION]
    path = SCORES / f"scores_{value}.csv"
    new = not path.exists()
    if not new:  # a row cut short by a kill: drop it, it is scored again
        text = path.read_text()
        path.write_text(text[:text.rfind("\n") + 1])
    done = set(written().id)
    todo = [i for i in data.archs if i not in done and space.contains(data.archs[i])]
    print(f"{supernet}: {DECISION}={value}, {len(todo)} architectures to score", flush=True)
    with open(path, "a", newline="") as f:
        out = csv.writer(f)
        if new:
            out.writerow(["id", "split", "score", "seconds"])
        for n, i in enumerate(todo, 1):
            start = time.perf_counter()
            (s,) = estimator.score([data.archs[i]])
            out.writerow([i, value, s, round(time.perf_counter() - start, 2)])
            f.flush()
            if n % 10 == 0:
                print(f"  {n}/{len(todo)}", flush=True)


def report(refs) -> None:
    data = pool(refs)
    rows = written().set_index("id")
    missing = [i for i in data.archs if i not in rows.index]
    if missing:
        raise SystemExit(f"{SCORES}/scores_*.csv lack {len(missing)} architectures: run "
                         "`score` for both sub-supernets")
    few = rows["score"].to_dict()
    # The sub-supernets' accuracies need not share a scale: each split standardised on its
    # own architectures (all of the pool's: the scores need no labels)
    by_split = rows.loc[list(data.archs)].groupby("split")["score"]
    z = ((rows.loc[list(data.archs), "score"] - by_split.transform("mean"))
         / by_split.transform("std")).to_dict()
    relu = {i: float(rows.split[i] == "relu") for i in data.archs}
    truth = data.truth
    ids = list(data.ref.id)
    one_shot = pd.read_csv(HERE / "cache.csv", dtype={"id": str}).set_index("id")
    print(f"{len(ids)} truth architectures (3-seed means); {len(data.extra)} more at one seed "
          f"train each fold; split {DECISION}: "
          + ", ".join(f"{v} {c}" for v, c in rows.loc[list(data.archs), "split"]
                      .value_counts().items())
          + f"; {rows.seconds.median():.1f} s an architecture (median)")
    for name, values in [("few-shot supernet (2 sub-supernets)", [few[i] for i in ids]),
                         ("few-shot, standardised within each split", [z[i] for i in ids]),
                         ("one-shot supernet, seed 0 (cache.csv)",
                          list(one_shot.loc[ids, "supernet:cifar-800-s0"])),
                         ("one-shot supernets, seeds 0 and 1 averaged",
                          list(one_shot.loc[ids, ["supernet:cifar-800-s0",
                                                  "supernet:cifar-800-s1"]].mean(axis=1)))]:
        m = rank_metrics(values, truth)
        print(f"{name:48s} tau {m['kendall']:.3f} [{m['kendall_ci'][0]:.3f}, "
              f"{m['kendall_ci'][1]:.3f}]")
    # equal compute: two 800-step one-shot supernets averaged against two sub-supernets
    even = tau_gain([z[i] for i in ids], list(one_shot.loc[ids, ["supernet:cifar-800-s0",
                                                                 "supernet:cifar-800-s1"]]
                                              .mean(axis=1)), truth)
    print(f"  standardised few-shot minus the two one-shot supernets averaged (equal "
          f"compute): {even['gain']:+.3f} [{even['gain_ci'][0]:+.3f}, "
          f"{even['gain_ci'][1]:+.3f}] (paired bootstrap)")
    one = one_shot["supernet:cifar-800-s0"]
    for value in sorted(rows.split.unique()):
        inside = [k for k, i in enumerate(ids) if rows.split[i] == value]
        mine, theirs = ([v[ids[k]] for k in inside] for v in (few, one))
        print(f"  within {DECISION}={value} ({len(inside)}): tau "
              f"{kendalltau(mine, truth[inside])[0]:.3f}, one-shot seed 0 on the same "
              f"{kendalltau(theirs, truth[inside])[0]:.3f}")
    summary = data.summary
    base = [out_of_fold(data, summary.get, ridge, False, r) for r in range(5)]
    feature = [out_of_fold(data, lambda i: np.r_[summary[i], few[i]], ridge, False, r)
               for r in range(5)]
    rank_few = rankdata([few[i] for i in ids])
    variants = {"ridge/summary": base, "ridge/summary + few-shot score": feature,
                "ridge/summary + few-shot score and its split": [
                    out_of_fold(data, lambda i: np.r_[summary[i], few[i], relu[i]], ridge,
                                False, r) for r in range(5)],
                "ridge/summary + standardised few-shot score": [
                    out_of_fold(data, lambda i: np.r_[summary[i], z[i]], ridge, False, r)
                    for r in range(5)]}
    for w in (0.25, 0.5, 1.0):
        variants[f"ridge/summary rank + {w} x few-shot rank"] = [
            rankdata(b) + w * rank_few for b in base]
    rng = np.random.default_rng(0)
    for name, preds in variants.items():
        taus = [kendalltau(p, truth)[0] for p in preds]
        line = f"{name:48s} tau {np.mean(taus):.3f} ± {np.std(taus):.3f}"
        if name != "ridge/summary":
            line += "   gain {:+.3f} [{:+.3f}, {:+.3f}]".format(
                *paired_gain(preds, base, truth, rng))
        print(line)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "score" and len(sys.argv) >= 3:
        score(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "report":
        report(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
