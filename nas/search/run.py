"""``nas search``: validate, lock the run directory, provide the supernet, run the trials,
write the run's files.

The run directory (:class:`nas.runs.SearchDir`) holds ``config.json``, the study (its own
``study.db`` unless ``--storage`` names a shared one), ``trials.csv`` and, unless
``--supernet`` gives one, the supernet the search trained. Rerunning the same command
continues the study: ``--trials`` is a total, and trials a killed process left unfinished
are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional

import optuna

from ..data import FASHION_MNIST_NAMES
from ..errors import RunError
from ..files import read_json, write_json
from ..runs import SearchDir
from ..space import load_space
from .config import SearchConfig
from .objective import warm_start
from .results import pareto_front, read_rerank, study_url, trial_rows, write_trials_csv
from .scoring import needs_supernet
from .storage import (
    check_storage,
    storage_errors,
    study_display,
)
from .trials import (
    check_same_supernet,
    check_supernet,
    open_study,
    run_trials,
    scored_images,
    supernet_file,
)

__all__ = ["SearchResult", "run_search", "prepare_run", "check_settings"]


@dataclass
class SearchResult:
    """What a search invocation reports."""

    trials: int
    feasible: int
    front: List[Dict[str, Any]]
    best: Optional[Dict[str, Any]]
    seconds: float
    retried: int
    rejected: Dict[str, int] = field(default_factory=dict)  # reason -> trials
    study: str = ""  # where the study is (an Optuna storage URL, password hidden)

    def as_json(self) -> str:
        """What ``nas search --json`` prints: trials, feasible, study, front, best."""
        return json.dumps({"trials": self.trials, "feasible": self.feasible,
                           "study": self.study, "front": self.front, "best": self.best})


def prepare_run(config: SearchConfig, run_dir) -> SearchDir:
    """Validate ``config`` against the space and the run directory (writes nothing)."""
    config = config.validate().resolved()
    run = SearchDir(run_dir)
    space = load_space(config.space)
    smallest = space.cost_range().flops_min
    if config.budget < smallest:
        raise RunError(f"budget {config.budget:,} FLOPs is below the smallest architecture of "
                       f"{space.name}: {smallest:,} FLOPs ({smallest / 1e6:.1f}M)")
    if not config.supernet and space.size_problem(1):  # some resolutions are too small
        from ..data import load_dataset
        from ..train import check_resolution

        check_resolution(space, config.resolution
                         or load_dataset(config.data, config.data_mode).resolution)
    if run.config.exists():
        old = SearchConfig.from_dict(read_json(run.config, "search configuration"),
                                     str(run.config), base=run.path)
        clash = config.differences(old)
        if config.supernet and old.data in FASHION_MNIST_NAMES:
            # a run of an earlier version kept the default --data beside a --supernet of
            # other data; its trials were scored on the supernet's (check_supernet holds
            # config.data to it), so it continues, its config.json corrected
            clash.pop("data", None)
        if clash:
            raise RunError(f"{run} holds a search with other settings ("
                           + ", ".join(f"{k}={v!r}" for k, v in clash.items())
                           + "); use another -o or the same settings")
    return run


def supernet_data(config: SearchConfig, sn) -> SearchConfig:
    """``config`` searching on the data of the given supernet ``sn`` (its own validation
    split scores the trials, and the run, its report and its exports must name that data):
    the default ``--data`` becomes the supernet's; another is refused by
    :func:`nas.search.trials.check_supernet`."""
    if config.data in FASHION_MNIST_NAMES:  # the default, or a name of it
        return replace(config, data=sn.config.data)
    return config


def check_settings(config: SearchConfig, run: SearchDir) -> None:
    """Refuse, in seconds, the settings that could otherwise fail only after the supernet
    trained: the device, the latency backend (a table must be readable and made for the
    space; ONNX Runtime installed), the estimator's predictor file, the reference (one
    given must be of this space and data; a band to train must be one the space can fill:
    ``--reference-archs`` architectures near ``--budget``) and the storage (a
    file that can be written, a database server that answers within the connect timeout).
    Writes nothing. (The space, the budget and the run directory's own settings are
    :func:`prepare_run`'s; a given supernet and the data are checked next, also before
    anything is written.)

    Raises:
        NasError: the first setting refused, in one line.
    """
    from ..estimators import check_estimator
    from ..latency import make_latency_model
    from ..train import resolve_device

    resolve_device(config.device)
    latency = make_latency_model(config.latency, repeats=config.latency_repeats,
                                 num_threads=config.latency_threads)
    latency.check(load_space(config.space))
    check_estimator(config.estimator)
    if config.estimator == "predictor":
        from .pipeline import check_reference, plan_reference

        check_reference(config)
        # reads the cache and draws the band's sample: a band the space cannot fill
        # is refused before config.json would tie the run directory to these settings
        plan_reference(config, run)
    check_storage(study_url(config, run))


@contextlib.contextmanager
def _run_lock(run: SearchDir):
    """One ``nas search`` per run directory: a second would fail the first's running trial."""
    handle = run.lock.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunError(f"another nas search is running in {run}; wait for it, or stop it "
                       "and rerun to continue") from None
    try:
        yield
    finally:
        handle.close()


