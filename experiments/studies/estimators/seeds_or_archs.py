"""Study: more seeds or more architectures for a predictor's reference? (issue 28, item 3)

    .venv/bin/python experiments/studies/estimators/seeds_or_archs.py [REF2 REF3 ...] \\
        > experiments/studies/estimators/seeds_or_archs.txt

Ridge/summary out of fold on the 3-seed truth (``variants.py``'s folds, no extra
references), each fold trained on the other 40 architectures' 3-seed means (120 trainings)
or on their seed-0 accuracy alone (40 trainings). Beside it, the subsampled curve of
one-seed architectures in ``pooled/`` (0.43 / 0.60 / 0.65 at 30 / 60 / 120): what the same
number of trainings buys as more architectures.

With extra references (REF2 ...: every architecture of them at one seed trains each fold,
as in ``variants.py``): the same question where the learning curve is flat. First the 40
architectures at each of their seeds alone and at their 3-seed means, with the paired gain
over seed 0 alone. Then what the extra architectures' label noise costs: Gaussian noise of
one seed's spread (the pooled within-architecture SD of the 50's three seeds) added to each
of their one-seed labels, doubling or tripling its noise variance (10 draws each, 5 fold
repeats per draw). If adding a seed's worth of noise barely moves tau, taking one away (a
second seed for each) cannot move it much either.
"""

import sys
from dataclasses import replace

import numpy as np
from scipy.stats import kendalltau
from variants import REFERENCE, out_of_fold, pool, print_gains, ridge

from nas.reference import load_reference


def main() -> None:
    data = pool([])
    rows = load_reference(REFERENCE)[2]
    first = rows[rows.seed == 0]
    one_seed = replace(data, target=dict(zip(first.id, first.val_accuracy)))
    for label, labelled, trainings in (("3-seed means", data, 120), ("seed 0 alone", one_seed, 40)):
        taus = [kendalltau(out_of_fold(labelled, data.summary.get, ridge, False, r),
                           data.truth)[0] for r in range(5)]
        print(f"40 architectures, {label} ({trainings} trainings a fold): ridge/summary tau "
              f"{np.mean(taus):.3f} ± {np.std(taus):.3f}")
    if sys.argv[1:]:
        with_extra(sys.argv[1:], rows)


def with_extra(extra_refs, rows) -> None:
    """Print the paired gains of the 40's labels at each seed alone and at their 3-seed
    means, every architecture of ``extra_refs`` at one seed training each fold; then tau
    with the extra labels' noise variance doubled and tripled."""
    data = pool(extra_refs)
    preds = {}  # the first, seed 0 alone (what a one-seed reference has), is the baseline
    for seed in sorted(rows.seed.unique()):
        one = rows[rows.seed == seed]
        labelled = replace(data, target={**data.target, **dict(zip(one.id, one.val_accuracy))})
        preds[f"40 at seed {seed} alone"] = [
            out_of_fold(labelled, data.summary.get, ridge, False, r) for r in range(5)]
    preds["40 at their 3-seed means"] = [
        out_of_fold(data, data.summary.get, ridge, False, r) for r in range(5)]
    n = len(data.ref)
    print(f"\nthe 40 with {len(data.extra)} one-seed architectures more a fold "
          f"({n - n // 5 + len(data.extra)} in all; {data.shared} shared with the truth left "
          f"out): {' '.join(extra_refs)}")
    print_gains(preds, data.truth)
    sd = float(np.sqrt(rows.groupby("id").val_accuracy.var(ddof=1).mean()))
    base = np.mean([kendalltau(p, data.truth)[0] for p in preds["40 at their 3-seed means"]])
    print(f"\nthe extra architectures' one-seed labels with more noise (one seed's SD "
          f"{100 * sd:.2f} points, pooled over the 50's three seeds); the 40 at 3-seed means")
    for times in (2, 3):
        taus = []
        for draw in range(10):
            rng = np.random.default_rng(draw)
            noisy = {i: data.target[i] + rng.normal(0, sd * np.sqrt(times - 1))
                     for i in data.extra.id}
            labelled = replace(data, target={**data.target, **noisy})
            taus.append(np.mean([kendalltau(out_of_fold(labelled, data.summary.get, ridge,
                                                        False, r), data.truth)[0]
                                 for r in range(5)]))
        print(f"noise variance x{times}: tau {np.mean(taus):.3f} ± {np.std(taus):.3f} over "
              f"10 draws ({np.mean(taus) - base:+.3f} against {base:.3f})")


if __name__ == "__main__":
    main()
