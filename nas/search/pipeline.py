"""``nas search --estimator predictor``: the search that ranks, in one command.

Four stages, each continued by a rerun where it was cut (their state is in files):

1. **reference**: ``--reference-archs`` architectures sampled in the FLOPs band 0.8-1.0 x
   the budget, each trained standalone once (seed 0) for ``--reference-epochs``
   (:func:`nas.reference.run_reference`: one row per architecture as it finishes, a killed
   training resumes from its checkpoint), split over ``--workers`` processes or torchrun's
   ranks, on the GPU when there is one. It is kept in the reference cache beside the run
   (``RUN/../references/KEY/budget-B/``, :class:`nas.runs.ReferenceCache`; ``KEY`` names the
   space, the data and the training recipe), so every run of the same space, data and recipe
   reuses it, and a run at another budget trains only what its band lacks: the cache's
   architectures already in its band count. ``--reference DIR`` fits on an existing
   reference (``nas reference``) instead and trains nothing.
2. **fit**: a ridge predictor on the summary encoding over every reference of the cache
   (:func:`nas.reference.fit_predictor`), written to ``RUN/predictor.json``; once it exists
   a rerun uses it as it is, since the study was scored with it.
3. **search**: the study on that predictor (:func:`nas.search.run.run_trials`): the
   evolution by default, when every candidate's reward can be priced.
4. **re-rank**: the best ``--rerank`` (3 by default here) trained standalone
   (:mod:`nas.search.rerank`).

Before anything is spent a plan is printed: each stage's work and estimated time, from the
reference's measured seconds per architecture when it has rows, else from training steps
of one of its architectures timed here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, FrozenSet, List, Optional

from ..arch import Architecture
from ..data import same_data
from ..errors import RunError, UsageError
from ..reference import ReferenceConfig, fit_predictor, reference_config, run_reference
from ..runs import ReferenceDir, SearchDir
from ..space import load_space
from .config import SearchConfig

__all__ = ["ReferencePlan", "plan_reference", "reference_key", "check_reference",
           "build_predictor", "reference_shard", "world"]

#: The training seed of the reference's one run per architecture.
REFERENCE_SEED = 0
#: Candidates per second the evolution scores on a ridge predictor, for the plan (measured
#: ~2,400/s on one core; experiments/bench/evolution.py).
EVOLUTION_RATE = 2_000
#: Seconds of an Optuna trial on the predictor, its latency measured (~140 ms measured).
TRIAL_SECONDS = 0.15
#: The batch of the reference's and the re-ranking's trainings.
BATCH = 128


def world() -> tuple:
    """``(rank, processes)`` under torchrun, else ``(0, 1)``."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def reference_settings(config: SearchConfig, archs: int) -> ReferenceConfig:
    """The reference ``config`` trains in its band: one seed, the search's data."""
    return ReferenceConfig(space=config.space, data=config.data, budget=config.budget,
                           archs=max(3, archs), seeds=[REFERENCE_SEED],
                           epochs=config.reference_epochs, resolution=config.resolution,
                           data_mode=config.data_mode, loader_workers=config.loader_workers)


def reference_key(config: SearchConfig) -> str:
    """The cache's name for the space, data and recipe of ``config``'s reference:
    ``SPACE-DATA-HASH``, the hash over the space's text, the data and the recipe."""
    space = load_space(config.space)
    recipe = reference_settings(config, 3)
    keyed = {"space": space.text, "data": recipe.data,
             **{k: getattr(recipe, k) for k in ("epochs", "batch_size", "lr", "resolution",
                                               "split_seed", "val_fraction")}}
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
    data = Path(recipe.data).name.split(".")[0] or "data"
    return f"{space.name}-{data}-{digest}"


