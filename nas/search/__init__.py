"""The search: an Optuna study over a space's decisions under a hard FLOPs budget.

    result = run_search(SearchConfig(budget=parse_flops("300M")), "runs/run")   # nas search
    run = open_run("runs/run")                  # what nas report / export / diagnose read
    run.front(), run.best("reward"), run.trial(12)

The modules follow the data flow: :mod:`.config` (the settings), :mod:`.objective` (one
trial: suggest, budget check, latency, supernet accuracy, reward), :mod:`.samplers`
(Optuna's TPE, NSGA-II, random), :mod:`.evolution` (``--sampler evolution``: OFA's
evolution on a predictor, its picks queued as trials), :mod:`.storage` (SQLite, RDB with
heartbeats, journal; recovering dead workers' trials), :mod:`.loop` (trials until the
study holds N), :mod:`.results` (rows, front, ``trials.csv``, :func:`open_run`), :mod:`.trials`
(one process's share of the study), :mod:`.workers` (``--workers N``), :mod:`.rerank`
(``--rerank K``), :mod:`.run` (the command) and :mod:`.pipeline` (``--estimator predictor``:
a reference of the task, its predictor, then the search and the re-ranking, with a plan of
their costs first); a layers contract in pyproject.toml keeps their imports one way.
"""

from ..lazy import lazy_names

# Imported on first use: ``nas report`` reads a run (:mod:`.results`: Optuna) and must not
# pay for what running a search needs (:mod:`.run`: torch, the data, the estimators).
__getattr__, __dir__ = lazy_names(__name__, {
    "DEFAULT_BETA": "config", "DEFAULT_GAMMA": "config", "SEARCH_OBJECTIVES": "config",
    "SEARCH_SAMPLERS": "config", "STUDY_NAME": "config", "SearchConfig": "config",
    "RerankConfig": "config",
    "run_until": "loop", "Objective": "objective", "labels_of": "objective",
    "reward": "objective", "suggest_arch": "objective", "warm_start": "objective",
    "SearchRun": "results", "open_run": "results", "pareto_front": "results",
    "Reranking": "results", "read_rerank": "results",
    "trial_rows": "results", "write_trials_csv": "results", "SearchResult": "run",
    "open_study": "trials", "prepare_run": "run", "run_search": "run", "run_trials": "trials",
    "make_sampler": "samplers", "open_storage": "storage", "recover": "storage",
    "sqlite_storage": "storage", "evolve": "evolution", "queue_evolution": "evolution"})

__all__ = ["DEFAULT_BETA", "DEFAULT_GAMMA", "SEARCH_OBJECTIVES", "SEARCH_SAMPLERS", "STUDY_NAME",
           "SearchConfig", "RerankConfig", "run_until", "Objective", "labels_of", "reward",
           "suggest_arch", "warm_start", "SearchRun", "open_run", "pareto_front", "trial_rows",
           "Reranking", "read_rerank",
           "write_trials_csv", "SearchResult", "open_study", "prepare_run", "run_search",
           "run_trials", "make_sampler", "open_storage", "recover", "sqlite_storage", "evolve",
           "queue_evolution"]
