"""A search run directory of N synthetic-but-valid trials, built through Optuna's public API
(``optuna.trial.create_trial`` + ``Study.add_trials``), for report tests and the report
benchmark (``experiments/bench/report.py``).

Every trial is a real point of the space (sampled, then stored as the same categorical
parameters ``nas search`` suggests), with its exact FLOPs and params from the cost model.
Accuracy and latency are synthetic: a smooth function of the cost plus seeded noise, and,
when ``planted`` names a decision, a large effect of that decision on accuracy, so a test
knows which decision an importance evaluator must rank first.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import optuna

from nas.cost import count_cost
from nas.files import write_json
from nas.runs import SearchDir
from nas.search import SearchConfig, labels_of, open_study, reward
from nas.space import load_space


def synthetic_run(path, n: int, space: str = "mixnet_300m", budget: int = 300_000_000,
                  objective: str = "reward", sampler: str = "auto", seed: int = 0,
                  planted: str = "") -> Path:
    """Write ``path/config.json`` and ``path/study.db`` with ``n`` complete trials."""
    config = SearchConfig(budget=budget, space=space, objective=objective, sampler=sampler,
                          trials=n, seed=seed).validate()
    run = SearchDir(path)
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.config, config.to_dict())
    study = open_study(config, run)
    the_space = load_space(space)
    distributions = {d.name: optuna.distributions.CategoricalDistribution(list(d.labels))
                     for d in the_space.decisions}
    rng = random.Random(seed)
    trials = []
    for _ in range(n):
        arch = the_space.sample(rng)
        params = labels_of(the_space, arch)
        cost = count_cost(arch)
        attrs = {"arch": str(arch), "flops": cost.flops, "params": cost.params,
                 "proxy_flops": cost.flops // 64}
        feasible = cost.flops <= budget
        if feasible:
            acc = 0.55 + 0.04 * math.log(cost.flops / 1e8) + rng.gauss(0, 0.01)
            if planted:
                acc += 0.1 * the_space.decisions[[d.name for d in the_space.decisions]
                                                 .index(planted)].labels.index(params[planted])
            acc = min(max(acc, 0.0), 1.0)
            latency = round(cost.flops / 2e7 * rng.uniform(0.9, 1.1), 3)
            r = reward(acc, cost.flops, latency, config.beta, config.gamma)
            attrs.update(accuracy=acc, latency_ms=latency, reward=r, bn_batches=4,
                         feasible=True)
            values = [acc, float(cost.flops), latency] if objective == "pareto" else [r]
        else:
            attrs.update(feasible=False, rejected="flops")
            values = ([0.0, float(cost.flops), 1e6] if objective == "pareto"
                      else [reward(0.0, cost.flops, 1e6, config.beta, config.gamma)])
        trials.append(optuna.trial.create_trial(
            params=params, distributions=distributions, values=values, user_attrs=attrs,
            state=optuna.trial.TrialState.COMPLETE))
    study.add_trials(trials)
    return run.path
