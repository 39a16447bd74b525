"""Open a finished or running search: its settings, its Optuna study, its trials.

``nas report`` and ``nas export RUN`` read a run directory written by ``nas search``
(``config.json`` plus the study in ``study.db`` or the configured storage). Reading
is safe while the search still runs: only finished trials are listed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
from sqlalchemy.exc import SQLAlchemyError

from .search import SearchConfig, pareto_front, trial_rows
from .shared_study import open_storage
from .train import RunError, supernet_checkpoint

__all__ = ["SearchRun", "open_run", "OBJECTIVES"]

# What ``--best`` maximises: the search reward, or the supernet's validation accuracy.
OBJECTIVES = ("reward", "acc")


@dataclass
class SearchRun:
    """A run directory with its configuration and (finished) trials."""

    path: Path
    config: SearchConfig
    rows: List[Dict[str, Any]]

    @property
    def feasible(self) -> List[Dict[str, Any]]:
        return [r for r in self.rows if r["feasible"]]

    def front(self) -> List[Dict[str, Any]]:
        return pareto_front(self.feasible)

    def supernet_path(self) -> Path:
        return supernet_checkpoint(self.config.supernet) if self.config.supernet else (
            self.path / "supernet" / "supernet.pt")

    def trial(self, number: int) -> Dict[str, Any]:
        for row in self.rows:
            if row["trial"] == number:
                if row.get("malformed"):
                    raise RunError(f"trial {number} of {self.path} has malformed results "
                                   "(missing or non-numeric accuracy, FLOPs or latency)")
                if not row["feasible"]:
                    raise RunError(f"trial {number} of {self.path} is over budget and was "
                                   "never evaluated; pick one from `nas report`")
                return row
        raise RunError(f"{self.path} has no finished trial {number} "
                       f"(finished: {len(self.rows)}; see `nas report {self.path}`)")

    def best(self, objective: str = "reward") -> Dict[str, Any]:
        if objective not in OBJECTIVES:
            raise RunError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                           f"got {objective!r}")
        if not self.feasible:
            raise RunError(f"{self.path} has no feasible trial yet")
        key = "reward" if objective == "reward" else "accuracy"
        # ties: the cheaper network
        return max(self.feasible, key=lambda r: (r[key], -r["flops"]))


def open_run(run_dir) -> SearchRun:
    """Load ``run_dir``'s configuration and finished trials."""
    path = Path(run_dir)
    saved = path / "config.json"
    if not saved.is_file():
        raise RunError(f"{path} is not a search run directory (no config.json); "
                       "it is written by `nas search`")
    try:
        config = SearchConfig.from_dict(json.loads(saved.read_text()))
    except (ValueError, TypeError) as e:
        raise RunError(f"{saved}: not a valid search configuration ({e})") from None
    storage = config.storage or f"sqlite:///{(path / 'study.db').resolve()}"
    if storage.startswith("sqlite:///"):
        # Optuna would create a missing or empty database: reading must not write.
        db = Path(storage[len("sqlite:///"):])
        if not db.is_file() or db.stat().st_size == 0:
            raise RunError(f"{db} does not exist or is empty: the search has not started "
                           "its trials")
    try:
        study = optuna.load_study(study_name=config.study, storage=open_storage(storage))
    except KeyError:
        raise RunError(f"{storage} holds no study named {config.study!r}") from None
    except SQLAlchemyError as e:
        raise RunError(f"cannot read the study in {storage}: {e.__class__.__name__}: "
                       f"{str(e).splitlines()[0]}") from None
    return SearchRun(path, config, [_checked(row) for row in trial_rows(study)])


_NUMBERS = ("accuracy", "flops", "params", "latency_ms", "reward")


def _checked(row: Dict[str, Any]) -> Dict[str, Any]:
    """A feasible row needs finite numbers for what the report and exporter read; one that
    lacks them (an edited or foreign study) is shown, but never ranked or exported."""
    if row["feasible"] is not True:
        row["feasible"] = False
        return row
    ok = all(isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)
             and math.isfinite(row[k]) for k in _NUMBERS)
    if not ok:
        row["feasible"] = False
        row["malformed"] = True
    return row
