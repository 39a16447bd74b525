"""Shared by the kill-and-resume tests: start a command, SIGKILL it mid-run."""

import os
import signal
import subprocess
import time

import optuna

from nas.search import open_storage
from nas.search.storage import storage_file


def kill_after_file(cmd, path, env=None, timeout=240) -> None:
    """Run ``cmd`` in its own process group and SIGKILL the group once ``path`` exists
    (its first checkpoint): what a crash or an out-of-memory kill leaves behind."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_mid_evaluation(storage, study_name, deadline_s=180):
    """SIGKILL the worker of a trial that is being evaluated; returns (pid, trial number)."""
    deadline = time.time() + deadline_s
    path = storage_file(storage)
    # One storage for every look: each new RDBStorage keeps pooled connections until the
    # cyclic garbage collector frees it, and PostgreSQL refuses clients past its
    # max_connections (100): "too many clients already" while a loaded machine polled long.
    opened = None
    while time.time() < deadline:
        if opened is None:
            if path is not None and not path.exists():
                time.sleep(0.2)  # not yet created by the search (and not to be created here)
                continue
            opened = open_storage(storage)
        try:
            study = optuna.load_study(study_name=study_name, storage=opened)
        except KeyError:
            time.sleep(0.2)
            continue
        for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            attrs = t.user_attrs
            if "latency_ms" in attrs and "accuracy" not in attrs and "worker" in attrs:
                pid = int(attrs["worker"].rsplit(":", 1)[1])
                os.kill(pid, signal.SIGKILL)
                return pid, t.number
        time.sleep(0.05)
    raise AssertionError("no trial was caught mid-evaluation")


def check_study(storage, study_name, total, killed):
    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).trials
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == total  # exact
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.WAITING not in states
    assert len({t.number for t in trials}) == len(trials)
    if killed is None:
        return
    assert trials[killed].state == optuna.trial.TrialState.FAIL
    retries = [t for t in complete if t.user_attrs.get("retry_of") == killed
               or t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, "the killed trial is retried exactly once"
    assert retries[0].params == trials[killed].params


def open_together(rounds, barrier, results) -> None:
    """One of several processes opening new studies as ``nas search`` does: each round,
    wait for the others at ``barrier``, then open (create) the round's study; puts one
    ``(round, error or None)`` per round on ``results``. ``rounds``: ``(--storage value
    or "", run directory)`` each, a new study each."""
    from nas.runs import SearchDir
    from nas.search import SearchConfig
    from nas.search.trials import open_study

    for i, (storage, run_dir) in enumerate(rounds):
        config = SearchConfig(budget=1, storage=storage)
        barrier.wait(timeout=120)
        try:
            study = open_study(config, SearchDir(run_dir))
            error = None if study.study_name == config.study else "another study"
        except Exception as e:  # noqa: BLE001 (what the test counts)
            error = f"{type(e).__name__}: {e}"
        results.put((i, error))
