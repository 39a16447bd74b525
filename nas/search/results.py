"""What a search leaves: its trials as rows, the Pareto front, ``RUN/trials.csv``, and
:func:`open_run`, which ``nas report``, ``nas export`` and ``nas diagnose`` read a run with.

Reading is safe while the search still runs: only finished trials are listed. Everything
read comes from a study that anyone may have edited, so a feasible row without finite
numbers is shown but never ranked or exported.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna

from ..errors import CheckpointError, RunError
from ..files import atomic_write_bytes, read_json, shell_path
from ..runs import SearchDir, SupernetDir, supernet_checkpoint
from .config import SearchConfig
from .storage import open_storage, storage_errors, storage_file

__all__ = ["SearchRun", "open_run", "trial_rows", "pareto_front", "write_trials_csv",
           "study_url", "hypervolume", "rejection", "Reranking", "read_rerank", "BEST_OBJECTIVES",
           "TRIAL_COLUMNS"]

# What ``--best`` maximises: the search reward, or the supernet's validation accuracy.
BEST_OBJECTIVES = ("reward", "acc")
TRIAL_COLUMNS = ("trial", "feasible", "accuracy", "flops", "params", "proxy_flops",
                 "proxy_params", "resolution", "latency_ms", "latency_backend",
                 "latency_source", "reward", "bn_batches", "val_images", "caveat", "arch")
_NUMBERS = ("accuracy", "flops", "params", "latency_ms", "reward")


def study_url(config: SearchConfig, run: SearchDir) -> str:
    """Where the run's study is: ``--storage``, else the run's own SQLite file."""
    return config.storage or f"sqlite:///{run.study_db.resolve()}"


def rejection(row: Dict[str, Any]) -> str:
    """Why an infeasible trial was not evaluated, in words: the budget it broke."""
    if row.get("malformed"):
        return "malformed"
    return "over the latency budget" if row.get("rejected") == "latency" else \
        "over the FLOPs budget"


def trial_rows(study: optuna.Study) -> List[Dict[str, Any]]:
    """One dict per complete trial with its stored attributes."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        row = {"trial": t.number, **t.user_attrs}
        row.setdefault("feasible", False)
        rows.append(row)
    return rows


def pareto_front(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Non-dominated rows over (accuracy up, flops down, latency_ms down), by FLOPs."""

    def dominates(a, b) -> bool:
        no_worse = (a["accuracy"] >= b["accuracy"] and a["flops"] <= b["flops"]
                    and a["latency_ms"] <= b["latency_ms"])
        better = (a["accuracy"] > b["accuracy"] or a["flops"] < b["flops"]
                  or a["latency_ms"] < b["latency_ms"])
        return no_worse and better

    front = [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]
    return sorted(front, key=lambda r: r["flops"])


def hypervolume(points, reference) -> float:
    """The hypervolume that ``points`` dominate up to ``reference`` (every objective
    minimised), by moocore's exact algorithms (Fonseca et al. 2006; Beume et al. 2009 in 3
    dimensions). Points not better than the reference in every objective add nothing.

    Args:
        points: ``[n, d]`` objective vectors.
        reference: ``[d]`` the reference point.
    """
    import moocore
    import numpy as np

    pts = np.asarray(points, dtype=float).reshape(-1, len(reference))
    ref = np.asarray(reference, dtype=float)
    pts = pts[np.all(pts < ref, axis=1)]
    return float(moocore.hypervolume(pts, ref=ref)) if len(pts) else 0.0


def write_trials_csv(study: optuna.Study, run: SearchDir) -> None:
    """``RUN/trials.csv``: every complete trial, one row each."""
    import pandas as pd

    frame = pd.DataFrame(trial_rows(study), columns=list(TRIAL_COLUMNS))
    atomic_write_bytes(run.trials_csv, frame.to_csv(index=False).encode())


@dataclass
class Reranking:
    """A re-ranking's result, as ``RUN/rerank.json`` keeps it (:mod:`.rerank`): the recipe
    the trials were retrained with, the winning trial and the table of re-ranked trials
    (one row each, best reward first: ``trial``, ``val_accuracy``, ``val_accuracy_std``,
    ``int8_val_accuracy``, ``reward``, ``estimate``, ``flops``, ``latency_ms``, ``arch``)."""

    recipe: Dict[str, Any]
    winner: int
    table: List[Dict[str, Any]]

    def to_dict(self) -> Dict[str, Any]:
        return {"recipe": self.recipe, "winner": self.winner, "table": self.table}

    def row(self, trial: int) -> Optional[Dict[str, Any]]:
        """The table's row of ``trial``, or None."""
        return next((r for r in self.table if r.get("trial") == trial), None)

    def line(self, run_dir) -> str:
        """What ``nas rerank`` prints: the winner and how to export it."""
        run = SearchDir(run_dir)
        return (f"winner: trial {self.winner}; export it: nas export {shell_path(run.path)} "
                f"--best -o {shell_path(run.export)}")


