"""One process's share of a study: open it, build the estimator and the latency model,
run trials until the study holds ``--trials``, and print a line per finished trial.

:mod:`.run` (``nas search``) calls :func:`run_trials` in its own process, :mod:`.workers`
in each worker process; both sit above this module, which imports neither.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import optuna

from ..data import same_data
from ..errors import RunError, UsageError
from ..runs import SearchDir
from ..space import load_space
from .config import SearchConfig
from .loop import completed, run_until
from .objective import Objective, warm_start
from .results import study_url
from .samplers import make_sampler
from .scoring import build_estimator, proxy_warning
from .storage import open_storage, repair_journal, storage_failure, storage_file, storage_name

__all__ = ["run_trials", "open_study", "supernet_file", "check_supernet", "scored_images",
           "latency_calibration", "check_same_supernet"]

def supernet_file(config: SearchConfig, run: SearchDir) -> Path:
    from ..runs import supernet_checkpoint

    return supernet_checkpoint(config.supernet) if config.supernet else run.supernet.checkpoint


def check_supernet(config: SearchConfig, sn) -> int:
    """The input side every trial uses: the supernet's (calibration, scoring, the proxy
    FLOPs and the export all use it). Returns it.

    Raises:
        RunError: the supernet is not of the search's space (or of another version of its
            file), or ``--resolution`` asks for another size than it was trained at (its
            BatchNorm statistics and weights fit that size only).
        UsageError: ``--supernet`` was trained on other data than ``--data``.
    """
    space = load_space(config.space)
    if sn.supernet.space.name == space.name and sn.supernet.space.text != space.text:
        raise RunError(f"the supernet was trained on another version of space {space.name} "
                       "(its file has changed since): train a supernet on this one, or "
                       "restore the file")
    if sn.supernet.space.name != space.name:
        raise RunError(f"the supernet was trained on space {sn.supernet.space.name}, "
                       f"not on {space.name}")
    if config.supernet and not same_data(sn.config.data, config.data):
        # its own validation split scores the trials: recording --data would be wrong
        raise UsageError(f"--supernet {config.supernet} was trained on {sn.config.data}, not "
                         f"on --data {config.data}: give --data {sn.config.data} (the trials "
                         "are scored on the supernet's own validation split)")
    if config.resolution and config.resolution != sn.resolution:
        raise RunError(
            f"--resolution {config.resolution}: the supernet {config.supernet or ''} was "
            f"trained at {sn.resolution}x{sn.resolution} px, and BatchNorm calibration, "
            "scoring and the export must use the size it was trained at: omit --resolution "
            f"to search at {sn.resolution} px, or train a supernet at {config.resolution} "
            f"(nas supernet train --resolution {config.resolution})")
    return sn.resolution


def scored_images(config: SearchConfig, validation, classes):
    """The validation images every trial is scored on: the first ``--val-images``.

    Raises:
        DataError: too few to hold one image per class, or of one class only.
    """
    import torch

    from ..data import require_classes

    scored = validation.subset(torch.arange(min(config.val_images, len(validation))))
    require_classes(scored, classes, f"the validation images scored per trial "
                    f"(--val-images {config.val_images})", "raise --val-images")
    return scored


def open_study(config: SearchConfig, run: SearchDir, seed_offset: int = 0) -> optuna.Study:
    """The run's study (created on first use) with the configured sampler."""
    directions = (["maximize", "minimize", "minimize"] if config.objective == "pareto"
                  else ["maximize"])
    url = study_url(config, run)
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if url.startswith("journal:"):
            repair_journal(storage_file(url))  # a line cut short by a full disk
        study = optuna.create_study(storage=open_storage(url, create=True),
                                    study_name=config.study,
                                    directions=directions, load_if_exists=True)
    except (SQLAlchemyError, ImportError, OSError, ValueError) as e:
        why = storage_failure(e, url) or f"{e.__class__.__name__}: {str(e).splitlines()[0]}"
        raise RunError(f"cannot open the study in {storage_name(url)}: {why}") from None
    # A rerun continues with a sampler seeded past the trials done (the same seed would
    # replay the first run's suggestions); workers sharing a study add their own offset.
    study.sampler = make_sampler(config, config.seed + len(study.trials) + seed_offset)
    return study


