"""The controllers: Optuna's own samplers, through its public API only.

* ``tpe``: multivariate TPE (Bergstra et al. 2011; Falkner et al. 2018), 10 random trials
  first, maximising the reward;
* ``nsga2``: NSGA-II (Deb et al. 2002) on (accuracy, FLOPs, latency);
* ``random``: the baseline every controller has to beat;
* ``evolution``: not an Optuna sampler: :mod:`nas.search.evolution` chooses the
  architectures before the trials start and queues them, and the study replays them
  (a random sampler stands by, asked for nothing the queue holds).

Each honours the trials' constraint values (infeasible trials are never preferred).
"""

from __future__ import annotations

import warnings

import optuna
from optuna.exceptions import ExperimentalWarning

from .config import SearchConfig
from .objective import sampler_options

__all__ = ["make_sampler"]


def make_sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``config`` asks for, seeded with ``seed``."""
    kind = config.sampler_kind
    if kind in ("random", "evolution"):
        return optuna.samplers.RandomSampler(seed=seed)
    extra = sampler_options()
    if kind == "nsga2":
        # Optuna's default population (50) would make a default 50-trial search one random
        # first generation; a quarter of the trials gives it ~4 generations to evolve.
        population = max(8, min(50, config.trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, **extra)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" since Optuna 2.2
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, n_startup_trials=10, seed=seed,
                                          **extra)
