"""A study several workers run together through one storage (PostgreSQL, MySQL, a journal file).

Each worker (a process on this or another host) runs :meth:`SharedStudy.run_until` against
the same storage and study name; Optuna's storage serialises trial creation, so trial
numbers never collide. What this module adds:

* **An exact total.** A worker starts a trial only while finished plus running trials are
  fewer than the total, and a trial that loses the race (another worker asked at the same
  moment, with a lower number) is pruned at once, before any suggestion. When the only
  trials left are other workers' running ones, it waits for them instead of leaving, so a
  worker that dies cannot leave the study short.
* **Dead workers.** RDB storages get Optuna heartbeats: a trial whose worker stops beating
  for ``grace`` seconds is failed by the next worker that looks, and
  ``RetryFailedTrialCallback`` queues its parameters again. A journal file has no
  heartbeats; there the parent of local workers fails and requeues the trials of a worker
  it saw die (:func:`fail_worker_trials`), using the ``worker`` attribute each trial carries.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from typing import Callable, Optional, Sequence

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

__all__ = ["SharedStudy", "open_storage", "worker_id", "fail_worker_trials", "HEARTBEAT_S"]

# No heartbeat for GRACE_S seconds: the worker is dead. NAS_HEARTBEAT_GRACE_S overrides it
# (tests shorten it; on a busy cluster lengthen it).
GRACE_S = max(2, int(os.environ.get("NAS_HEARTBEAT_GRACE_S", "20")))
HEARTBEAT_S = max(1, GRACE_S // 4)  # seconds between a running trial's heartbeats
MAX_RETRY = 3


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(url: str):
    """An Optuna storage for ``url``: ``journal:PATH`` or an RDB URL (with heartbeats)."""
    if url.startswith("postgresql://"):  # SQLAlchemy's default driver differs by version
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def fail_worker_trials(study: optuna.Study, worker: Optional[str] = None) -> int:
    """Fail the RUNNING trials of a dead worker and queue their parameters again (up to
    ``MAX_RETRY`` times per trial). ``worker=None``: every worker of this host whose
    process is gone, which is how storages without heartbeats (a journal file, SQLite)
    recover from a SIGKILL."""
    host = socket.gethostname()
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker")
        if not isinstance(owner, str):
            continue
        if worker is not None:
            dead = owner == worker
        else:
            name, _, pid = owner.rpartition(":")
            dead = name == host and pid.isdigit() and not _pid_alive(int(pid))
        if not dead:
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # finished or failed meanwhile
            continue
        retries = t.user_attrs.get("retries", 0)
        if isinstance(retries, int) and retries < MAX_RETRY:
            params = t.params or t.system_attrs.get("fixed_params", {})
            study.enqueue_trial(params, user_attrs={"retry_of": t.number,
                                                    "retries": retries + 1},
                                skip_if_exists=False)
        count += 1
    return count


class SharedStudy:
    """Run trials of ``study`` until it holds ``total`` complete ones, alongside other workers."""

    def __init__(self, study: optuna.Study, poll_s: float = 1.0):
        self.memory = study  # the name BufferedStudy uses: what reports read
        self.poll_s = poll_s
        self.retried = 0

    def completed(self) -> int:
        return len(self.memory.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def mark_running(self, trial: optuna.Trial) -> None:
        """Nothing to do: every write already reaches the shared storage."""

    def _ahead(self, number: Optional[int] = None) -> int:
        """Complete trials plus running (and queued) trials numbered below ``number``;
        with None, complete plus all running ones."""
        count = 0
        states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        for t in self.memory.get_trials(deepcopy=False, states=states):
            if t.state == TrialState.COMPLETE:
                count += 1
            elif number is None:
                count += t.state == TrialState.RUNNING
            elif t.number < number:
                count += 1
        return count

    def run_until(self, objective: Callable[[optuna.Trial], object], total: int,
                  timeout: Optional[float] = None,
                  callbacks: Sequence[Callable] = ()) -> None:
        start = time.monotonic()

        def guarded(trial: optuna.Trial):
            # First: a worker killed from here on leaves a trial its host can attribute.
            trial.set_user_attr("worker", worker_id())
            # Another worker asked at the same moment with a lower number (or a queued
            # retry sits below this one): this trial would overshoot the total. Pruned
            # before any suggestion or evaluation.
            if self._ahead(trial.number) >= total:
                raise optuna.TrialPruned("total reached by other workers")
            return objective(trial)

        while timeout is None or time.monotonic() - start < timeout:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                fail_stale_trials(self.memory)  # no-op without heartbeats
            self.retried += fail_worker_trials(self.memory)  # dead processes of this host
            if self.completed() >= total:
                return
            if self._ahead() >= total:  # the rest are running elsewhere: wait for them
                time.sleep(self.poll_s)
                continue
            try:
                self.memory.optimize(guarded, n_trials=1, callbacks=list(callbacks), catch=())
            except UpdateFinishedTrialError:
                # Our heartbeat went silent past the grace period and another worker failed
                # (and requeued) this trial: carry on with the next one.
                continue