def check_same_supernet(study: optuna.Study, path: Path) -> None:
    """Every worker of a study must score with the same supernet (checked by its hash)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = study.user_attrs.get("supernet_sha256")
    if stored is None:
        study.set_user_attr("supernet_sha256", digest)
    elif stored != digest:
        raise RunError(f"study {study.study_name!r} was started with another supernet "
                       f"than {path} (sha256 differs); give every worker the same --supernet")


def latency_calibration(config: SearchConfig, space, sn):
    """What ``--latency onnxruntime-int8`` calibrates every trial's network on: the same
    training images of the search's data (the supernet's, with its validation carve left
    out), at the space's target input; None for the other backends."""
    from ..latency import INT8

    if config.latency != INT8:
        return None
    from ..latency.quantize import CALIBRATION_INPUTS
    from ..train import calibration_inputs

    inp = space.input
    if sn is not None:  # the trials are scored on the supernet's data and carve
        c = sn.config
        data, carve = c.data, dict(val_fraction=c.val_fraction, split_seed=c.split_seed,
                                   crop_pct=c.crop_pct, data_mode=c.data_mode)
    else:
        data, carve = config.data, dict(data_mode=config.data_mode)
    return calibration_inputs(data, CALIBRATION_INPUTS, inp.resolution, seed=0,
                              channels=inp.channels, **carve)


def run_trials(config: SearchConfig, run: SearchDir, sn, log=print, prefix: str = ""):
    """This process's share of the study: trials until it holds ``config.trials``.

    Returns ``(study, trials of dead processes retried)``.
    """
    from ..latency import make_latency_model

    space = load_space(config.space)
    if sn is not None:
        check_supernet(config, sn)
        scored_images(config, sn.loaders()[1].data, sn.dataset.classes)  # can it rank?
    estimator, proxy = build_estimator(config, sn, run)
    note = proxy_warning(space, proxy.resolution)
    if note and not prefix:
        log(note)
    log(f"{prefix}accuracy estimator: {estimator.describe()}")
    shared = bool(config.storage)
    study = open_study(config, run, seed_offset=os.getpid() if shared else 0)
    if shared and sn is not None:
        check_same_supernet(study, supernet_file(config, run))
    if not shared or not study.trials:
        warm_start(study, space, config.budget)
    latency = make_latency_model(config.latency, repeats=config.latency_repeats,
                                 num_threads=config.latency_threads,
                                 calibration=latency_calibration(config, space, sn))
    if study.user_attrs.get("latency") != latency.describe():
        study.set_user_attr("latency", latency.describe())  # which backend measured
    log(f"{prefix}latency: {latency.describe()}")
    objective = Objective(config, space, estimator, latency, proxy)

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            return
        a = trial.user_attrs
        if not a.get("feasible"):
            if a.get("rejected") == "latency":
                what = (f"over the latency budget ({a.get('latency_ms', 0):.1f} ms > "
                        f"{config.latency_budget_ms:g} ms), not evaluated")
            else:
                what = (f"over the FLOPs budget ({a.get('flops', 0) / 1e6:.1f}M > "
                        f"{config.budget / 1e6:g}M FLOPs), not evaluated")
        elif estimator.is_accuracy:
            what = (f"{a['flops'] / 1e6:6.1f}M FLOPs  acc {a['accuracy']:.2%}  "
                    f"{a['latency_ms']:.1f} ms  reward {a['reward']:.4f}")
        else:
            what = (f"{a['flops'] / 1e6:6.1f}M FLOPs  {estimator.name} {a['accuracy']:.2f}  "
                    f"{a['latency_ms']:.1f} ms")
        # Optuna's number names the trial, as trials.csv, the report and `nas export
        # --trial` do; the count of complete trials beside it only shows progress.
        retry = a.get("retry_of", trial.system_attrs.get("failed_trial"))
        done = f"{completed(study)}/{config.trials} done" + (
            f", retry of trial {retry}" if isinstance(retry, int) else "")
        log(f"{prefix}trial {trial.number} ({done}): {what}")
        if a.get("caveat") and not warned and not prefix:  # workers: counted at the end
            warned.append(trial.number)
            log(f"warning: trial {trial.number}: {a['caveat']} (each such trial keeps the "
                "note in its 'caveat' attribute)")

    warned: list = []

    total = config.trials
    if config.sampler_kind == "evolution":  # its picks are queued; the loop records them
        from .evolution import queue_evolution

        total = queue_evolution(config, study, space, estimator, latency, log=log)
    retried = run_until(study, objective, total, timeout=config.timeout or None,
                        callbacks=[report], owns_study=not shared)
    if retried:
        log(f"{prefix}retried {retried} trial(s) interrupted by a previous run")
    return study, retried