def _supernet(config: SearchConfig, run: SearchDir, progress: bool):
    """The supernet the trials are scored with: given, resumed, or trained here."""
    from ..train import TrainConfig, load_supernet, train_supernet

    if config.supernet:
        return load_supernet(config.supernet, config.device)
    sn = run.supernet
    if sn.checkpoint.exists():
        import torch

        step = torch.load(sn.checkpoint, map_location="cpu", weights_only=True)["step"]
        saved = TrainConfig.from_dict(read_json(sn.config, "training configuration"),
                                      str(sn.config), base=sn.path)
        if step >= saved.steps:
            return load_supernet(sn.checkpoint, config.device)
        return train_supernet(None, sn.path, resume=True, progress=progress)
    return train_supernet(_supernet_config(config), sn.path, progress=progress)


def _supernet_config(config: SearchConfig):
    """How the search trains its own supernet."""
    from ..train import TrainConfig

    return TrainConfig(space=config.space, data=config.data, data_mode=config.data_mode,
                       loader_workers=config.loader_workers, steps=config.supernet_steps,
                       resolution=config.resolution, seed=config.seed, device=config.device,
                       checkpoint_every=max(10, config.supernet_steps // 5))


def _check_data(config: SearchConfig, run: SearchDir, given) -> None:
    """Refuse data the search could not rank with before anything is written: the
    supernet's splits, or the data the search would train its supernet on."""
    if given is not None:
        scored_images(config, given.loaders()[1].data, given.dataset.classes)
        return
    if run.supernet.checkpoint.exists():  # checked when it was trained
        return
    from ..train import data_splits, load_data
    from ..train.loop import train_loader

    train_config = _supernet_config(config)
    dataset = load_data(train_config)
    train, val = data_splits(dataset, train_config)
    ones = [1.0] * dataset.channels
    train_loader(train, dataset, ones, ones, train_config, "cpu")  # at least one batch
    scored_images(config, val, dataset.classes)


def run_search(config: SearchConfig, run_dir, progress: bool = True,
               log: Callable[[str], None] = print) -> SearchResult:
    """Train or load the supernet, run (or continue) the study, write the run's files.

    With ``config.workers > 1`` the trials run in that many worker processes
    (:mod:`nas.search.workers`) sharing ``config.storage``. With ``--estimator predictor``
    the run first trains a reference and fits its predictor (:mod:`nas.search.pipeline`);
    under torchrun every rank trains its share of the reference and rank 0 does the rest.
    """
    # Paths as absolute files: the run works from any directory (config.json keeps files
    # inside the run directory relative to it, so the directory can be moved).
    config = config.validate().resolved()
    given = None
    if config.supernet:  # checked before anything is written
        from ..train import load_supernet, resolve_device

        resolve_device(config.device)  # its error before the checkpoint's
        given = load_supernet(config.supernet, config.device)
        config = supernet_data(config, given)
    run = prepare_run(config, run_dir)
    check_settings(config, run)
    if given is not None:
        check_supernet(config, given)
    _check_data(config, run, given)
    if config.estimator == "predictor":
        from .pipeline import reference_shard, world

        if world()[0] != 0:  # torchrun: rank 0 holds the run directory
            reference_shard(config, run, log)
            return SearchResult(0, 0, [], None, 0.0, 0)
    run.path.mkdir(parents=True, exist_ok=True)
    with _run_lock(run):  # before writing: a refused second search changes nothing
        prepare_run(config, run.path)  # again, under the lock
        write_json(run.config, config.to_dict(run.path))
        # A full disk or a read-only study is one line, and the completed trials stay.
        with storage_errors(study_url(config, run)):
            return _run_search(config, run, progress, log, given)


def _run_search(config: SearchConfig, run: SearchDir, progress: bool, log,
                sn=None) -> SearchResult:
    # Optuna logs every failed trial with its traceback: nas reports failures itself.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if config.estimator == "predictor":
        from .pipeline import build_predictor

        build_predictor(config, run, log)
    if needs_supernet(config.estimator):
        sn = sn or _supernet(config, run, progress)
        check_supernet(config, sn)
    else:
        sn = None
    started = time.perf_counter()
    if config.search_workers > 1:
        from .workers import run_workers  # torch and subprocesses: only when asked for

        study = open_study(config, run)
        if sn is not None:
            check_same_supernet(study, supernet_file(config, run))
        warm_start(study, load_space(config.space), config.budget)
        retried = run_workers(config, run, study, log, echo=progress)
    else:
        study, retried = run_trials(config, run, sn, log)
    write_trials_csv(study, run)
    if config.rerank_top:
        from .rerank import rerank

        rerank(config, run, study, log=log, progress=progress)
    rows = trial_rows(study)
    feasible = [r for r in rows if r["feasible"]]
    flagged = [r for r in feasible if r.get("caveat")]
    if flagged:  # once, for all processes of the study
        log(f"warning: {len(flagged)} of {len(feasible)} scored trials carry a caveat from "
            "the estimator (trials.csv, column caveat)")
    best = max(feasible, key=lambda r: r["reward"]) if feasible else None
    reranked = read_rerank(run) if feasible else None
    if reranked is not None:  # what nas export --best means (SearchRun.best)
        won = reranked.row(reranked.winner)
        row = [r for r in feasible if r["trial"] == reranked.winner]
        if won and row:
            best = {**row[0], "standalone_accuracy": won["val_accuracy"]}
    rejected: Dict[str, int] = {}
    for r in rows:
        if not r["feasible"]:
            reason = r.get("rejected", "flops")
            rejected[reason] = rejected.get(reason, 0) + 1
    return SearchResult(len(rows), len(feasible), pareto_front(feasible), best,
                        time.perf_counter() - started, retried, rejected,
                        study_display(study_url(config, run)))


