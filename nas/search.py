"""The search: an Optuna study over a space's decisions, scored with a trained supernet.

Each trial suggests one value per decision of the space (so TPE/NSGA-II see the real
decision structure), builds the Architecture and counts its FLOPs analytically. An
over-budget architecture is marked infeasible with ``trial.set_constraint`` and
returns at once: no latency measurement, no evaluation. A feasible one gets its
latency measured on the static network (batch 1, target input) and its validation
accuracy from the supernet after BN recalibration.

Scalar mode (default) maximises the MixNet-paper reward
``R = acc - beta * ln(FLOPs) - gamma * latency_ms`` with multivariate TPE; Pareto mode
runs NSGA-II over (accuracy up, FLOPs down, latency down). The study lives in
``RUN/study.db`` (SQLite; any Optuna RDB URL with ``--storage``): rerunning the same
command continues it, failing and retrying trials a killed process left RUNNING.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
import sqlalchemy
import torch
from sqlalchemy.exc import SQLAlchemyError

from .arch import Architecture, InputSpec
from .checkpoint import atomic_write_bytes
from .cost import count_cost
from .data import Loader
from .evaluate import evaluate
from .latency import arch_latency
from .space.search_space import SearchSpace
from .shared_study import SharedStudy, open_storage
from .static_tpe import StaticSpaceTPESampler
from .study_store import BufferedStudy
from .train import (RunError, SupernetRun, TrainConfig, load_supernet, supernet_checkpoint,
                    train_supernet)

__all__ = ["SearchConfig", "run_search", "reward", "pareto_front", "suggest_arch", "warm_start",
           "DEFAULT_BETA", "DEFAULT_GAMMA"]

# Doubling FLOPs costs beta * ln 2 = 1.39 accuracy points; +1 ms of latency costs 0.1.
DEFAULT_BETA = 0.02
DEFAULT_GAMMA = 0.001
STUDY_NAME = "nas-search"
OBJECTIVES = ("reward", "pareto")
SAMPLERS = ("auto", "tpe", "nsga2", "random")


@dataclass
class SearchConfig:
    """Everything a search depends on (saved as ``RUN/config.json``)."""

    budget: int
    space: str = "mixnet_300m"
    data: str = "fashion-mnist"
    objective: str = "reward"
    sampler: str = "auto"             # auto: TPE for reward, NSGA-II for pareto
    trials: int = 50
    timeout: float = 0.0              # seconds for this invocation; 0: none
    beta: float = DEFAULT_BETA
    gamma: float = DEFAULT_GAMMA
    latency_budget_ms: float = 0.0    # 0: none
    supernet: str = ""                # a trained RUN/supernet.pt to reuse; "": train one
    supernet_steps: int = 200
    resolution: int = 0
    recalibration_batches: int = 4
    val_images: int = 1000
    latency_repeats: int = 3
    latency: str = "measure"          # measure | lut:PATH (from `nas latency build`)
    seed: int = 0
    device: str = "auto"
    storage: str = ""                 # RDB URL or journal:PATH; "": sqlite:///RUN/study.db
    study: str = STUDY_NAME           # study name within the storage
    workers: int = 1                  # processes on this machine (needs a shared storage)

    def validate(self) -> "SearchConfig":
        if self.objective not in OBJECTIVES:
            raise RunError(f"--objective must be reward or pareto, got {self.objective!r}")
        if self.sampler not in SAMPLERS:
            raise RunError(f"--sampler must be one of {', '.join(SAMPLERS)}, "
                           f"got {self.sampler!r}")
        if self.trials < 1:
            raise RunError(f"--trials must be at least 1, got {self.trials}")
        for name in ("timeout", "beta", "gamma", "latency_budget_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise RunError(f"--{name.replace('_', '-')} must be a finite number >= 0")
        if self.budget < 1:
            raise RunError(f"the budget must be a positive number of FLOPs, got {self.budget}")
        if self.workers < 1:
            raise RunError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 and (not self.storage or self.storage.startswith("sqlite")):
            raise RunError("--workers needs a storage that several processes can share: "
                           "SQLite (the default RUN/study.db) is not safe for that. Use "
                           "--storage postgresql://USER@HOST/DB or --storage journal:FILE")
        if not self.study or len(self.study) > 200:
            raise RunError("--study must be a name of 1 to 200 characters")
        if self.supernet_steps < 1 or self.val_images < 1 or self.latency_repeats < 1:
            raise RunError("--supernet-steps, --val-images and --latency-repeats must be >= 1")
        if self.recalibration_batches < 0:
            raise RunError("--recalibration-batches must be >= 0")
        if self.latency != "measure" and not self.latency.startswith("lut:"):
            raise RunError(f"--latency must be measure or lut:PATH, got {self.latency!r}")
        return self

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SearchConfig":
        """From a saved ``config.json`` (which anyone may have edited): names and types checked."""
        if not isinstance(data, dict):
            raise RunError("search settings must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise RunError(f"unknown search settings {sorted(unknown)}")
        for f in fields(cls):
            if f.name not in data:
                continue
            kind, value = _FIELD_TYPES[f.type], data[f.name]
            ok = (isinstance(value, (int, float)) if kind is float else isinstance(value, kind))
            if not ok or isinstance(value, bool):
                raise RunError(f"search setting {f.name} must be a {kind.__name__}, "
                               f"got {value!r}")
        return cls(**data).validate()


_FIELD_TYPES = {"int": int, "float": float, "str": str}


def reward(accuracy: float, flops: int, latency_ms: float, beta: float, gamma: float) -> float:
    """``acc - beta * ln(FLOPs) - gamma * latency_ms`` (acc in [0, 1])."""
    return accuracy - beta * math.log(flops) - gamma * latency_ms


def suggest_arch(trial: optuna.Trial, space: SearchSpace) -> Architecture:
    """One categorical suggestion per decision, by its grammar label."""
    choices = {d.name: trial.suggest_categorical(d.name, list(d.labels)) for d in space.decisions}
    return space.arch_from_choices(choices)


def _labels(space: SearchSpace, arch: Architecture) -> Dict[str, str]:
    choices = space.choices_of(arch)
    return {d.name: d.labels[d.values.index(choices[d.name])] for d in space.decisions}


def pareto_front(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Non-dominated rows over (accuracy up, flops down, latency_ms down)."""

    def dominates(a, b) -> bool:
        no_worse = (a["accuracy"] >= b["accuracy"] and a["flops"] <= b["flops"]
                    and a["latency_ms"] <= b["latency_ms"])
        better = (a["accuracy"] > b["accuracy"] or a["flops"] < b["flops"]
                  or a["latency_ms"] < b["latency_ms"])
        return no_worse and better

    front = [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]
    return sorted(front, key=lambda r: r["flops"])


