"""Write one finished trial to an Optuna RDB study in a handful of SQL statements.

Why not ``study.add_trial``: Optuna's RDB storage writes a template trial row by row,
and for every parameter it looks the trial up again and queries the study's earlier
distribution of that name. A ``mixnet_300m`` trial has 70 parameters, so persisting one
over-budget trial (which needs no evaluation) cost ~115 ms of ORM queries. Here one
transaction locks the study row, inserts the trial row and numbers it as Optuna does,
then gives each child table one multi-row insert.
SQLAlchemy Core statements on Optuna's own tables, not ORM sessions: the session's unit
of work cost more than the SQL itself. The rows are exactly the ones ``add_trial`` writes
(the test suite checks this against ``add_trial`` as the oracle).

Those table models are private Optuna API, which is why pyproject bounds optuna to 5.0.x.
Distribution compatibility is not re-checked here: the caller's trials come from an
in-memory copy of the same study, whose ``suggest_*`` calls already checked it. Unlike
``add_trial`` there is no retry when the database is briefly locked: the run's own
SQLite file has one writer (the run lock).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import sqlalchemy
from optuna.distributions import distribution_to_json
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial

__all__ = ["insert_finished_trial"]

_STUDIES = models.StudyModel.__table__
_TRIALS = models.TrialModel.__table__


def insert_finished_trial(storage: RDBStorage, study_id: int, trial: FrozenTrial) -> int:
    """Append finished ``trial`` to study ``study_id``; returns its trial id."""
    if not trial.state.is_finished():
        raise ValueError(f"trial {trial.number} is {trial.state.name}, not finished")
    trial._validate()  # as add_trial does: a finished state with values that fit it
    now = datetime.now()
    with storage.engine.begin() as conn:
        # Lock the study row as Optuna does (FOR UPDATE on PostgreSQL/MySQL).
        found = conn.execute(sqlalchemy.select(_STUDIES.c.study_id)
                             .where(_STUDIES.c.study_id == study_id).with_for_update()).first()
        if found is None:
            raise KeyError(f"no study with study_id {study_id}")
        # Insert first, then number the trial by the study's trials before it, as Optuna
        # does: on SQLite the insert is what takes the write lock, so a count taken
        # before it could race another writer.
        tid = conn.execute(sqlalchemy.insert(_TRIALS).values(
            study_id=study_id, number=None, state=trial.state,
            datetime_start=_utc(trial.datetime_start or now),
            datetime_complete=_utc(trial.datetime_complete or now))).inserted_primary_key[0]
        number = conn.execute(sqlalchemy.select(sqlalchemy.func.count(_TRIALS.c.trial_id))
                              .where(_TRIALS.c.study_id == study_id,
                                     _TRIALS.c.trial_id < tid)).scalar()
        conn.execute(sqlalchemy.update(_TRIALS).where(_TRIALS.c.trial_id == tid)
                     .values(number=number))
        _insert(conn, models.TrialParamModel, [
            {"trial_id": tid, "param_name": name,
             "param_value": trial.distributions[name].to_internal_repr(value),
             "distribution_json": distribution_to_json(trial.distributions[name])}
            for name, value in trial.params.items()])
        values = [] if trial.values is None else trial.values
        _insert(conn, models.TrialValueModel, [
            dict(zip(("value", "value_type"), models.TrialValueModel.value_to_stored_repr(v)),
                 trial_id=tid, objective=i) for i, v in enumerate(values)])
        for model, attrs in ((models.TrialUserAttributeModel, trial.user_attrs),
                             (models.TrialSystemAttributeModel, trial.system_attrs)):
            _insert(conn, model, [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                                  for k, v in attrs.items()])
        stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
        _insert(conn, models.TrialIntermediateValueModel, [
            dict(zip(("intermediate_value", "intermediate_value_type"), stored(v)),
                 trial_id=tid, step=step) for step, v in trial.intermediate_values.items()])
    return tid


def _utc(value: datetime) -> datetime:
    # Optuna stores naive UTC and reads it back as naive local time (TrialModel's setters).
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _insert(conn, model, rows) -> None:
    if rows:
        conn.execute(sqlalchemy.insert(model.__table__), rows)
