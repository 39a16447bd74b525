"""Study: predictor variants against today's ridge on the summary encoding (issue 28, item 3).

    .venv/bin/python experiments/studies/estimators/variants.py REF2 [REF3 ...] \\
        > experiments/studies/estimators/variants.txt

Truth: the 3-seed means of ``studies/reference_cifar10`` (50 architectures). Each variant's
out-of-fold predictions (5 folds, 5 repeats with other folds; each fold trained on the other
40 plus every architecture of REF2, REF3, ... at one seed, never on the ones it predicts),
Kendall tau mean ± std over the repeats, and the gain over ``ridge/summary`` with a paired
bootstrap 95% CI (1,000 resamples of the 50 architectures, a random repeat each, the same
folds for both). Variants: sample weights by seeds, squared log-cost and depth terms, an RBF
support-vector regression, one-hot ridge, and the rank mean of summary and one-hot ridge;
with ``zero_cost.csv`` (``zero_cost.py``), the zero-cost proxies as features, raw and
aggregated by rank as AZ-NAS does (the sum over proxies of log(rank / N), ranks over every
architecture of the pool: the proxies need no labels).
"""

import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

import nas
from nas.estimators import feature_table
from nas.reference import load_reference

warnings.filterwarnings("ignore", category=UserWarning)  # sklearn's convergence chatter
REFERENCE = "experiments/studies/reference_cifar10"


def table(path, seeds):
    per = load_reference(path)[1]
    return per[per["count"] >= seeds].reset_index(drop=True)


def zero_cost_variants(ids, summary, ridge):
    """``ridge/summary`` with the zero-cost proxies of ``zero_cost.csv``, when it has them
    all: raw, and as one AZ-NAS rank aggregate."""
    path = Path(__file__).parent / "zero_cost.csv"
    if not path.exists():
        return {}
    proxies = pd.read_csv(path, dtype={"id": str}).set_index("id")
    if not set(ids) <= set(proxies.index):
        raise SystemExit(f"{path} lacks architectures: run zero_cost.py on these references")
    table = proxies.loc[ids]
    raw = dict(zip(ids, table.to_numpy(float)))
    aggregate = np.log(table.rank(method="average") / len(table)).sum(axis=1).to_numpy()
    azn = dict(zip(ids, aggregate))
    return {"ridge/summary + synflow, snip, grad_norm": (lambda i: np.r_[summary[i], raw[i]],
                                                        ridge, False),
            "ridge/summary + their AZ-NAS rank aggregate": (lambda i: np.r_[summary[i], azn[i]],
                                                           ridge, False)}


def main() -> None:
    ref = table(REFERENCE, 3)
    extra = pd.concat([table(p, 1) for p in sys.argv[1:]], ignore_index=True).drop_duplicates("id")
    rows = pd.concat([ref, extra], ignore_index=True)
    archs = {r.id: nas.Architecture.parse(r.arch) for r in rows.itertuples()}
    target, seeds = dict(zip(rows.id, rows["mean"])), dict(zip(rows.id, rows["count"]))
    space, ids = nas.load_space("mixnet_300m"), list(rows.id)
    names, summary = feature_table([archs[i] for i in ids], "summary", space, 32)
    summary = dict(zip(ids, np.asarray(summary, float)))
    onehot = dict(zip(ids, np.asarray(feature_table([archs[i] for i in ids], "onehot",
                                                    space, 32)[1], float)))
    cost = [names.index("log_flops"), names.index("log_params")]
    depth = [k for k, n in enumerate(names) if n.endswith(".depth")]

    def quad(i):
        v = summary[i]
        d = v[depth].sum()
        return np.r_[v, v[cost[0]] ** 2, v[cost[1]] ** 2, v[cost[0]] * v[cost[1]], d, d * d]

    def ridge():
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))

    def svr():
        return make_pipeline(StandardScaler(), SVR(C=1.0, epsilon=0.002, gamma="scale"))

    variants = {"ridge/summary": (summary.get, ridge, False),
                **zero_cost_variants(ids, summary, ridge),
                "ridge/summary, weighted by seeds": (summary.get, ridge, True),
                "ridge/summary + squared cost and depth": (quad, ridge, False),
                "svr (RBF)/summary": (summary.get, svr, False),
                "ridge/onehot": (onehot.get, ridge, False)}
    n, truth = len(ref), ref["mean"].to_numpy()

    def out_of_fold(features, make, weighted, repeat):
        rng = random.Random(repeat)
        order = list(range(n))
        rng.shuffle(order)
        pred = np.zeros(n)
        for fold in (order[k::5] for k in range(5)):
            train = [ref.id[i] for i in range(n) if i not in fold] + list(extra.id)
            model = make()
            fit = {}
            if weighted:
                fit[model.steps[-1][0] + "__sample_weight"] = np.array(
                    [seeds[i] for i in train], float)
            model.fit(np.array([features(i) for i in train]),
                      np.array([target[i] for i in train]), **fit)
            pred[fold] = model.predict(np.array([features(ref.id[i]) for i in fold]))
        return pred

    preds = {name: [out_of_fold(f, m, w, r) for r in range(5)]
             for name, (f, m, w) in variants.items()}
    preds["rank mean of ridge/summary and ridge/onehot"] = [
        rankdata(a) + rankdata(b) for a, b in zip(preds["ridge/summary"], preds["ridge/onehot"])]
    print(f"{n} reference architectures (3 seeds); {len(extra)} more at one seed train each "
          f"fold ({n - n // 5 + len(extra)} in all): {' '.join(sys.argv[1:])}")
    rng = np.random.default_rng(0)
    base = preds["ridge/summary"]
    for name, ps in preds.items():
        taus = [kendalltau(p, truth)[0] for p in ps]
        line = f"{name:48s} tau {np.mean(taus):.3f} ± {np.std(taus):.3f}"
        if name != "ridge/summary":
            gains = []
            for _ in range(1000):
                i, r = rng.integers(0, n, n), rng.integers(0, 5)
                gains.append(kendalltau(ps[r][i], truth[i])[0]
                             - kendalltau(base[r][i], truth[i])[0])
            line += (f"   gain {np.mean(gains):+.3f} [{np.percentile(gains, 2.5):+.3f}, "
                     f"{np.percentile(gains, 97.5):+.3f}]")
        print(line)


if __name__ == "__main__":
    main()
