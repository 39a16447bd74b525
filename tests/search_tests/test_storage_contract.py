"""One contract, run over every storage a study can live in (Optuna's pytest_storages
pattern): the run's own SQLite file, a journal file, and PostgreSQL.

The contract a search relies on:

* **kill**: a process SIGKILLed mid-evaluation leaves its trial RUNNING; the next process
  that looks (the rerun of the command) fails it and retries it exactly once, with the same
  parameters, and the trials finished before the kill are kept unchanged;
* **resume**: rerunning with a larger ``--trials`` tops the study up to that total, keeping
  every finished trial as it was; the same total runs nothing;
* **exact total**: however many processes run, the study ends with exactly the total of
  complete trials (a storage several processes cannot share, SQLite, refuses ``--workers``);
* **no duplicate**: trial numbers are unique and no trial is left RUNNING or queued.
"""

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from processes import check_study, kill_mid_evaluation

from nas.cli import main
from nas.search import SearchConfig, open_storage, recover, run_search

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)
BACKENDS = ["sqlite", "journal", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """``(name, --storage value or "", URL to read the study from, run directory)``."""
    run_dir = tmp_path / "run"
    if request.param == "sqlite":
        return "sqlite", "", f"sqlite:///{run_dir / 'study.db'}", run_dir
    if request.param == "journal":
        url = f"journal:{tmp_path / 'study.journal'}"
        return "journal", url, url, run_dir
    url = request.getfixturevalue("postgres")
    return "postgresql", url, url, run_dir


def _study_name(request) -> str:
    return "c-" + request.node.name.split("[")[0][-20:] + "-" + request.node.callspec.id


def _cmd(storage, study, run_dir, supernet, trials, *extra):
    # 3,000 validation images make evaluation the slow part of a trial (~1 s), so a kill
    # lands mid-evaluation reliably.
    return [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY,
            *(["--storage", storage] if storage else []), "--study", study,
            "--supernet", supernet, "--trials", str(trials), "--val-images", "3000",
            "--recalibration-batches", "1", "-o", str(run_dir), *extra]


def _complete(url, study):
    trials = optuna.load_study(study_name=study, storage=open_storage(url)).trials
    return {t.number: (t.values, t.params) for t in trials
            if t.state == optuna.trial.TrialState.COMPLETE}


def test_kill_mid_evaluation_then_rerun_retries_it_once(backend, tiny_supernet, request):
    name, storage, url, run_dir = backend
    study = _study_name(request)
    cmd = _cmd(storage, study, run_dir, tiny_supernet, 6)
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid, killed = kill_mid_evaluation(url, study)
    first.wait()
    assert pid == first.pid
    before = _complete(url, study)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    check_study(url, study, 6, killed)
    after = _complete(url, study)
    assert all(after[n] == v for n, v in before.items())  # nothing lost or redone


def test_rerun_tops_up_to_the_total_and_keeps_finished_trials(backend, tiny_supernet, request):
    name, storage, url, run_dir = backend
    config = dict(budget=8_000_000, space=TINY, supernet=tiny_supernet, val_images=100,
                  recalibration_batches=1, latency_repeats=1, storage=storage,
                  study=_study_name(request))
    assert run_search(SearchConfig(trials=3, **config), run_dir, progress=False,
                      log=lambda m: None).trials == 3
    before = _complete(url, config["study"])
    assert run_search(SearchConfig(trials=5, **config), run_dir, progress=False,
                      log=lambda m: None).trials == 5
    after = _complete(url, config["study"])
    assert len(after) == 5 and all(after[n] == v for n, v in before.items())
    assert run_search(SearchConfig(trials=5, **config), run_dir, progress=False,
                      log=lambda m: None).trials == 5
    assert _complete(url, config["study"]) == after
    check_study(url, config["study"], 5, killed=None)


def test_several_processes_reach_the_exact_total(backend, tiny_supernet, request, capsys):
    name, storage, url, run_dir = backend
    study = _study_name(request)
    if name == "sqlite":  # one writer: several processes are refused, nothing is written
        assert main(_cmd(storage, study, run_dir, tiny_supernet, 6, "--workers", "2")[3:]) == 2
        assert "SQLite" in capsys.readouterr().err and not run_dir.exists()
        return
    done = subprocess.run(_cmd(storage, study, run_dir, tiny_supernet, 7, "--workers", "2",
                               "--val-images", "100"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    check_study(url, study, 7, killed=None)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() by hand, not optimize()
def test_recover_fails_dead_trials_and_requeues_them_with_their_parameters(backend, tmp_path,
                                                                          request):
    """In process: what a killed worker leaves (a RUNNING trial owned by a dead process, a
    queued trial) is recovered once; live workers' trials are left alone."""
    name, storage, url, run_dir = backend
    if name == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url, create=True),
                                study_name=_study_name(request))
    x = {"x": optuna.distributions.CategoricalDistribution(["a", "b", "c"])}
    study.enqueue_trial({"x": "c"}, user_attrs={"preset": "p"})
    dead = study.ask()  # pops the queued trial: RUNNING with its fixed parameters...
    dead.suggest_categorical("x", ["a", "b", "c"])
    dead.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # ...then its process died
    alive = study.ask(x)
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert recover(study) == 1
    assert recover(study) == 0  # once
    states = {t.number: t.state for t in study.trials}
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    retry = study.ask()
    assert retry.suggest_categorical("x", ["a", "b", "c"]) == "c"  # the same parameters
    assert retry.user_attrs["retry_of"] == dead.number and retry.user_attrs["preset"] == "p"
    assert recover(study, all_running=True) == 2  # the caller holds the run lock


@pytest.mark.parametrize("storage", ["", "sqlite:///x.db"])
def test_several_workers_refuse_sqlite(tmp_path, capsys, storage):
    argv = ["search", "--budget", "8M", "--space", TINY, "--workers", "2", "-o",
            str(tmp_path / "a")] + (["--storage", storage] if storage else [])
    assert main(argv) == 2
    assert "SQLite" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_many_processes_open_one_new_study_together(kind, tmp_path):
    """8 processes open (create) one new study together, as a search does, 3 rounds with a
    new file each: none fails. Before the schema came into being atomically, a quarter of
    the SQLite openings failed here (8 of 32, Optuna's schema stamp: ``UNIQUE constraint
    failed: alembic_version.version_num``). Seconds: the processes start once, and each
    opening costs Optuna's schema checks (~0.5 s of CPU)."""
    import multiprocessing

    from processes import open_together

    openers, rounds = 8, 3
    runs = [tmp_path / f"run{i}" for i in range(rounds)]
    for run in runs:  # as a search makes it before it opens the study
        run.mkdir()
    studies = [("" if kind == "sqlite" else f"journal:{run / 'study.journal'}", str(run))
               for run in runs]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    barrier, results = spawn.Barrier(openers), spawn.Queue()
    procs = [spawn.Process(target=open_together, args=(studies, barrier, results))
             for _ in range(openers)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in range(openers * rounds)]
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * openers
    assert [error for _, error in outcomes if error] == []
    for i, run in enumerate(runs):
        assert sum(1 for r, _ in outcomes if r == i) == openers
        url = studies[i][0] or f"sqlite:///{run / 'study.db'}"
        assert optuna.get_all_study_names(open_storage(url)) == ["nas-search"]  # one study
    if kind == "sqlite":  # no private copy is left beside the study
        # SQLite's own -wal and -shm files stay while a connection is open and go with the
        # last one (here when the garbage collector frees a storage): either is right
        names = {p.name for p in runs[0].iterdir()} - {"study.db-wal", "study.db-shm"}
        assert names == {"study.db"}
        with contextlib.closing(sqlite3.connect(runs[0] / "study.db")) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_readers_never_create_a_study(kind, tmp_path, capsys):
    """What only reads a run (open_storage without create, nas report, nas export) finds a
    missing study file a one-line error and creates nothing."""
    from nas.errors import RunError

    path = tmp_path / "run" / ("study.db" if kind == "sqlite" else "s.journal")
    url = f"sqlite:///{path}" if kind == "sqlite" else f"journal:{path}"
    with pytest.raises(RunError, match="does not exist"):
        open_storage(url)
    assert not path.parent.exists()
    run = tmp_path / "run"
    run.mkdir()
    config = {"budget": 8_000_000, "space": TINY,
              **({} if kind == "sqlite" else {"storage": f"journal:{path}"})}
    (run / "config.json").write_text(json.dumps(config))
    for argv in (["report", str(run)], ["export", str(run), "--best", "-o", str(tmp_path / "e")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "does not exist" in err[0], err
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


def test_opening_a_study_file_another_program_is_creating_retries(tmp_path, monkeypatch):
    """optuna-dashboard started first creates study.db with Optuna's own, non-atomic steps;
    a search that opens the file meanwhile can meet its half-made schema (an
    IntegrityError from the schema stamp). It looks again instead of failing."""
    import sqlalchemy.exc

    from nas.search import storage as storage_module

    path = tmp_path / "study.db"
    optuna.storages.RDBStorage(f"sqlite:///{path}")  # the other program's file
    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise sqlalchemy.exc.IntegrityError(
                "INSERT INTO alembic_version", (),
                Exception("UNIQUE constraint failed: alembic_version.version_num"))
        return real(*args, **kwargs)

    monkeypatch.setattr(storage_module.optuna.storages, "RDBStorage", racing)
    opened = storage_module.sqlite_storage(path)
    assert len(calls) == 2 and isinstance(opened, real)
