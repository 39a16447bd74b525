"""Study: more seeds or more architectures for a predictor's reference? (issue 28, item 3)

    .venv/bin/python experiments/studies/estimators/seeds_or_archs.py \\
        > experiments/studies/estimators/seeds_or_archs.txt

Ridge/summary out of fold on the 3-seed truth (``variants.py``'s folds, no extra
references), each fold trained on the other 40 architectures' 3-seed means (120 trainings)
or on their seed-0 accuracy alone (40 trainings). Beside it, the subsampled curve of
one-seed architectures in ``pooled/`` (0.43 / 0.60 / 0.65 at 30 / 60 / 120): what the same
number of trainings buys as more architectures.
"""

from dataclasses import replace

import numpy as np
from scipy.stats import kendalltau
from variants import REFERENCE, out_of_fold, pool, ridge

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


if __name__ == "__main__":
    main()
