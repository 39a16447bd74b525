"""Write one finished trial to an Optuna RDB study in a handful of SQL statements.

Why not ``study.add_trial``: Optuna's RDB storage writes a template trial row by row,
and for every parameter it looks the trial up again and queries the study's earlier
distribution of that name. A ``mixnet_300m`` trial has 70 parameters, so persisting one
over-budget trial (which needs no evaluation) cost ~115 ms of ORM queries. Here the trial
row is inserted, then each child table takes one multi-row insert, all in one
transaction: the rows are exactly the ones ``add_trial`` writes (the test suite checks
this against ``add_trial`` as the oracle), through Optuna's own table models.

Those models are private Optuna API, which is why pyproject bounds optuna to 5.0.x.
Distribution compatibility is not re-checked here: the caller's trials come from an
in-memory copy of the same study, whose ``suggest_*`` calls already checked it.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy
from optuna.distributions import distribution_to_json
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial

__all__ = ["insert_finished_trial"]


def insert_finished_trial(storage: RDBStorage, study_id: int, trial: FrozenTrial) -> int:
    """Append finished ``trial`` to study ``study_id``; returns its trial id."""
    if not trial.state.is_finished():
        raise ValueError(f"trial {trial.number} is {trial.state.name}, not finished")
    with _create_scoped_session(storage.scoped_session) as session:
        # Lock the study row as Optuna does (on PostgreSQL/MySQL; SQLite's single writer
        # and the run lock serialise writers there), so the number below is race-free.
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        row = models.TrialModel(study_id=study_id, number=None, state=trial.state,
                                datetime_start=trial.datetime_start or datetime.now(),
                                datetime_complete=trial.datetime_complete or datetime.now())
        session.add(row)
        session.flush()  # assigns trial_id
        row.number = row.count_past_trials(session)
        tid = row.trial_id
        _insert(session, models.TrialParamModel, [
            {"trial_id": tid, "param_name": name,
             "param_value": trial.distributions[name].to_internal_repr(value),
             "distribution_json": distribution_to_json(trial.distributions[name])}
            for name, value in trial.params.items()])
        values = [] if trial.values is None else trial.values
        _insert(session, models.TrialValueModel, [
            dict(zip(("value", "value_type"), models.TrialValueModel.value_to_stored_repr(v)),
                 trial_id=tid, objective=i) for i, v in enumerate(values)])
        for model, attrs in ((models.TrialUserAttributeModel, trial.user_attrs),
                             (models.TrialSystemAttributeModel, trial.system_attrs)):
            _insert(session, model, [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                                     for k, v in attrs.items()])
        stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
        _insert(session, models.TrialIntermediateValueModel, [
            dict(zip(("intermediate_value", "intermediate_value_type"), stored(v)),
                 trial_id=tid, step=step) for step, v in trial.intermediate_values.items()])
    return tid


def _insert(session, model, rows) -> None:
    if rows:
        session.execute(sqlalchemy.insert(model), rows)
