"""Study: predictor variants against today's ridge on the summary encoding (issue 28, item 3).

    .venv/bin/python experiments/studies/estimators/variants.py REF2 [REF3 ...] \\
        > experiments/studies/estimators/variants.txt

Truth: the 3-seed means of ``studies/reference_cifar10`` (50 architectures). Each variant's
out-of-fold predictions (5 folds, 5 repeats with other folds; each fold trained on the other
40 plus every architecture of REF2, REF3, ... at one seed, never on the ones it predicts),
Kendall tau mean ± std over the repeats, and the gain over ``ridge/summary`` with a paired
bootstrap 95% CI (1,000 resamples of the 50 architectures, a random repeat each, the same
folds for both). An architecture of the truth that an extra reference drew too is left out
of the extra ones (its one-seed row would leak the answer into the fold that predicts it).
Variants: sample weights by seeds, squared log-cost and depth terms, stage 1's activation
(which the summary does not see), each stage's log FLOPs and log params (the summary has
only the whole network's), partial least squares (3 components), extra trees fitted to
ridge's residuals, a linear pairwise ranker (logistic regression on pairs' feature
differences), an RBF support-vector regression, a Gaussian process (dot-product + RBF +
white-noise kernel, its hyper-parameters fitted by marginal likelihood), one-hot ridge, the
rank mean of summary and one-hot ridge, ridge on the two encodings side by side, and a
multi-layer perceptron as once-for-all's predictor is one (two hidden layers of 64, weight
decay 10 on standardised targets, 5 initialisations averaged; a decay of 1 and one layer of
32 at decay 3 scored lower in a first try: 0.582, 0.578 with 292 training architectures);
with ``zero_cost.csv`` (``zero_cost.py``), the zero-cost proxies as features, raw and
aggregated by rank as AZ-NAS does (the sum over proxies of log(rank / N), ranks over every
architecture of the pool: the proxies need no labels).
"""

import random
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, WhiteKernel
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

import nas
from nas.cost import block_cost, stem_cost
from nas.estimators import feature_table
from nas.reference import load_reference

warnings.filterwarnings("ignore", category=UserWarning)  # sklearn's convergence chatter
REFERENCE = "experiments/studies/reference_cifar10"


def table(path, seeds):
    per = load_reference(path)[1]
    return per[per["count"] >= seeds].reset_index(drop=True)


class Flat(BaseEstimator, RegressorMixin):
    """A regressor whose 2-D predictions (PLS's) are returned as one column."""

    def __init__(self, model):
        self.model = model

    def fit(self, x, y):
        self.model_ = self.model.fit(x, y)
        return self

    def predict(self, x):
        return np.ravel(self.model_.predict(x))


class ResidualTrees(BaseEstimator, RegressorMixin):
    """``base`` plus extremely randomised trees fitted to its residuals (what a linear
    model misses, if trees can see it)."""

    def __init__(self, base):
        self.base = base

    def fit(self, x, y):
        self.base.fit(x, y)
        self.trees_ = ExtraTreesRegressor(300, min_samples_leaf=10, max_features=0.5,
                                         random_state=0).fit(x, y - self.base.predict(x))
        return self

    def predict(self, x):
        return self.base.predict(x) + self.trees_.predict(x)


class Pairwise(BaseEstimator, RegressorMixin):
    """A linear score fitted to which of two architectures is better (logistic regression
    on 20,000 random pairs' feature differences, as a linear RankNet): it ranks, it does
    not regress accuracy."""

    def fit(self, x, y):
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, len(y), 20000), rng.integers(0, len(y), 20000)
        keep = y[a] != y[b]
        model = LogisticRegression(C=0.01, fit_intercept=False, max_iter=2000)
        self.coef_ = model.fit(x[a[keep]] - x[b[keep]], y[a[keep]] > y[b[keep]]).coef_[0]
        return self

    def predict(self, x):
        return x @ self.coef_


class MLPEnsemble(BaseEstimator, RegressorMixin):
    """Multi-layer perceptrons on standardised features and targets (OFA's accuracy
    predictor is one; reference/RANKING.md), ``n`` initialisations averaged."""

    def __init__(self, hidden=(64, 64), alpha=10.0, n=5):
        self.hidden, self.alpha, self.n = hidden, alpha, n

    def fit(self, x, y):
        self.scale_ = StandardScaler().fit(x)
        self.mean_, self.std_ = y.mean(), y.std()
        z, t = self.scale_.transform(x), (y - self.mean_) / self.std_
        self.nets_ = [MLPRegressor(hidden_layer_sizes=self.hidden, alpha=self.alpha,
                                   max_iter=2000, random_state=s).fit(z, t)
                      for s in range(self.n)]
        return self

    def predict(self, x):
        z = self.scale_.transform(x)
        return self.mean_ + self.std_ * np.mean([net.predict(z) for net in self.nets_], axis=0)


