"""A study the sampler works on in memory, persisted to an Optuna RDB study trial by trial.

Why: Optuna's RDB storage commits every ``suggest_*`` and every attribute as its own
transaction. A trial of ``mixnet_300m`` suggests 70 parameters, so an over-budget trial
(which needs no evaluation at all) cost ~200 ms of SQLite round trips. Here the sampler
and the objective talk to an ``InMemoryStorage`` copy of the study, and each finished trial
reaches the durable study in one transaction: through
:func:`nas.trial_writer.insert_finished_trial` when the caller hands over the
``RDBStorage`` (a few multi-row inserts), else through ``add_trial``.

Crash safety is kept where it matters: before an expensive evaluation,
:meth:`BufferedStudy.mark_running` writes the trial with its parameters to the durable
study as RUNNING. A process killed during the evaluation leaves exactly that row, which
the next run fails and queues again (:meth:`BufferedStudy.retry_interrupted`). A process
killed between two cheap trials loses at most the one trial it had not yet written.

One process at a time writes a study this way: trials another process adds after we open
it are not seen by our sampler (multi-worker search uses the storage directly).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Sequence

import optuna
from optuna.storages import RDBStorage
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from .trial_writer import insert_finished_trial

__all__ = ["BufferedStudy"]

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


class BufferedStudy:
    """``durable``'s trials mirrored into an in-memory study driven by ``sampler``.

    ``rdb``, when given, is the ``RDBStorage`` ``durable`` was created on; finished
    trials are then written through it in a few multi-row inserts.
    """

    def __init__(self, durable: optuna.Study, sampler: optuna.samplers.BaseSampler,
                 rdb: Optional[RDBStorage] = None):
        self.durable = durable
        self.rdb = rdb
        self.memory = optuna.create_study(sampler=sampler, directions=durable.directions)
        self._durable_ids: Dict[int, int] = {}  # memory trial number -> durable trial id
        self._unfinished: Dict[int, int] = {}  # durable number -> id, of trials to retry
        self.retried = 0
        retry = []
        for t in durable.get_trials(deepcopy=False):
            if t.state in _FINISHED:
                self.memory.add_trial(t)
                continue
            # RUNNING: left by a killed process. WAITING: queued by someone else. A FAIL
            # copy here keeps the numbers of both studies equal; the durable row stays
            # unfinished until its retry is written, so a run that stops before reaching
            # the retry leaves it to the next one.
            self.memory.add_trial(_finished_copy(t, TrialState.FAIL))
            retry.append(t)
        for t in retry:  # queued after every copy, so they number after them in both studies
            params = t.params or t.system_attrs.get("fixed_params", {})
            self.memory.enqueue_trial(params, user_attrs={**_queued_attrs(t), "retry_of": t.number},
                                      skip_if_exists=False)
            self._unfinished[t.number] = t._trial_id
            self.retried += t.state == TrialState.RUNNING

    def completed(self) -> int:
        return len(self.memory.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def mark_running(self, trial: optuna.Trial) -> None:
        """Write ``trial`` (parameters, attributes so far) to the durable study as RUNNING."""
        frozen = self.memory._storage.get_trial(trial._trial_id)
        self._close_original(frozen)
        self._durable_ids[trial.number] = self.durable._storage.create_new_trial(
            self.durable._study_id, template_trial=frozen)

    def run_until(self, objective: Callable[[optuna.Trial], object], total: int,
                  timeout: Optional[float] = None,
                  callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> None:
        """Run trials until the study holds ``total`` complete ones (or ``timeout`` passes)."""
        self.optimize(objective, max(0, total - self.completed()), timeout, callbacks)

    def optimize(self, objective: Callable[[optuna.Trial], object], n_trials: int,
                 timeout: Optional[float] = None,
                 callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> None:
        """Run ``n_trials`` trials (fewer if ``timeout`` seconds pass), persisting each.

        An exception in ``objective`` persists the trial as FAIL and propagates; a
        KeyboardInterrupt leaves it RUNNING in the durable study, to be retried.
        """
        start = time.monotonic()
        for _ in range(n_trials):
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            trial = self.memory.ask()
            try:
                values = objective(trial)
            except Exception:
                _tell(self.memory, trial, None, TrialState.FAIL)
                self._persist(trial)
                raise
            _tell(self.memory, trial, values, None)
            frozen = self._persist(trial)
            for callback in callbacks:
                callback(self.memory, frozen)

    def _persist(self, trial: optuna.Trial) -> FrozenTrial:
        frozen = self.memory._storage.get_trial(trial._trial_id)
        durable_id = self._durable_ids.pop(trial.number, None)
        if durable_id is None:
            self._close_original(frozen)
            if self.rdb is not None:
                insert_finished_trial(self.rdb, self.durable._study_id, frozen)
            else:
                self.durable.add_trial(frozen)  # one transaction, ~2 queries per parameter
            return frozen
        storage = self.durable._storage
        stored = storage.get_trial(durable_id)
        for key, value in frozen.user_attrs.items():
            if stored.user_attrs.get(key, _MISSING) != value:
                storage.set_trial_user_attr(durable_id, key, value)
        for key, value in frozen.system_attrs.items():
            if stored.system_attrs.get(key, _MISSING) != value:
                storage.set_trial_system_attr(durable_id, key, value)
        storage.set_trial_state_values(durable_id, frozen.state, frozen.values)
        return frozen


    def _close_original(self, frozen: FrozenTrial) -> None:
        """The retry of an unfinished durable trial is being written: fail the original."""
        original = self._unfinished.pop(frozen.user_attrs.get("retry_of"), None)
        if original is not None:
            self.durable._storage.set_trial_state_values(original, TrialState.FAIL)


_MISSING = object()


def _tell(study: optuna.Study, trial: optuna.Trial, values, state) -> None:
    # What Study.optimize does after the objective; Study.tell would also deep-copy the
    # finished trial to return it, a millisecond per trial that nothing here needs.
    _tell_with_warning(study, trial, values, state)


def _finished_copy(t: FrozenTrial, state: TrialState) -> FrozenTrial:
    return optuna.trial.create_trial(state=state, params=t.params, distributions=t.distributions,
                                     user_attrs=t.user_attrs, system_attrs=t.system_attrs)


def _queued_attrs(t: FrozenTrial) -> Dict[str, object]:
    # Only what was known when the trial was queued (a preset name), not the
    # half-written results of the interrupted attempt.
    return {k: v for k, v in t.user_attrs.items() if k == "preset"}