def _per_arch(ref: ReferenceDir):
    """The reference's architectures with their rows so far (``count`` 0 when none)."""
    import pandas as pd

    if not ref.archs.exists():
        return pd.DataFrame(columns=["id", "flops", "arch", "count", "wall_s"])
    archs = pd.read_csv(ref.archs, dtype={"id": str})
    if not ref.rows.exists():
        return archs.assign(count=0, wall_s=float("nan"))
    rows = pd.read_csv(ref.rows, dtype={"id": str}).drop_duplicates(["id", "seed"])
    done = rows.groupby("id").agg(count=("seed", "size"), wall_s=("wall_s", "median"))
    return archs.merge(done, on="id", how="left").fillna({"count": 0})


@dataclass
class ReferencePlan:
    """What the reference stage holds and will train.

    Attributes:
        pooled: the references the fit pools (the cache's, or ``--reference``).
        band: where this run trains (None with ``--reference``).
        settings: the band reference's settings (``archs``: the sample it trains).
        wanted: architectures the fit should have (``--reference-archs``).
        have: architectures in the band trained already (the cache's other references
            included); ``todo``: left to train (the sample less ``skip``, those another
            band of the cache trained).
        seconds_per_arch: the median measured wall time of one, when any was trained.
    """

    pooled: List[ReferenceDir]
    band: Optional[ReferenceDir]
    settings: Optional[ReferenceConfig]
    wanted: int
    have: int
    todo: int
    seconds_per_arch: Optional[float] = None
    archs: List[str] = field(default_factory=list)  # the band's sample to train
    skip: FrozenSet[str] = frozenset()  # ids of the sample another band has trained

    @property
    def where(self) -> str:
        return str(self.band.path.parent if self.band is not None else self.pooled[0])


def check_reference(config: SearchConfig) -> None:
    """Refuse a ``--reference`` that is not a reference of the search's space and data.

    Raises:
        UsageError: in one line.
    """
    if not config.reference:
        return
    ref = ReferenceDir(config.reference)
    if not ref.settings.exists():
        raise UsageError(f"--reference {ref}: not a reference directory (no "
                         f"{ref.settings.name}; nas reference -o DIR makes one)")
    saved = reference_config(ref.path)
    if load_space(saved.space).text != load_space(config.space).text:
        raise UsageError(f"--reference {ref}: a reference of space {saved.space}, not of "
                         f"{config.space}")
    if not _same_data(saved.data, config.data):
        raise UsageError(f"--reference {ref}: a reference of the data {saved.data}, not of "
                         f"--data {config.data}")
    if saved.resolution != config.resolution:
        raise UsageError(f"--reference {ref}: trained at --resolution {saved.resolution}, "
                         f"not {config.resolution}")


def _same_data(saved: str, given: str) -> bool:
    """Whether a reference's data is the search's: the same file, or, when the path the
    reference saved is not there (references written before their paths were kept relative
    to them; a reference moved to another machine), a file of the same name."""
    if same_data(saved, given):
        return True
    return not os.path.exists(saved) and os.path.basename(saved) == os.path.basename(given)