def stage_costs(arch) -> np.ndarray:
    """Each stage's log(1 + FLOPs) and log(1 + params) at the target input, from the cost
    model's own per-row counts (:func:`nas.cost.block_cost`)."""
    stem = arch.stem
    size, width = stem_cost(arch.input, stem.kernel, stem.stride, stem.out, stem.patch)[2], stem.out
    out = []
    for rows in arch.stages:
        flops = params = 0
        for block in rows:
            f, p, size = block_cost(block, width, size)
            flops, params = flops + f, params + p
            width = block.out  # as nas.cost.count_cost walks the rows
        out += [np.log1p(flops), np.log1p(params)]
    return np.array(out)


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


@dataclass
class Pool:
    """The truth (``ref``: 3-seed means) and the extra one-seed architectures that train
    every fold (``extra``), with each architecture's target, seed count and summary vector."""

    ref: pd.DataFrame
    extra: pd.DataFrame
    shared: int  # extra architectures left out: the truth holds them
    archs: dict
    target: dict
    seeds: dict
    space: object
    names: list
    summary: dict

    @property
    def truth(self):
        return self.ref["mean"].to_numpy()


def pool(extra_refs) -> Pool:
    ref = table(REFERENCE, 3)
    extra = (pd.concat([table(p, 1) for p in extra_refs], ignore_index=True)
             .drop_duplicates("id") if extra_refs else ref.iloc[0:0])
    # An architecture of the truth that another reference also drew (the one-command run's
    # sample shares some) must not train the folds that predict it: its one-seed row is a
    # noisy copy of the answer.
    shared = extra.id.isin(ref.id)
    extra = extra[~shared].reset_index(drop=True)
    rows = pd.concat([ref, extra], ignore_index=True)
    archs = {r.id: nas.Architecture.parse(r.arch) for r in rows.itertuples()}
    space, ids = nas.load_space("mixnet_300m"), list(rows.id)
    names, summary = feature_table([archs[i] for i in ids], "summary", space, 32)
    return Pool(ref, extra, int(shared.sum()), archs, dict(zip(rows.id, rows["mean"])),
                dict(zip(rows.id, rows["count"])), space, names,
                dict(zip(ids, np.asarray(summary, float))))


def ridge():
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))


def out_of_fold(data: Pool, features, make, weighted: bool, repeat: int):
    """Predictions for the truth's architectures, each by a model that never saw it:
    5 folds, shuffled by ``repeat``."""
    n = len(data.ref)
    rng = random.Random(repeat)
    order = list(range(n))
    rng.shuffle(order)
    pred = np.zeros(n)
    for fold in (order[k::5] for k in range(5)):
        train = [data.ref.id[i] for i in range(n) if i not in fold] + list(data.extra.id)
        model = make()
        fit = {}
        if weighted:
            fit[model.steps[-1][0] + "__sample_weight"] = np.array(
                [data.seeds[i] for i in train], float)
        model.fit(np.array([features(i) for i in train]),
                  np.array([data.target[i] for i in train]), **fit)
        pred[fold] = model.predict(np.array([features(data.ref.id[i]) for i in fold]))
    return pred


def paired_gain(preds, base, truth, rng):
    """Mean Kendall tau gain of ``preds`` over ``base`` (one prediction per repeat each)
    and its 95% paired-bootstrap interval: 1,000 resamples of the architectures, a random
    repeat each."""
    n, gains = len(truth), []
    for _ in range(1000):
        i, r = rng.integers(0, n, n), rng.integers(0, len(preds))
        gains.append(kendalltau(preds[r][i], truth[i])[0] - kendalltau(base[r][i], truth[i])[0])
    return np.mean(gains), np.percentile(gains, 2.5), np.percentile(gains, 97.5)


def print_gains(preds: dict, truth) -> None:
    """One line per variant of ``preds`` (name -> one prediction per repeat): its tau, mean
    ± std over the repeats, and, after the first (the baseline), its paired gain over it."""
    rng = np.random.default_rng(0)
    base_name, base = next(iter(preds.items()))
    for name, ps in preds.items():
        taus = [kendalltau(p, truth)[0] for p in ps]
        line = f"{name:48s} tau {np.mean(taus):.3f} ± {np.std(taus):.3f}"
        if name != base_name:
            line += "   gain {:+.3f} [{:+.3f}, {:+.3f}]".format(
                *paired_gain(ps, base, truth, rng))
        print(line)


