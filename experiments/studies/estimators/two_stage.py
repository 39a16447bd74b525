"""Study: the predictor and one standalone training of each candidate, by rank (issue 28,
item 3).

    .venv/bin/python experiments/studies/estimators/two_stage.py REF2 [REF3 ...] \\
        > experiments/studies/estimators/two_stage.txt          # about a minute

The one command's last stage retrains its best few candidates standalone; this asks how
well such a second stage ranks when its one training is averaged by rank with the
predictor's score (equal weights, fixed before looking). No new training: each of the
truth's seeds in turn plays the fresh training, and the mean of the other two is the truth
(a 2-seed truth, so lower ceilings than the committed 3-seed one). The predictor is
ridge/summary out of fold as in ``variants.py`` (5 folds x 5 repeats, each fold trained on
the other 40 at their 3-seed means plus every architecture of REF2, REF3, ...): it never
sees the architecture it predicts, and the seed playing the fresh training is never in that
architecture's truth. Gains are paired bootstraps over the 50 architectures (``variants``).
Then, with ``reference_cifar10_seed3`` (the truth's architectures trained at a fourth seed),
the same against the committed 3-seed truth, on the architectures it holds so far, with
every score beside its id in ``two_stage_scores.csv`` (the predictor's from the first
repeat's folds).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata
from variants import REFERENCE, out_of_fold, paired_gain, pool, ridge

OUT = Path(__file__).with_name("two_stage_scores.csv")


def main() -> None:
    data = pool(sys.argv[1:])
    rows = pd.read_csv(f"{REFERENCE}/rows.csv", dtype={"id": str})
    seeds = rows.pivot(index="id", columns="seed", values="val_accuracy").loc[data.ref.id]
    preds = [out_of_fold(data, data.summary.get, ridge, False, r) for r in range(5)]
    rng = np.random.default_rng(0)
    print(f"{len(data.ref)} architectures of the truth; predictor ridge/summary trained on "
          f"{len(data.ref) - len(data.ref) // 5 + len(data.extra)} a fold: "
          f"{' '.join(sys.argv[1:])}")
    print(f"predictor against the 3-seed truth: tau "
          f"{np.mean([kendalltau(p, data.truth)[0] for p in preds]):.3f}")
    for k in seeds.columns:
        rest = [s for s in seeds.columns if s != k]
        truth = seeds[rest].mean(axis=1).to_numpy()
        fresh = seeds[k].to_numpy()
        mixed = [rankdata(p) + rankdata(fresh) for p in preds]
        ceiling_pair = kendalltau(seeds[rest[0]], seeds[rest[1]])[0]
        print(f"seed {k} as the fresh training, seeds {rest} as the truth (they agree at "
              f"tau {ceiling_pair:.3f}):")
        print(f"  predictor alone            tau "
              f"{np.mean([kendalltau(p, truth)[0] for p in preds]):.3f}")
        print(f"  the fresh training alone   tau {kendalltau(fresh, truth)[0]:.3f}")
        print("  rank mean of the two       tau {:.3f}   gain over the predictor "
              "{:+.3f} [{:+.3f}, {:+.3f}]".format(
                  np.mean([kendalltau(m, truth)[0] for m in mixed]),
                  *paired_gain(mixed, preds, truth, rng)))
    fourth = f"{REFERENCE}_seed3/rows.csv"  # the truth's architectures at a fourth seed
    try:
        fresh = pd.read_csv(fourth, dtype={"id": str}).set_index("id")["val_accuracy"]
    except FileNotFoundError:
        return
    held = data.ref.id.isin(fresh.index).to_numpy()
    print(f"{fourth}: {held.sum()} of the {len(held)} architectures trained at seed 3, "
          "against the committed 3-seed truth (its ceiling on any ranker: tau 0.81)"
          + ("" if held.all() else " (a partial subset: a lead only)"))
    truth, seen = data.truth[held], fresh.loc[data.ref.id[held]].to_numpy()
    part = [p[held] for p in preds]
    mixed = [rankdata(p) + rankdata(seen) for p in part]
    print(f"  predictor alone            tau "
          f"{np.mean([kendalltau(p, truth)[0] for p in part]):.3f}")
    print(f"  the fresh training alone   tau {kendalltau(seen, truth)[0]:.3f}")
    print("  rank mean of the two       tau {:.3f}   gain over the predictor "
          "{:+.3f} [{:+.3f}, {:+.3f}]".format(
              np.mean([kendalltau(m, truth)[0] for m in mixed]),
              *paired_gain(mixed, part, truth, rng)))
    # every score beside its id, for anyone to recompute the taus (first repeat's folds)
    pd.DataFrame({"id": data.ref.id[held], "truth_3seed_mean": truth,
                  "predictor_ridge_summary": part[0], "seed3": seen,
                  "rank_mean": mixed[0]}).to_csv(OUT, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
