"""The trial: suggest an architecture, check the budget, price and score it.

Each trial suggests one categorical value per decision of the space (so TPE and NSGA-II
see the real decision structure), builds the :class:`~nas.arch.Architecture` and counts
its FLOPs analytically. An architecture over the budget gets a positive constraint value
and returns at once: no latency measurement, no evaluation. A feasible one gets its
latency from the run's latency model and its validation accuracy from the supernet after
BatchNorm recalibration.

Scalar mode maximises the MixNet paper's reward (Tan & Le, "MixConv", BMVC 2019, after
MnasNet's) ``R = acc - beta * ln(FLOPs) - gamma * latency_ms``; Pareto mode returns
(accuracy, FLOPs, latency) for NSGA-II.
"""

from __future__ import annotations

import math
import time
from typing import Dict, List

import optuna

from ..arch import Architecture, InputSpec
from ..cost import count_cost
from ..space import SearchSpace, available_spaces, load_space
from .config import SearchConfig

__all__ = ["reward", "suggest_arch", "labels_of", "Objective", "warm_start", "set_constraints",
           "sampler_options", "PRESETS"]

#: Networks every search tries first when they are points of its space within budget.
PRESETS = ("mixnet_s", "mixnet_m")

# Optuna 5 takes constraints per trial (Trial.set_constraint) and deprecates the sampler's
# constraints_func; Optuna 4 has only the latter. Both read the same values.
_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")
_CONSTRAINTS_ATTR = "constraints"


def set_constraints(trial: optuna.Trial, **values: float) -> None:
    """Feasible when every value is <= 0 (Optuna's convention)."""
    if _SET_CONSTRAINT:
        for key, value in values.items():
            trial.set_constraint(key, value)
    else:
        trial.set_user_attr(_CONSTRAINTS_ATTR, [float(v) for v in values.values()])


def constraints_of(trial: optuna.trial.FrozenTrial):
    """The sampler's ``constraints_func`` on Optuna 4 (unused on Optuna 5)."""
    return tuple(trial.user_attrs.get(_CONSTRAINTS_ATTR, (0.0,)))


def sampler_options() -> Dict[str, object]:
    """What a sampler needs to read the trials' constraints: nothing on Optuna 5."""
    return {} if _SET_CONSTRAINT else {"constraints_func": constraints_of}


def reward(accuracy: float, flops: int, latency_ms: float, beta: float, gamma: float) -> float:
    """``acc - beta * ln(FLOPs) - gamma * latency_ms`` (acc in [0, 1])."""
    return accuracy - beta * math.log(flops) - gamma * latency_ms


def suggest_arch(trial: optuna.Trial, space: SearchSpace) -> Architecture:
    """One categorical suggestion per decision, by its grammar label."""
    choices = {d.name: trial.suggest_categorical(d.name, list(d.labels)) for d in space.decisions}
    return space.arch_from_choices(choices)


def labels_of(space: SearchSpace, arch: Architecture) -> Dict[str, str]:
    """The Optuna parameters that :func:`suggest_arch` turns into ``arch``."""
    choices = space.choices_of(arch)
    return {d.name: d.labels[d.values.index(choices[d.name])] for d in space.decisions}


class Objective:
    """The trial function: holds the space, the accuracy estimator and the latency model.

    Args:
        config: the search's settings.
        space: the space the trials suggest from.
        estimator: scores an architecture (:mod:`nas.estimators`).
        latency_model: prices it (:mod:`nas.latency`).
        proxy: the input the estimator sees (``proxy_flops`` are counted there).
    """

    def __init__(self, config: SearchConfig, space: SearchSpace, estimator, latency_model,
                 proxy: InputSpec):
        self.config, self.space = config, space
        self.estimator, self.latency, self.proxy = estimator, latency_model, proxy

    def penalty(self, flops: int):
        """Values of an infeasible trial: finite, and never better than a feasible one."""
        if self.config.objective == "pareto":
            return 0.0, float(flops), 1e6
        return reward(0.0, flops, 1e6, self.config.beta, self.config.gamma)

    def suggest(self, trial: optuna.Trial) -> Architecture:
        """The trial's architecture (one categorical parameter per decision)."""
        return suggest_arch(trial, self.space)

    def __call__(self, trial: optuna.Trial):
        return self.evaluate(trial, self.suggest(trial))

    def evaluate(self, trial: optuna.Trial, arch: Architecture):
        """Budget check, latency, accuracy and reward of ``arch``; the trial's values."""
        cfg = self.config
        cost = count_cost(arch)
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("flops", cost.flops)
        trial.set_user_attr("params", cost.params)
        proxy = count_cost(arch, self.proxy)
        trial.set_user_attr("proxy_flops", proxy.flops)
        trial.set_user_attr("proxy_params", proxy.params)
        trial.set_user_attr("resolution", self.proxy.resolution)
        over = (cost.flops - cfg.budget) / cfg.budget  # relative overshoot; <= 0 is feasible
        if cost.flops > cfg.budget:
            set_constraints(trial, flops=over, **({"latency": 0.0} if cfg.latency_budget_ms
                                                  else {}))
            trial.set_user_attr("feasible", False)
            trial.set_user_attr("rejected", "flops")
            return self.penalty(cost.flops)
        start = time.perf_counter()
        latency = self.latency.predict(arch)
        trial.set_user_attr("latency_ms", round(latency, 3))
        # torch | onnxruntime | onnxruntime-int8, and measured | table
        trial.set_user_attr("latency_backend", self.latency.backend)
        trial.set_user_attr("latency_source", self.latency.source)
        trial.set_user_attr("latency_s", round(time.perf_counter() - start, 4))
        for name, value in self.latency.used().items():  # e.g. int8 quantisation seconds
            trial.set_user_attr(name, value)
        if cfg.latency_budget_ms:
            late = (latency - cfg.latency_budget_ms) / cfg.latency_budget_ms
            set_constraints(trial, flops=over, latency=late)
            if latency > cfg.latency_budget_ms:
                trial.set_user_attr("feasible", False)
                trial.set_user_attr("rejected", "latency")
                return self.penalty(cost.flops)
        else:
            set_constraints(trial, flops=over)
        start = time.perf_counter()
        acc = self.estimator.score([arch])[0]
        trial.set_user_attr("eval_s", round(time.perf_counter() - start, 4))
        r = reward(acc, cost.flops, latency, cfg.beta, cfg.gamma)
        trial.set_user_attr("accuracy", acc)  # the estimate (see "estimator")
        trial.set_user_attr("estimator", self.estimator.name)
        trial.set_user_attr("reward", r)
        for name, value in self.estimator.used().items():  # what the estimate rests on
            trial.set_user_attr(name, value)
        caveat = self.estimator.caveat(arch)
        if caveat:
            trial.set_user_attr("caveat", caveat)
        trial.set_user_attr("feasible", True)
        if cfg.objective == "pareto":
            return acc, float(cost.flops), latency
        return r


def warm_start(study: optuna.Study, space: SearchSpace, budget: int) -> List[str]:
    """Queue MixNet-S/M when they are points of the space within budget and not yet tried."""
    tried = {t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)}
    queued = []
    for preset in PRESETS:
        if preset in available_spaces() and preset not in tried:
            arch = load_space(preset).sample(0)
            if space.contains(arch) and count_cost(arch).flops <= budget:
                study.enqueue_trial(labels_of(space, arch), user_attrs={"preset": preset})
                queued.append(preset)
    return queued