def plan_reference(config: SearchConfig, run: SearchDir) -> ReferencePlan:
    """What the reference stage of ``config`` holds and has left to train."""
    if config.reference:
        ref = ReferenceDir(config.reference)
        table = _per_arch(ref)
        done = table[table["count"] > 0]
        return ReferencePlan([ref], None, None, len(done), len(done), 0,
                             _median(done["wall_s"]))
    cache = run.reference_cache(reference_key(config))
    band = cache.band(config.budget)
    probe = reference_settings(config, 3)
    low, high = probe.band_low * config.budget, probe.band_high * config.budget
    others, measured, trained_here = set(), [], set()
    for ref in cache.bands():
        table = _per_arch(ref)
        done = table[table["count"] > 0]
        if ref == band:  # the time of this band's architectures (others are of other sizes)
            measured += [float(s) for s in done["wall_s"] if s == s]
            trained_here = set(done["id"])
        else:
            others |= set(done.loc[(done.flops >= low) & (done.flops <= high), "id"])
    need = max(0, config.reference_archs - len(others))
    settings = None
    archs: List[str] = []
    have, todo, skip = others, 0, frozenset()
    if need:
        from ..space import sample_band

        space = load_space(config.space)
        # The bands of one cache draw from one stream of the space, so where two overlap
        # this band's sample repeats architectures another band trained: they count, are
        # not trained again, and the sample grows until it holds ``need`` new ones.
        size = need
        while True:
            settings = reference_settings(config, size)
            sample = sample_band(space, settings.archs, int(low), int(high),
                                 settings.sample_seed)
            fresh = sum(a.id not in others for a in sample)
            if fresh >= need:
                break
            size += need - fresh
        archs = [str(a) for a in sample]
        skip = frozenset(a.id for a in sample if a.id in others and a.id not in trained_here)
        have = others | {a.id for a in sample if a.id in trained_here}
        todo = sum(a.id not in trained_here and a.id not in skip for a in sample)
    pooled = [*cache.bands()] + ([band] if need and band not in cache.bands() else [])
    return ReferencePlan(pooled, band if need else None, settings, config.reference_archs,
                         len(have), todo,
                         statistics.median(measured) if measured else None, archs, skip)


def _trained(ref: ReferenceDir) -> set:
    """The ids of ``ref``'s architectures with a row."""
    table = _per_arch(ref)
    return set(table.loc[table["count"] > 0, "id"])


def _median(values) -> Optional[float]:
    values = [float(v) for v in values if v == v]
    return statistics.median(values) if values else None


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "1 s"  # at most
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class StepTime:
    """A training step and an evaluation batch of one architecture, timed here (batch 128,
    random images of the data's shape, the device the trainings use)."""

    step_s: float
    eval_s: float
    device: str
    train_images: int
    val_images: int

    def training(self, steps: int) -> float:
        """Seconds of a training of ``steps`` steps and its validation."""
        return steps * self.step_s + math.ceil(self.val_images / BATCH) * self.eval_s


