"""Study: does pooling the extra references cost ranking? (issue 28, item 3)

    .venv/bin/python experiments/studies/estimators/pooling.py REF2 [REF3 ...] \\
        > experiments/studies/estimators/pooling.txt          # seconds

With all 120 architectures of the third reference, ridge/summary ranked the truth lower
(0.633) than with 51 of them (0.658). Three readings, and what this script prints on each:

- one reference is unlike the others: ridge fitted on each reference alone and scored on
  the whole truth (hold-out), on all its architectures and on 20 random draws of 50 and
  80, so references of different sizes compare (spreads over draws, not confidence
  intervals). Whether the code or recipe drifted since the truth was trained is checked
  apart, by retraining truth architectures (experiments/README.md);
- the one reference from another FLOPs band (the one command's, 201-252M) bends the fit:
  ``variants.py``'s folds without the last REF;
- the references differ by a constant: an intercept per reference (one-hot columns; the
  truth's architectures have none), out of fold, with the paired-bootstrap gain.
"""

import sys

import numpy as np
from scipy.stats import kendalltau
from variants import out_of_fold, paired_gain, pool, ridge, table


def main() -> None:
    refs = sys.argv[1:]
    data = pool(refs)
    truth = data.truth
    held = np.array([data.summary[i] for i in data.ref.id])
    source = {}
    for k, path in enumerate(refs):
        for i in table(path, 1).id:
            source.setdefault(i, k)
    rng = np.random.default_rng(0)
    print(f"hold-out: ridge/summary fitted on one reference alone, scored on the "
          f"{len(truth)} of the truth")
    for k, path in enumerate(refs):
        ids = [i for i in data.extra.id if source[i] == k]
        x = np.array([data.summary[i] for i in ids])
        y = np.array([data.target[i] for i in ids])
        line = (f"  {path}: {len(ids)} architectures, tau "
                f"{kendalltau(ridge().fit(x, y).predict(held), truth)[0]:.3f}")
        for n in (50, 80):
            if len(ids) > n:
                taus = []
                for _ in range(20):
                    pick = rng.choice(len(ids), n, replace=False)
                    taus.append(kendalltau(ridge().fit(x[pick], y[pick]).predict(held),
                                           truth)[0])
                line += f"; {n} drawn: {np.mean(taus):.3f} ± {np.std(taus):.3f}"
        print(line)
    summary = data.summary
    base = [out_of_fold(data, summary.get, ridge, False, r) for r in range(5)]
    print(f"out of fold (5 folds x 5 repeats), {len(data.extra)} extra architectures: "
          f"ridge/summary tau {np.mean([kendalltau(p, truth)[0] for p in base]):.3f}")

    truth_ids = set(data.ref.id)

    def intercepts(i):
        column = np.zeros(len(refs))
        if i in source and i not in truth_ids:
            column[source[i]] = 1.0
        return np.r_[summary[i], column]

    fewer = pool(refs[:-1])
    variants = {"an intercept per reference": (data, intercepts),
                f"without {refs[-1]} ({len(fewer.extra)} extra)": (fewer, summary.get)}
    for name, (pooled, features) in variants.items():
        preds = [out_of_fold(pooled, features, ridge, False, r) for r in range(5)]
        print(f"  {name}: tau {np.mean([kendalltau(p, truth)[0] for p in preds]):.3f}, gain "
              "{:+.3f} [{:+.3f}, {:+.3f}]".format(*paired_gain(preds, base, truth, rng)))


if __name__ == "__main__":
    main()