def main() -> None:
    data = pool(sys.argv[1:])
    archs, summary, space, names = data.archs, data.summary, data.space, data.names
    ids = list(summary)
    onehot = dict(zip(ids, np.asarray(feature_table([archs[i] for i in ids], "onehot",
                                                    space, 32)[1], float)))
    cost = [names.index("log_flops"), names.index("log_params")]
    depth = [k for k, n in enumerate(names) if n.endswith(".depth")]

    def quad(i):
        v = summary[i]
        d = v[depth].sum()
        return np.r_[v, v[cost[0]] ** 2, v[cost[1]] ** 2, v[cost[0]] * v[cost[1]], d, d * d]

    def svr():
        return make_pipeline(StandardScaler(), SVR(C=1.0, epsilon=0.002, gamma="scale"))

    def pls():
        return make_pipeline(StandardScaler(), Flat(PLSRegression(3)))

    def residual_trees():
        return ResidualTrees(ridge())

    def pairwise():
        return make_pipeline(StandardScaler(), Pairwise())

    def gp():
        kernel = (ConstantKernel() * DotProduct() + ConstantKernel(0.1) * RBF(3.0)
                  + WhiteKernel(0.5))
        return make_pipeline(StandardScaler(), GaussianProcessRegressor(
            kernel, normalize_y=True, random_state=0))

    choices = [space.choices_of(archs[i]) for i in ids]
    # the summary encoding does not see stage 1's activation (relu or swish)
    act = {i: np.array([float(c[d] == "swish") for d in ("s1.b0.act", "s1.b1.act")])
           for i, c in zip(ids, choices)}
    stages = {i: stage_costs(archs[i]) for i in ids}
    variants = {"ridge/summary": (summary.get, ridge, False),
                **zero_cost_variants(ids, summary, ridge),
                "ridge/summary, weighted by seeds": (summary.get, ridge, True),
                "ridge/summary + squared cost and depth": (quad, ridge, False),
                "ridge/summary + stage 1's activation": (lambda i: np.r_[summary[i], act[i]],
                                                         ridge, False),
                "PLS (3 components)/summary": (summary.get, pls, False),
                "ridge + extra trees on its residuals/summary": (summary.get, residual_trees,
                                                                 False),
                "pairwise logistic (linear RankNet)/summary": (summary.get, pairwise, False),
                "svr (RBF)/summary": (summary.get, svr, False),
                "ridge/onehot": (onehot.get, ridge, False)}
    preds = {name: [out_of_fold(data, f, m, w, r) for r in range(5)]
             for name, (f, m, w) in variants.items()}
    preds["rank mean of ridge/summary and ridge/onehot"] = [
        rankdata(a) + rankdata(b) for a, b in zip(preds["ridge/summary"], preds["ridge/onehot"])]
    # appended after the others: print_gains' shared generator keeps their bootstrap draws
    later = {"ridge/summary + each stage's log FLOPs, params": (
                 lambda i: np.r_[summary[i], stages[i]], ridge, False),
             "gaussian process (linear + RBF)/summary": (summary.get, gp, False),
             "ridge/summary and one-hot side by side": (lambda i: np.r_[summary[i], onehot[i]],
                                                         ridge, False),
             "MLP (2 x 64, 5 initialisations)/summary": (summary.get, MLPEnsemble, False)}
    preds.update({name: [out_of_fold(data, f, m, w, r) for r in range(5)]
                  for name, (f, m, w) in later.items()})
    n, extra = len(data.ref), data.extra
    print(f"{n} reference architectures (3 seeds); {len(extra)} more at one seed train each "
          f"fold ({n - n // 5 + len(extra)} in all; {data.shared} shared with the truth "
          f"left out): {' '.join(sys.argv[1:])}")
    print_gains(preds, data.truth)
    # how far the model itself can go: fitted on every architecture, truth's included
    model = ridge().fit(np.array(list(summary.values())), np.array([data.target[i] for i in ids]))
    inside = model.predict(np.array([summary[i] for i in data.ref.id]))
    print(f"{'ridge/summary in sample (fitted on all, truth too)':48s} tau "
          f"{kendalltau(inside, data.truth)[0]:.3f}")


if __name__ == "__main__":
    main()
