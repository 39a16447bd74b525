"""How well an estimator ranks: rank correlations with bootstrap intervals, the top of the
ranking, and what picking by it costs.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..errors import RunError

__all__ = ["rank_correlation", "top_k", "rank_metrics", "tau_gain"]


def rank_correlation(x, y, resamples: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Kendall tau-b and Spearman rho of ``x`` vs ``y`` with percentile-bootstrap 95% CIs."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        raise RunError("no rank correlation: one of the accuracies is the same for every "
                       "architecture (a collapsed supernet or recipe?)")
    rng = np.random.default_rng(seed)
    boot = {"kendall": [], "spearman": []}
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            continue  # a resample of one repeated point has no ranking
        boot["kendall"].append(stats.kendalltau(x[i], y[i]).statistic)
        boot["spearman"].append(stats.spearmanr(x[i], y[i]).statistic)
    out = {"kendall": float(stats.kendalltau(x, y).statistic),
           "spearman": float(stats.spearmanr(x, y).statistic), "n": int(len(x))}
    for name, values in boot.items():
        values = np.asarray(values)[np.isfinite(values)]
        out[f"{name}_ci"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
    return out


def top_k(scores: Sequence[float], truth: Sequence[float], k: int = 5) -> Dict[str, float]:
    """``precision``: the share of the truth's ``k`` best that the scores' ``k`` best hold;
    ``regret``: how far (in the truth's units) the scores' first pick is from the best."""
    s, t = np.asarray(scores, float), np.asarray(truth, float)
    by_score, by_truth = np.argsort(-s, kind="stable"), np.argsort(-t, kind="stable")
    return {"precision": len(set(by_score[:k]) & set(by_truth[:k])) / k,
            "regret": float(t.max() - t[by_score[0]])}


def rank_metrics(scores: Sequence[float], truth: Sequence[float], k: int = 5,
                 seed: int = 0) -> Dict[str, float]:
    """Kendall's tau and Spearman's rho with 95% bootstrap CIs, top-``k`` precision and
    regret of ``scores`` against ``truth`` (e.g. a multi-seed reference's means)."""
    return {**rank_correlation(scores, truth, seed=seed),
            **{f"top{k}_{name}": v for name, v in top_k(scores, truth, k).items()}}


def tau_gain(scores: Sequence[float], baseline: Sequence[float], truth: Sequence[float],
             resamples: int = 2000, seed: int = 0) -> Dict[str, float]:
    """How much better ``scores`` rank than ``baseline``: Kendall tau against ``truth`` of
    the one minus the other (``gain``), with a paired percentile-bootstrap 95% CI
    (``gain_ci``: both scored on the same resampled architectures, so what they share
    cancels)."""
    from scipy import stats

    s, b, t = (np.asarray(v, float) for v in (scores, baseline, truth))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        i = rng.integers(0, len(t), len(t))
        if min(np.ptp(s[i]), np.ptp(b[i]), np.ptp(t[i])) == 0:
            continue
        boot.append(stats.kendalltau(s[i], t[i]).statistic
                    - stats.kendalltau(b[i], t[i]).statistic)
    gain = stats.kendalltau(s, t).statistic - stats.kendalltau(b, t).statistic
    return {"gain": float(gain), "gain_ci": [float(np.percentile(boot, 2.5)),
                                             float(np.percentile(boot, 97.5))]}
