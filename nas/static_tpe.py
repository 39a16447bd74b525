"""Multivariate TPE for a search space known in advance: Optuna's TPE without its per-trial bookkeeping.

Why: every trial of a search suggests the same decisions with the same choices, yet
Optuna's multivariate TPE re-derives that search space from all finished trials before
each suggestion (and deep-copies it), and converts every earlier trial's 70 parameters
to their internal form twice per suggestion. At a tight budget most trials are over
budget and cost nothing else, so this bookkeeping was half of their cost.
Here the search space is given once, a finished trial's internal form is computed once
and kept (finished trials never change), and the density models are built for all
categorical decisions at once (:mod:`nas.categorical_parzen`). Suggestions are the same as
``TPESampler(multivariate=True)`` with the same seed (the test suite checks it).

The overridden hooks are private TPESampler methods, one reason pyproject bounds optuna
to 5.0.x.
"""

from __future__ import annotations

from typing import Dict, List, Set, Tuple

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from .categorical_parzen import CategoricalParzenEstimator

__all__ = ["StaticSpaceTPESampler"]

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class StaticSpaceTPESampler(optuna.samplers.TPESampler):
    """``TPESampler(multivariate=True, **kwargs)`` over the fixed ``search_space``."""

    def __init__(self, search_space: Dict[str, BaseDistribution], **kwargs):
        for option in ("multivariate", "group"):  # what the overrides below assume
            if option in kwargs:
                raise TypeError(f"StaticSpaceTPESampler is multivariate TPE without groups; "
                                f"it takes no {option}= argument")
        super().__init__(multivariate=True, **kwargs)
        self._parzen_estimator_cls = CategoricalParzenEstimator
        # Sorted by name, single-choice decisions dropped: what Optuna's intersection
        # search space would give once every decision had been seen.
        self._names = frozenset(search_space)
        self._given = dict(search_space)
        self._static = {name: d for name, d in sorted(search_space.items()) if not d.single()}
        self._rows: Dict[int, Tuple[float, ...]] = {}  # trial id -> internal values
        self._covering: Set[int] = set()  # ids of finished trials with every decision
        self._study_key = None  # the study the two caches above belong to

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> Dict[str, BaseDistribution]:
        key = (id(study._storage), study._study_id)
        if key != self._study_key:  # trial ids are only unique within one storage
            self._rows.clear()
            self._covering.clear()
            self._study_key = key
        finished = study._get_trials(deepcopy=False, use_cache=True, states=_FINISHED)
        if not finished:  # Optuna's intersection is empty then: random sampling
            return {}
        if not all(self._covers(t) for t in finished):  # not our kind of study after all
            return super().infer_relative_search_space(study, trial)
        return dict(self._static)

    def _covers(self, t: FrozenTrial) -> bool:
        """Whether ``t`` suggested exactly the decisions of the space (memoised)."""
        if t._trial_id in self._covering:
            return True
        # Every trial's distributions, not just the first's: trials added with add_trial
        # (a resumed study's copies) are not checked against the study's earlier ones.
        if t.params.keys() != self._names or t.distributions != self._given:
            return False
        self._covering.add(t._trial_id)
        return True

    def _get_internal_repr(self, trials: List[FrozenTrial],
                           search_space: Dict[str, BaseDistribution],
                           study: optuna.Study) -> Dict[str, np.ndarray]:
        if search_space.keys() != self._static.keys():
            return super()._get_internal_repr(trials, search_space, study)
        rows = []
        for t in trials:
            row = self._rows.get(t._trial_id)
            if row is None:
                params = self._get_params(t, study)
                if not search_space.keys() <= params.keys():
                    continue
                row = tuple(d.to_internal_repr(params[name]) for name, d in search_space.items())
                if t.state.is_finished():
                    self._rows[t._trial_id] = row
            rows.append(row)
        if not rows:
            return {name: np.asarray([]) for name in search_space}
        table = np.asarray(rows)
        return {name: np.ascontiguousarray(table[:, i]) for i, name in enumerate(search_space)}