def _step_seconds(config: SearchConfig, arch: str, threads: Optional[int] = None) -> StepTime:
    """Time a training step and an evaluation batch of ``arch`` (the fastest of two), with
    ``threads`` intra-op threads on the CPU (None: as set), as one of several processes
    sharing the cores trains."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _time_step(config, arch)
    finally:
        torch.set_num_threads(before)


def _time_step(config: SearchConfig, arch: str) -> StepTime:
    import torch
    import torch.nn.functional as F

    from ..model import build_model
    from ..train import LoopConfig, data_splits, load_data, resolve_device

    loop = LoopConfig(data=config.data, data_mode=config.data_mode,
                      resolution=config.resolution)
    dataset = load_data(loop)
    train, val = data_splits(dataset, loop)
    side = config.resolution or dataset.resolution
    device = resolve_device("auto")  # as the reference and the re-ranking train
    model = build_model(Architecture.parse(arch), num_classes=len(dataset.classes),
                        in_chans=dataset.channels).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(BATCH, dataset.channels, side, side, device=device).to(
        memory_format=torch.channels_last)
    y = torch.randint(len(dataset.classes), (BATCH,), device=device)

    def timed(work) -> float:
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    def evaluate() -> None:
        with torch.no_grad():
            model.eval()(x)
        model.train()

    timed(step)  # allocations, kernel choices (each mode its own)
    step_s = min(timed(step) for _ in range(2))
    timed(evaluate)
    eval_s = min(timed(evaluate) for _ in range(2))
    return StepTime(step_s, eval_s, str(device), len(train), len(val))


def print_plan(config: SearchConfig, run: SearchDir, plan: Optional[ReferencePlan],
               log: Callable[[str], None]) -> None:
    """The plan: each stage's work and estimated time, before any is spent."""
    fitted = run.predictor.exists()
    rerank = config.rerank_top
    reranked = run.rerank_json.exists()
    timed = None
    need_step = (plan is not None and plan.todo and plan.seconds_per_arch is None) or (
        rerank and not reranked)
    if need_step:
        arch = plan.archs[0] if plan is not None and plan.archs else _band_arch(config)
        timed = _step_seconds(config, arch)
    shared = timed
    if timed is not None and timed.device == "cpu" and plan is not None and plan.todo \
            and world()[1] == 1 and config.workers > 1:
        # each --workers process trains on its share of the cores (measured: 1.6x slower
        # per step with 1 of 2 cores than the plan timed on both)
        shared = _step_seconds(config, arch, _worker_threads(config.workers))
    log("plan (--estimator predictor; a rerun continues the stage it finds cut):")
    if fitted:
        log(f"  1. reference: done ({run.predictor} is fitted)")
        log(f"  2. fit:       done ({run.predictor})")
    else:
        log("  1. reference: " + _reference_line(config, plan, shared))
        log(f"  2. fit:       ridge predictor on the summary encoding of the "
            f"{'pooled references' if len(plan.pooled) > 1 else 'reference'} "
            f"({', '.join(str(p) for p in plan.pooled)}) -> {run.predictor}: ~1 s")
    kind = config.sampler_kind
    if kind == "evolution":
        log(f"  3. search:    evolution of {config.evolution_candidates:,} candidates on the "
            f"predictor, {config.trials} of them recorded as trials: "
            f"~{_duration(config.evolution_candidates / EVOLUTION_RATE)}")
    else:
        why = ("" if config.sampler != "auto" else
               " (the evolution prices ~10^5 candidates and cannot measure each one's latency:"
               " --latency lut:FILE or --gamma 0 lets it run)")
        log(f"  3. search:    {kind}, {config.trials} trials on the predictor: "
            f"~{_duration(config.trials * TRIAL_SECONDS)}{why}")
    if not rerank:
        log("  4. re-rank:   none (--rerank 0)")
    elif reranked:
        log(f"  4. re-rank:   done ({run.rerank_json})")
    else:
        each = timed.training(config.rerank_steps)
        log(f"  4. re-rank:   the {rerank} best, {config.rerank_steps} steps x "
            f"{config.rerank_seeds} seed(s) each on {timed.device}: "
            f"~{_duration(each * rerank * config.rerank_seeds)} (a step timed here: "
            f"{timed.step_s:.2f} s; int8 checks not counted)")


def _band_arch(config: SearchConfig) -> str:
    from ..space import sample_band

    probe = reference_settings(config, 3)
    return str(sample_band(load_space(config.space), 1, int(probe.band_low * config.budget),
                           config.budget, probe.sample_seed)[0])