class _Objective:
    """The trial function; holds the supernet, loaders and settings."""

    def __init__(self, config: SearchConfig, space: SearchSpace, run: SupernetRun,
                 calib: Loader, valid: Loader):
        self.config, self.space, self.run = config, space, run
        self.calib, self.valid = calib, valid
        self.table = None
        # Called with a feasible trial before its (expensive) latency and evaluation:
        # BufferedStudy.mark_running, so a kill during them leaves a trial to retry.
        self.before_evaluation = lambda trial: None
        if config.latency.startswith("lut:"):
            from .latency_lut import LatencyTable

            try:
                self.table = LatencyTable.load(config.latency[4:])
            except ValueError as e:
                raise RunError(str(e)) from None
        self.proxy = InputSpec(run.dataset.channels,
                               config.resolution or run.dataset.resolution,
                               len(run.dataset.classes))

    def penalty(self, flops: int):
        """Values of an infeasible trial: finite, and never better than a feasible one."""
        if self.config.objective == "pareto":
            return 0.0, float(flops), 1e6
        return reward(0.0, flops, 1e6, self.config.beta, self.config.gamma)

    def __call__(self, trial: optuna.Trial):
        cfg = self.config
        arch = suggest_arch(trial, self.space)
        cost = count_cost(arch)
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("flops", cost.flops)
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("proxy_flops", count_cost(arch, self.proxy).flops)
        # Constraint values <= 0 are feasible: relative overshoot of the budget.
        trial.set_constraint("flops", (cost.flops - cfg.budget) / cfg.budget)
        if cost.flops > cfg.budget:
            trial.set_user_attr("feasible", False)
            return self.penalty(cost.flops)
        self.before_evaluation(trial)
        start = time.perf_counter()
        latency = (self.table.predict(arch) if self.table is not None
                   else arch_latency(arch, repeats=cfg.latency_repeats))
        trial.set_user_attr("latency_ms", round(latency, 3))
        trial.set_user_attr("latency_s", round(time.perf_counter() - start, 4))
        if cfg.latency_budget_ms:
            trial.set_constraint("latency", (latency - cfg.latency_budget_ms)
                                 / cfg.latency_budget_ms)
            if latency > cfg.latency_budget_ms:
                trial.set_user_attr("feasible", False)
                return self.penalty(cost.flops)
        start = time.perf_counter()
        acc = evaluate(self.run.supernet, arch, self.valid, self.calib,
                       cfg.recalibration_batches)
        trial.set_user_attr("eval_s", round(time.perf_counter() - start, 4))
        r = reward(acc, cost.flops, latency, cfg.beta, cfg.gamma)
        trial.set_user_attr("accuracy", acc)
        trial.set_user_attr("reward", r)
        trial.set_user_attr("bn_batches", cfg.recalibration_batches)
        trial.set_user_attr("feasible", True)
        if cfg.objective == "pareto":
            return acc, float(cost.flops), latency
        return r


