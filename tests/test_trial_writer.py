"""The fast trial writer against its oracle, Optuna's own ``add_trial``."""

import math
import time

import optuna
import pytest

import nas
from nas.search import run_storage, suggest_arch
from nas.trial_writer import insert_finished_trial


def _finished_trials(space, n):
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(0))
    for i in range(n):
        trial = study.ask()
        suggest_arch(trial, space)
        trial.set_user_attr("arch", f"a{i}")
        trial.set_user_attr("nested", {"k": [1, 2.5, None]})
        trial.set_constraint("flops", 0.5 - i)
        # (Trial.report refuses multi-objective studies; the storage takes it)
        study._storage.set_trial_intermediate_value(trial._trial_id, 3, 0.25 * i)
        if i == 2:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, [float("-inf") if i == 1 else 0.1 * i, float(i)])
    return study.get_trials()


@pytest.fixture(params=["UTC", "Asia/Kolkata"])
def local_time(request, monkeypatch):
    """Run in a time zone other than UTC too: Optuna stores naive UTC times."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_insert_finished_trial_writes_what_add_trial_writes(tmp_path, local_time):
    trials = _finished_trials(nas.load_space("mixnet_300m"), 5)
    rdb = run_storage(tmp_path / "fast.db")
    fast = optuna.create_study(storage=rdb, study_name="s", directions=["maximize", "minimize"])
    oracle = optuna.create_study(storage=f"sqlite:///{tmp_path / 'oracle.db'}", study_name="s",
                                 directions=["maximize", "minimize"])
    earlier = optuna.trial.create_trial(value=None, state=optuna.trial.TrialState.FAIL)
    oracle.add_trial(earlier)  # numbering counts trials already there
    fast.add_trial(earlier)
    for t in trials:
        oracle.add_trial(t)
        insert_finished_trial(rdb, fast._study_id, t)
    # read back through fresh storages: what a resumed run or `nas report` sees
    got = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'fast.db'}")
    want = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'oracle.db'}")
    assert len(got.trials) == len(want.trials) == 6
    for g, w in zip(got.trials, want.trials):
        for field in ("number", "state", "values", "params", "distributions", "user_attrs",
                      "system_attrs", "intermediate_values", "datetime_start",
                      "datetime_complete"):
            assert getattr(g, field) == getattr(w, field), field
    assert math.isinf(got.trials[2].values[0])
    assert got.trials[1].system_attrs["constraints:flops"] == 0.5


def test_insert_finished_trial_refuses_unfinished(tmp_path):
    rdb = run_storage(tmp_path / "s.db")
    study = optuna.create_study(storage=rdb)
    running = optuna.create_study().ask()
    with pytest.raises(ValueError, match="not finished"):
        insert_finished_trial(rdb, study._study_id, running.study.trials[0])


def test_run_storage_is_in_wal_mode(tmp_path):
    rdb = run_storage(tmp_path / "s.db")
    optuna.create_study(storage=rdb)
    with rdb.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
