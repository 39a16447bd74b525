"""The search: an Optuna study over a space's decisions under a hard FLOPs budget.

    result = run_search(SearchConfig(budget=parse_flops("300M")), "runs/run")   # nas search
    run = open_run("runs/run")                  # what nas report / export / diagnose read
    run.front(), run.best("reward"), run.trial(12)

The modules follow the data flow: :mod:`.config` (the settings), :mod:`.objective` (one
trial: suggest, budget check, latency, supernet accuracy, reward), :mod:`.samplers`
(Optuna's TPE, NSGA-II, random), :mod:`.storage` (SQLite, RDB with heartbeats, journal;
recovering dead workers' trials), :mod:`.loop` (trials until the study holds N),
:mod:`.workers` (``--workers N``), :mod:`.run` (the command) and :mod:`.results` (rows,
front, ``trials.csv``, :func:`open_run`).
"""

from .config import DEFAULT_BETA, DEFAULT_GAMMA, OBJECTIVES, SAMPLERS, STUDY_NAME, SearchConfig
from .loop import run_until
from .objective import Objective, labels_of, reward, suggest_arch, warm_start
from .results import SearchRun, open_run, pareto_front, trial_rows, write_trials_csv
from .run import SearchResult, open_study, prepare_run, run_search, run_trials
from .samplers import make_sampler
from .storage import open_storage, recover, sqlite_storage

__all__ = ["DEFAULT_BETA", "DEFAULT_GAMMA", "OBJECTIVES", "SAMPLERS", "STUDY_NAME",
           "SearchConfig", "run_until", "Objective", "labels_of", "reward", "suggest_arch",
           "warm_start", "SearchRun", "open_run", "pareto_front", "trial_rows",
           "write_trials_csv", "SearchResult", "open_study", "prepare_run", "run_search",
           "run_trials", "make_sampler", "open_storage", "recover", "sqlite_storage"]
