"""What the report computes from a run: how the search went, what to pick, what mattered.

* :func:`history`: best reward so far (scalar mode) or hypervolume so far (Pareto mode)
  against trial number, and the share of trials over budget;
* :func:`recommendations`: the lightest, the most accurate and the knee of the front;
* :func:`importances`: the importance of each decision of the space for accuracy, FLOPs and
  latency, by Optuna's public importance API (PED-ANOVA by default).

Everything here reads rows as :func:`nas.search.open_run` lists them; only feasible rows
(finite numbers) are ranked or plotted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import optuna

from ..search.results import SearchRun, hypervolume, pareto_front

__all__ = ["History", "history", "recommendations", "knee", "Importance", "importances",
           "IMPORTANCE_TARGETS", "IMPORTANCE_MIN_TRIALS", "baseline_run"]


@dataclass
class History:
    """One run's progress: per finished trial (in trial-number order) its number, the best
    value so far (None before the first feasible trial) and whether it was over budget."""

    label: str
    metric: str  # "best reward" or "hypervolume"
    trials: List[int]
    best: List[Optional[float]]
    over_budget: List[bool]

    @property
    def over_budget_share(self) -> float:
        return sum(self.over_budget) / len(self.over_budget) if self.over_budget else 0.0


def _lat_reference(runs: Sequence[SearchRun]) -> float:
    """The latency of the hypervolume's reference point: the latency budget when there is
    one, else 10% above the slowest feasible trial of the runs compared (so that every
    feasible trial adds volume, and two runs are measured against the same point)."""
    budgets = [r.config.latency_budget_ms for r in runs if r.config.latency_budget_ms]
    if budgets:
        return max(budgets)
    slowest = [row["latency_ms"] for r in runs for row in r.feasible]
    return 1.1 * max(slowest) if slowest else 1.0


def history(run: SearchRun, label: str, metric: str, lat_ref: float) -> History:
    """Best reward (``metric="reward"``) or hypervolume (``"hypervolume"``) after each trial.

    The hypervolume is that of the feasible trials in (1 - accuracy, FLOPs / budget,
    latency / ``lat_ref``), all minimised, against the reference point (1, 1, 1): accuracy
    0, FLOPs at the budget, latency at ``lat_ref`` ms (as in experiments/studies/controllers).
    """
    rows = sorted(run.rows, key=lambda r: r["trial"])
    best: List[Optional[float]] = []
    current: Optional[float] = None
    points: List[List[float]] = []
    for row in rows:
        if row["feasible"]:
            if metric == "reward":
                current = row["reward"] if current is None else max(current, row["reward"])
            else:
                points.append([1 - row["accuracy"], row["flops"] / run.config.budget,
                               row["latency_ms"] / lat_ref])
                # only the front of the points so far can add volume: keep the list short
                points = _front_points(points)
                current = hypervolume(points, [1.0, 1.0, 1.0])
        best.append(current)
    over = [(not r["feasible"]) and not r.get("malformed") for r in rows]
    return History(label, "best reward" if metric == "reward" else "hypervolume",
                   [r["trial"] for r in rows], best, over)


def _front_points(points: List[List[float]]) -> List[List[float]]:
    def dominated(p, q):  # q dominates p (all minimised)
        return all(b <= a for a, b in zip(p, q)) and any(b < a for a, b in zip(p, q))

    return [p for p in points if not any(dominated(p, q) for q in points if q is not p)]


def histories(run: SearchRun, baseline: Optional[SearchRun]) -> List[History]:
    """The run's history and, when given, the baseline's, on the same metric and reference."""
    metric = "hypervolume" if run.config.objective == "pareto" else "reward"
    runs = [run] + ([baseline] if baseline else [])
    lat_ref = _lat_reference(runs)
    out = [history(run, "this run", metric, lat_ref)]
    if baseline:
        out.append(history(baseline, f"random search ({baseline.path.name})", metric, lat_ref))
    return out


def baseline_run(run: SearchRun, explicit=None) -> Optional[SearchRun]:
    """The random-search run to compare with: ``explicit`` (a run directory) when given,
    else the sibling ``nas search --sampler random`` writes by default (``RUN-random``) when
    it exists and searched the same space under the same budget and objective."""
    from ..errors import RunError
    from ..search import open_run

    if explicit is not None:
        other = open_run(explicit)
        if other.config.sampler_kind != "random":
            raise RunError(f"--baseline {other.path} is not a random search (its sampler "
                           f"is {other.config.sampler_kind}); the curve compares a controller "
                           "with random search")
        return other
    if run.config.sampler_kind == "random":
        return None
    sibling = run.path.parent / f"{run.path.name}-random"
    if not sibling.is_dir():
        return None
    try:
        other = open_run(sibling)
    except RunError:
        return None
    same = (other.config.sampler_kind == "random" and other.config.space == run.config.space
            and other.config.budget == run.config.budget
            and other.config.objective == run.config.objective)
    return other if same else None


# ------------------------------------------------------------------ what to pick
def knee(front: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The knee of the accuracy-FLOPs trade-off: the member of the two-objective front
    farthest from the straight line joining its lightest and its most accurate member, both
    axes scaled to [0, 1] (the maximum-distance knee of Das 1999, "On characterizing the
    'knee' of the Pareto curve", and Kneedle, Satopää et al. 2011). None with fewer than 3
    members, where there is no bend to find."""
    flat = pareto_front([{**r, "latency_ms": 0.0} for r in front])  # accuracy vs FLOPs only
    if len(flat) < 3:
        return None
    f0, f1 = flat[0]["flops"], flat[-1]["flops"]
    accs = [r["accuracy"] for r in flat]
    a0, a1 = min(accs), max(accs)
    if f1 == f0 or a1 == a0:
        return None

    def distance(r):  # to the chord from (0, 0) to (1, 1) in scaled coordinates
        x, y = (r["flops"] - f0) / (f1 - f0), (r["accuracy"] - a0) / (a1 - a0)
        return (y - x) / math.sqrt(2)

    best = max(flat[1:-1], key=distance)
    chosen = best if distance(best) > 0 else None
    return next((r for r in front if r["trial"] == chosen["trial"]), None) if chosen else None