def read_rerank(run: SearchDir) -> Optional[Reranking]:
    """The re-ranking result of ``run``, or None when it has none."""
    if not run.rerank_json.exists():
        return None
    data = read_json(run.rerank_json, "re-ranking result")
    if not isinstance(data, dict) or not isinstance(data.get("winner"), int) \
            or not isinstance(data.get("table", []), list):
        raise RunError(f"{run.rerank_json}: malformed re-ranking result")
    return Reranking(data.get("recipe", {}), data["winner"], data.get("table", []))


@dataclass
class SearchRun:
    """A run directory with its configuration and finished trials (``rows``: dicts of their
    attributes), and the study they were read from (for the report's importance analysis,
    which needs the parameters)."""

    path: Path
    config: SearchConfig
    rows: List[Dict[str, Any]]
    study: Optional[optuna.Study] = field(default=None, repr=False)

    @property
    def dir(self) -> SearchDir:
        return SearchDir(self.path)

    @property
    def feasible(self) -> List[Dict[str, Any]]:
        return [r for r in self.rows if r["feasible"]]

    def front(self) -> List[Dict[str, Any]]:
        return pareto_front(self.feasible)

    def supernet_path(self) -> Path:
        return (supernet_checkpoint(self.config.supernet) if self.config.supernet
                else self.dir.supernet.checkpoint)

    def trial(self, number: int) -> Dict[str, Any]:
        for row in self.rows:
            if row["trial"] == number:
                if row.get("malformed"):
                    raise RunError(f"trial {number} of {self.path} has malformed results "
                                   "(missing or non-numeric accuracy, FLOPs or latency)")
                if not row["feasible"]:
                    raise RunError(f"trial {number} of {self.path} is {rejection(row)} and "
                                   "was never evaluated; pick one from `nas report "
                                   f"{shlex.quote(str(self.path))}`")
                return row
        raise RunError(f"{self.path} has no finished trial {number} "
                       f"(finished: {len(self.rows)}; see `nas report "
                       f"{shlex.quote(str(self.path))}`)")

    def best(self, objective: str = "reward") -> Dict[str, Any]:
        """The best feasible trial: by reward (the re-ranking's winner when the run has
        one) or by estimated accuracy."""
        if objective not in BEST_OBJECTIVES:
            raise RunError(f"--objective must be one of {', '.join(BEST_OBJECTIVES)}, "
                           f"got {objective!r}")
        if not self.feasible:
            raise RunError(f"{self.path} has no feasible trial yet")
        if objective == "reward":
            reranked = read_rerank(self.dir)
            if reranked is not None:
                return self.trial(reranked.winner)
        key = "reward" if objective == "reward" else "accuracy"
        # ties: the cheaper network
        return max(self.feasible, key=lambda r: (r[key], -r["flops"]))


def open_run(run_dir) -> SearchRun:
    """Load ``run_dir``'s configuration and finished trials."""
    run = SearchDir(run_dir)
    if not run.config.is_file():
        raise RunError(f"{run} is not a search run directory (no {run.config.name}); "
                       "it is written by `nas search`")
    try:
        saved = read_json(run.config, "search configuration")
    except CheckpointError as e:  # its own words, once, as the run's error
        raise RunError(str(e)) from None
    try:
        config = SearchConfig.from_dict(saved, str(run.config), base=run.path)
    except (ValueError, TypeError) as e:
        if SupernetDir(run.path).checkpoint.exists():  # nas supernet train's config.json
            raise RunError(f"{run} is a supernet's directory, not a search run: search with "
                           f"it (nas search --supernet {shell_path(run.path)} ...) and report "
                           "that") from None
        raise RunError(f"{run.config}: not a valid search configuration ({e})") from None
    url = study_url(config, run)
    db = storage_file(url)
    # Optuna would create a missing database or journal file: reading must not write.
    if db is not None and (not db.is_file() or (url.startswith("sqlite:///")
                                                 and db.stat().st_size == 0)):
        raise RunError(f"{db} does not exist or is empty: the search has not started "
                       "its trials")
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with storage_errors(url, "read"):
            study = optuna.load_study(study_name=config.study, storage=open_storage(url))
            rows = trial_rows(study)
    except KeyError:
        raise RunError(f"{url} holds no study named {config.study!r}") from None
    except SQLAlchemyError as e:
        raise RunError(f"cannot read the study in {url}: {e.__class__.__name__}: "
                       f"{str(e).splitlines()[0]}") from None
    return SearchRun(run.path, config, [_checked(row) for row in rows], study)


def _checked(row: Dict[str, Any]) -> Dict[str, Any]:
    """A feasible row needs finite numbers for what the report and exporter read; one that
    lacks them (an edited or foreign study) is shown, but never ranked or exported."""
    if row["feasible"] is not True:
        row["feasible"] = False
        return row
    ok = all(isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)
             and math.isfinite(row[k]) for k in _NUMBERS)
    if not ok:
        row["malformed"] = True
        row["feasible"] = False
    return row