def _reference_line(config: SearchConfig, plan: ReferencePlan, timed) -> str:
    if config.reference:
        return (f"{plan.where} (--reference): {plan.have} trained architectures, nothing to "
                "train")
    s = plan.settings or reference_settings(config, 3)
    head = (f"{plan.where}: {plan.wanted} architectures of "
            f"{s.band_low * config.budget / 1e6:.1f}-{config.budget / 1e6:.1f}M FLOPs "
            f"(--reference-archs), 1 seed, {s.epochs:g} epoch(s) each; {plan.have} trained "
            "in the band")
    if not plan.todo:
        return head + ", nothing to train"
    processes = world()[1]
    processes = processes if processes > 1 else config.workers
    if plan.seconds_per_arch is not None:
        each, how = plan.seconds_per_arch, "measured on the ones trained"
    else:
        steps = max(1, round(s.epochs * (timed.train_images // s.batch_size)))
        each = timed.training(steps)
        how = (f"{steps} steps of {timed.step_s:.2f} s and the validation, timed here on "
               f"{timed.device}")
    split = f" over {processes} processes" if processes > 1 else ""
    return (head + f", {plan.todo} to train{split}: ~{_duration(each)} each ({how}), "
            f"~{_duration(each * plan.todo / processes)} in all")


def _shard(settings: ReferenceConfig, out: str, threads: int, skip: FrozenSet[str]) -> None:
    """One ``--workers`` process of the reference stage."""
    import torch

    torch.set_num_threads(threads)
    run_reference(settings, out, log=lambda m: print(f"reference {settings.shard}: {m}",
                                                     flush=True), skip=skip)


def _worker_threads(workers: int) -> int:
    """Intra-op threads of each of ``workers`` reference processes: the cores shared."""
    return max(1, (os.cpu_count() or 1) // workers)


def _train_reference(config: SearchConfig, plan: ReferencePlan, log) -> None:
    """Train what the band reference lacks: here, in ``--workers`` processes, or this
    rank's share under torchrun."""
    rank, processes = world()
    if processes > 1:
        run_reference(replace(plan.settings, shard=f"{rank}/{processes}"), plan.band.path,
                      log=log, skip=plan.skip)
        return
    if config.workers <= 1:
        run_reference(plan.settings, plan.band.path, log=log, skip=plan.skip)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    threads = _worker_threads(config.workers)
    procs = [context.Process(target=_shard, args=(
        replace(plan.settings, shard=f"{i}/{config.workers}"), str(plan.band.path), threads,
        plan.skip))
        for i in range(config.workers)]
    for proc in procs:
        proc.start()
    log(f"reference: {len(procs)} processes, pids {', '.join(str(p.pid) for p in procs)}")
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        for proc in procs:
            proc.join()
        raise
    failed = [p.pid for p in procs if p.exitcode != 0]
    if failed:
        raise RunError(f"the reference processes {failed} failed (see their errors above); "
                       "rerun to continue")


def _wait_for_band(plan: ReferencePlan, log, poll_s: float = 5.0) -> None:
    """Rank 0 under torchrun: wait until the other ranks' shares of the band are in (an
    architecture trained in any pooled band counts)."""
    wanted = {Architecture.parse(a).id for a in plan.archs}
    last = time.monotonic()
    while True:
        left = wanted.difference(*(_trained(ref) for ref in plan.pooled))
        if not left:
            return
        if time.monotonic() - last > 60:
            log(f"reference: waiting for the other ranks: {len(left)} architectures left")
            last = time.monotonic()
        time.sleep(poll_s)


def reference_shard(config: SearchConfig, run: SearchDir, log) -> None:
    """A torchrun rank other than 0: train its share of the reference, nothing else (rank
    0 fits, searches and re-ranks)."""
    if SearchDir(run).predictor.exists():
        return
    plan = plan_reference(config, SearchDir(run))
    if plan.todo:
        _train_reference(config, plan, log)


def build_predictor(config: SearchConfig, run: SearchDir, log: Callable[[str], None]) -> Path:
    """Print the plan, then the reference and fit stages (those not done yet). Returns
    ``RUN/predictor.json``."""
    from ..estimators import PredictorConfig

    plan = None if run.predictor.exists() else plan_reference(config, run)
    print_plan(config, run, plan, log)
    if plan is None:
        return run.predictor
    if plan.todo:
        started = time.perf_counter()
        _train_reference(config, plan, log)
        if world()[1] > 1:
            _wait_for_band(plan, log)
        log(f"reference: {plan.todo} architectures trained in "
            f"{_duration(time.perf_counter() - started)}")
        plan = plan_reference(config, run)
        if plan.todo:
            raise RunError(f"the reference in {plan.where} still lacks {plan.todo} "
                           "architectures; rerun to continue")
    started = time.perf_counter()
    fitted = fit_predictor([p.path for p in plan.pooled], run.predictor, PredictorConfig())
    log(f"fit: ridge on {fitted.archs} architectures in "
        f"{time.perf_counter() - started:.1f} s: {run.predictor}")
    return run.predictor