def recommendations(front: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """``{"lightest", "most accurate", "knee"}`` -> front row (a key is missing when the
    front is empty, or has no knee). Ties: the lightest prefers accuracy, the most accurate
    prefers fewer FLOPs."""
    if not front:
        return {}
    picks = {"lightest": min(front, key=lambda r: (r["flops"], -r["accuracy"])),
             "most accurate": max(front, key=lambda r: (r["accuracy"], -r["flops"]))}
    bend = knee(front)
    if bend is not None:
        picks["knee"] = bend
    return picks


# ------------------------------------------------------------------ what mattered
#: Targets of the importance chart: name -> (attribute, sign making lower better).
IMPORTANCE_TARGETS = {"accuracy": ("accuracy", -1.0), "FLOPs": ("flops", 1.0),
                      "latency": ("latency_ms", 1.0)}
#: PED-ANOVA compares the parameter distribution of the best trials with that of all; the
#: evaluator's documentation asks for at least 5 trials in the best set. With the best 10%
#: that is 50 feasible trials; below that the best 5 are taken (a larger quantile), down to
#: a quarter of the trials: 20 feasible trials at least, else the report shows a note.
IMPORTANCE_MIN_TRIALS = 20
_TOP_TRIALS = 5


@dataclass
class Importance:
    """Importances (normalised to sum 1) of the space's decisions per target, or why not."""

    values: Dict[str, Dict[str, float]] = field(default_factory=dict)
    trials: int = 0
    quantile: float = 0.0
    note: str = ""


def importances(run: SearchRun, evaluator: Optional[optuna.importance.BaseImportanceEvaluator]
                = None) -> Importance:
    """Importance of each decision for accuracy, FLOPs and latency over the feasible trials.

    Calls :func:`optuna.importance.get_param_importances` once per target on the run's
    study, with ``target`` returning the attribute signed so that lower is better (what
    PED-ANOVA assumes) for a feasible trial, and NaN for any other: Optuna's evaluators
    leave out trials whose target is not finite (tests/report_tests/test_analysis.py checks the
    result against a study that holds only the feasible trials). The default evaluator is
    :class:`optuna.importance.PedAnovaImportanceEvaluator` (Watanabe et al., IJCAI 2023)
    asked for the top max(10%, 5 trials); any other public evaluator may be passed
    (``FanovaImportanceEvaluator`` needs scikit-learn).
    """
    feasible = {r["trial"] for r in run.feasible}
    n = len(feasible)
    if n < IMPORTANCE_MIN_TRIALS or run.study is None:
        return Importance(trials=n, note=(
            f"Decision importance needs at least {IMPORTANCE_MIN_TRIALS} feasible trials "
            f"(PED-ANOVA compares the best {_TOP_TRIALS} or more with all of them); this run "
            f"has {n}. Rerun nas search with more --trials, then nas report."))
    quantile = max(0.1, _TOP_TRIALS / n)
    if evaluator is None:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)

    def target(key: str, sign: float):
        return lambda t: sign * t.user_attrs[key] if t.number in feasible else math.nan

    values = {}
    for name, (key, sign) in IMPORTANCE_TARGETS.items():
        with warnings.catch_warnings():
            # PED-ANOVA warns that a target means "lower is better": the sign sees to that
            warnings.simplefilter("ignore")
            values[name] = optuna.importance.get_param_importances(
                run.study, evaluator=evaluator, target=target(key, sign))
    return Importance(values=values, trials=n, quantile=quantile)
