"""The trial loop: trials until the study holds exactly N complete ones, alongside any
other workers of the same study.

Each trial runs through ``Study.optimize(n_trials=1)``, so Optuna keeps its own
guarantees (heartbeats of RDB storages, a failed trial on any exception, Ctrl-C included),
and the loop adds what a shared study needs:

* **an exact total**: a worker starts a trial only while complete plus running (and
  queued) trials are fewer than the total; a trial that loses the race (another worker
  asked at the same moment, with a lower number) is pruned after its suggestions (so the
  multivariate samplers still see every decision in it) and before any evaluation. When
  the only trials left are other workers' running ones, it waits for them instead of
  leaving, so a worker that dies cannot leave the study short;
* **dead workers**: :func:`~nas.search.storage.recover` fails and requeues the trials of
  processes that are gone (before each trial on a shared storage, once on a run's own);
* **Ctrl-C**: the interrupted trial (failed by Optuna) has its parameters queued again,
  so the next run retries it.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .storage import WORKER_ATTR, recover, requeue, worker_id

__all__ = ["run_until", "completed"]


def completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _ahead(study: optuna.Study, number: Optional[int] = None) -> int:
    """Complete trials plus the running (and queued) trials numbered below ``number``;
    with None, complete plus all running ones."""
    count = 0
    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    for t in study.get_trials(deepcopy=False, states=states):
        if t.state == TrialState.COMPLETE:
            count += 1
        elif number is None:
            count += t.state == TrialState.RUNNING
        elif t.number < number:
            count += 1
    return count


def run_until(study: optuna.Study, objective, total: int, timeout: Optional[float] = None,
              callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
              owns_study: bool = False, poll_s: float = 1.0) -> int:
    """Run trials until ``study`` holds ``total`` complete ones (or ``timeout`` passes).

    Args:
        study: the study, with its sampler.
        objective: has ``suggest(trial)`` (the parameters) and ``evaluate(trial, suggested)``
            (the values), like :class:`~nas.search.objective.Objective`.
        total: complete trials the study should hold.
        timeout: seconds for this call.
        callbacks: called with every trial this process finishes (as ``optimize``'s).
        owns_study: no other process runs trials of this study (the run lock holds): every
            RUNNING trial found is a dead process's, and no race for the total can happen.
        poll_s: how long to wait between looks at other workers' running trials.

    Returns:
        How many trials of dead processes were failed and queued again.
    """
    start = time.monotonic()
    me = worker_id()
    shared = not owns_study
    current = {"number": None}

    def guarded(trial: optuna.Trial):
        current["number"] = trial.number
        # First: a worker killed from here on leaves a trial its host can attribute.
        trial.set_user_attr(WORKER_ATTR, me)
        suggested = objective.suggest(trial)
        if shared and _ahead(study, trial.number) >= total:
            # Another worker asked at the same moment with a lower number (or a queued
            # retry sits below this one): this trial would overshoot the total.
            trial.set_user_attr("overshoot", True)
            raise optuna.TrialPruned("the study's total was reached by other workers")
        return objective.evaluate(trial, suggested)

    # A study only this process runs: whatever is RUNNING now was left by a dead process,
    # and nothing new can appear while we run. On a shared one, a trial this very process
    # left RUNNING was left by an earlier call that failed (a full disk, say: it could not
    # even record the failure), since this call has started none yet: waiting for it to
    # finish would wait forever.
    recovered = recover(study, worker=me) if shared else recover(study, all_running=True)
    while timeout is None or time.monotonic() - start < timeout:
        if shared:
            recovered += recover(study)
        if completed(study) >= total:
            break
        if shared and _ahead(study) >= total:  # the rest are running elsewhere: wait
            time.sleep(poll_s)
            continue
        try:
            study.optimize(guarded, n_trials=1, callbacks=list(callbacks), catch=())
        except KeyboardInterrupt:
            # Optuna failed the trial; queue its parameters so the next run retries it.
            failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                      if t.number == current["number"]]
            if failed:
                requeue(study, failed[0])
            raise
    return recovered