def warm_start(study: optuna.Study, space: SearchSpace, budget: int) -> List[str]:
    """Queue MixNet-S/M when they are points of the space within budget and not yet tried."""
    from .space.loader import available_spaces, load_space

    tried = {t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)}
    queued = []
    for preset in ("mixnet_s", "mixnet_m"):
        if preset in available_spaces() and preset not in tried:
            arch = load_space(preset).sample(0)
            if space.contains(arch) and count_cost(arch).flops <= budget:
                study.enqueue_trial(_labels(space, arch), user_attrs={"preset": preset})
                queued.append(preset)
    return queued


def _sampler(config: SearchConfig, seed: int):
    kind = config.sampler
    if kind == "auto":
        kind = "nsga2" if config.objective == "pareto" else "tpe"
    if kind == "random":  # the baseline every controller has to beat
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        # Optuna's default population (50) would make a default 50-trial search one random
        # first generation; a quarter of the trials gives it ~4 generations to evolve.
        population = max(8, min(50, config.trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    from .space.loader import load_space

    # Multivariate TPE, told the space's decisions up front (see nas.static_tpe)
    space = {d.name: optuna.distributions.CategoricalDistribution(list(d.labels))
             for d in load_space(config.space).decisions}
    return StaticSpaceTPESampler(space, seed=seed, n_startup_trials=10)


def _study(config: SearchConfig, run_dir: Path):
    """A BufferedStudy on the run's own SQLite file, or a SharedStudy on ``--storage``."""
    directions = ["maximize", "minimize", "minimize"] if config.objective == "pareto" else [
        "maximize"]
    if config.storage:  # possibly shared with other workers: every write goes through
        try:
            study = optuna.create_study(storage=open_storage(config.storage),
                                        study_name=config.study, directions=directions,
                                        load_if_exists=True)
        except (SQLAlchemyError, ImportError, OSError, ValueError) as e:
            raise RunError(f"cannot open storage {config.storage}: "
                           f"{e.__class__.__name__}: {str(e).splitlines()[0]}") from None
        # Seeded per process and resume: workers sharing a study must not draw the same
        # suggestions, and a rerun must not replay the first run's.
        study.sampler = _sampler(config, config.seed + len(study.trials) + os.getpid())
        return SharedStudy(study)
    storage = run_storage(run_dir / "study.db")
    durable = optuna.create_study(storage=storage, study_name=config.study,
                                  directions=directions, load_if_exists=True)
    # A rerun continues with a sampler seeded past the trials done: the same seed would
    # replay the first run's suggestions.
    sampler = _sampler(config, config.seed + len(durable.trials))
    durable.sampler = sampler
    return BufferedStudy(durable, sampler, rdb=storage)


def run_storage(path: Path) -> optuna.storages.RDBStorage:
    """The run's own SQLite study, in write-ahead-log mode with synchronous=NORMAL.

    Why: in SQLite's default mode every commit waits for two fsyncs, more than half of
    the cost of persisting an over-budget trial. With WAL + NORMAL a commit survives the
    process being killed (what resume relies on); only an OS crash or power loss can lose
    the last commits, and never corrupts the file. Readers (``nas report``,
    optuna-dashboard) open it as usual.
    """
    storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
    sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
    storage.engine.dispose()  # reconnect through the listener
    return storage


def _sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _supernet(config: SearchConfig, run_dir: Path, progress: bool) -> SupernetRun:
    if config.supernet:
        return load_supernet(config.supernet, config.device)
    sn_dir = run_dir / "supernet"
    ckpt = sn_dir / "supernet.pt"
    if ckpt.exists():
        state_step = torch.load(ckpt, map_location="cpu", weights_only=True)["step"]
        saved = json.loads((sn_dir / "config.json").read_text())
        if state_step >= saved["steps"]:
            return load_supernet(ckpt, config.device)
        return train_supernet(None, sn_dir, resume=True, progress=progress)
    train_config = TrainConfig(space=config.space, data=config.data,
                               steps=config.supernet_steps, resolution=config.resolution,
                               seed=config.seed, device=config.device,
                               checkpoint_every=max(10, config.supernet_steps // 5))
    return train_supernet(train_config, sn_dir, progress=progress)


def trial_rows(study: optuna.Study) -> List[Dict[str, Any]]:
    """One dict per finished trial with its stored attributes."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        row = {"trial": t.number, **t.user_attrs}
        row.setdefault("feasible", False)
        rows.append(row)
    return rows


def write_outputs(study: optuna.Study, config: SearchConfig, run_dir: Path) -> None:
    import pandas as pd

    rows = trial_rows(study)
    columns = ["trial", "feasible", "accuracy", "flops", "params", "proxy_flops",
               "latency_ms", "reward", "bn_batches", "arch"]
    frame = pd.DataFrame(rows, columns=columns)
    atomic_write_bytes(run_dir / "trials.csv", frame.to_csv(index=False).encode())


def prepare_run(config: SearchConfig, run_dir) -> Path:
    """Validate ``config`` against the space and the run directory (writes nothing)."""
    from .space.loader import load_space

    config.validate()
    run_dir = Path(run_dir)
    space = load_space(config.space)
    smallest = space.cost_range().flops_min
    if config.budget < smallest:
        raise RunError(f"budget {config.budget:,} FLOPs is below the smallest architecture of "
                       f"{space.name}: {smallest:,} FLOPs ({smallest / 1e6:.1f}M)")
    saved = run_dir / "config.json"
    if saved.exists():
        old = SearchConfig.from_dict(json.loads(saved.read_text()))
        # may change between reruns: the rest defines the study
        keep = {"trials", "timeout", "workers"}
        clash = [f.name for f in fields(SearchConfig)
                 if f.name not in keep and getattr(old, f.name) != getattr(config, f.name)]
        if clash:
            raise RunError(f"{run_dir} holds a search with other settings ("
                           + ", ".join(f"{k}={getattr(old, k)!r}" for k in clash)
                           + "); use another -o or the same settings")
    return run_dir


def supernet_file(config: SearchConfig, run_dir: Path) -> Path:
    return (supernet_checkpoint(config.supernet) if config.supernet
            else run_dir / "supernet" / "supernet.pt")


def _check_same_supernet(study, path: Path) -> None:
    """Every worker of a study must score with the same supernet (checked by its hash)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = study.memory.user_attrs.get("supernet_sha256")
    if stored is None:
        study.memory.set_user_attr("supernet_sha256", digest)
    elif stored != digest:
        raise RunError(f"study {study.memory.study_name!r} was started with another supernet "
                       f"than {path} (sha256 differs); give every worker the same --supernet")


def run_search(config: SearchConfig, run_dir, progress: bool = True,
               log=print) -> Dict[str, Any]:
    """Train or load the supernet, run (or continue) the study, write the run's files.

    With ``config.workers > 1`` the trials run in that many worker processes
    (:mod:`nas.workers`) sharing ``config.storage``.

    Returns a summary: trial counts, the feasible Pareto front and the best trial.
    """
    run_dir = prepare_run(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir):  # before writing: a refused second search changes nothing
        prepare_run(config, run_dir)  # again, under the lock
        atomic_write_bytes(run_dir / "config.json",
                           (json.dumps(asdict(config), indent=2) + "\n").encode())
        return _run_search(config, run_dir, progress, log)


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """One ``nas search`` per run directory: a second would fail the first's running trial."""
    handle = (run_dir / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunError(f"another nas search is running in {run_dir}; wait for it, or stop it "
                       "and rerun to continue") from None
    try:
        yield
    finally:
        handle.close()


def _run_search(config: SearchConfig, run_dir: Path, progress: bool, log) -> Dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = _supernet(config, run_dir, progress)
    if config.supernet and run.config.data != config.data:
        # the supernet's own splits score the trials: say so rather than mislead
        log(f"note: the supernet was trained on {run.config.data}; the search scores on "
            f"that data (--data {config.data} is not used with --supernet)")
    started = time.perf_counter()
    if config.workers > 1:
        from .workers import run_workers

        study = _study(config, run_dir)
        _check_same_supernet(study, supernet_file(config, run_dir))
        warm_start(study.memory, run.supernet.space, config.budget)
        retried = run_workers(config, run_dir, study.memory, log, echo=progress)
    else:
        study, retried = run_trials(config, run_dir, run, log)
    write_outputs(study.memory, config, run_dir)
    rows = trial_rows(study.memory)
    feasible = [r for r in rows if r["feasible"]]
    best = max(feasible, key=lambda r: r["reward"]) if feasible else None
    return {"trials": len(rows), "feasible": len(feasible), "front": pareto_front(feasible),
            "best": best, "seconds": time.perf_counter() - started, "retried": retried}


def run_trials(config: SearchConfig, run_dir: Path, run: SupernetRun, log=print,
               prefix: str = ""):
    """This process's share of the study: trials until it holds ``config.trials``."""
    from .space.loader import load_space

    space = load_space(config.space)
    if run.supernet.space.name != space.name or run.supernet.space.text != space.text:
        raise RunError(f"the supernet was trained on space {run.supernet.space.name}, "
                       f"not on {space.name}")
    calib, valid = run.loaders()
    valid = Loader(valid.data.subset(torch.arange(min(config.val_images, len(valid.data)))),
                   256, run.mean, run.std, resolution=config.resolution or None,
                   device=valid.device, channels_last=run.config.channels_last)
    study = _study(config, run_dir)
    if isinstance(study, SharedStudy):
        _check_same_supernet(study, supernet_file(config, run_dir))
    retried = study.retried
    if retried:
        log(f"{prefix}retrying {retried} trial(s) interrupted by a previous run")
    if isinstance(study, BufferedStudy) or not study.memory.trials:
        warm_start(study.memory, space, config.budget)
    objective = _Objective(config, space, run, calib, valid)
    objective.before_evaluation = study.mark_running

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            return
        a = trial.user_attrs
        n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if not a.get("feasible"):
            what = f"over budget ({a.get('flops', 0) / 1e6:.1f}M FLOPs), not evaluated"
        else:
            what = (f"{a['flops'] / 1e6:6.1f}M FLOPs  acc {a['accuracy']:.2%}  "
                    f"{a['latency_ms']:.1f} ms  reward {a['reward']:.4f}")
        log(f"{prefix}trial {n}/{config.trials}: {what}")

    study.run_until(objective, config.trials, timeout=config.timeout or None,
                    callbacks=[report])
    return study, retried
