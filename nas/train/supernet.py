"""Supernet training: which architectures a step trains, and with which targets.

``nas supernet train -o DIR`` trains every architecture of a space on one set of shared
weights (:class:`nas.Supernet`) with :func:`nas.train.loop.fit`. A step runs the
architectures :class:`ArchSampler` draws: the sandwich rule (largest on the labels,
smallest and random ones distilled from it; Yu et al., "BigNAS", 2020, and OFA's in-place
distillation), one random architecture (single path), or architectures within a FLOPs band.
The directory holds ``config.json``, ``supernet.pt`` (model, optimiser, schedule, sampler
state, the space's text; written atomically) and ``train_log.jsonl``
(:class:`nas.runs.SupernetDir`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..arch import Architecture
from ..config import Settings, setting
from ..cost import count_cost
from ..data import Dataset, image_stats, make_loader
from ..errors import CheckpointError, RunError, UsageError
from ..evaluate import evaluate
from ..files import load_checkpoint, resume_state, save_checkpoint, write_json
from ..runs import SupernetDir, supernet_checkpoint
from ..space import SearchSpace, load_space, parse_space, space_location
from ..supernet import Supernet
from ..units import parse_flops
from .amp import Precision
from .distributed import setup
from .loop import (
    LoopConfig,
    data_splits,
    fit,
    load_data,
    recipe_of,
    resolve_device,
    total_steps,
    train_loader,
)
from .optim import create_optimizer, create_schedule

__all__ = ["TrainConfig", "QuickReportConfig", "ArchSampler", "SupernetRun", "train_supernet",
           "load_supernet", "quick_report", "QuickReport", "resume_or_new", "ARCH_SAMPLING_RULES",
           "SUPERNET_CHECKPOINT_FORMAT"]

SUPERNET_CHECKPOINT_FORMAT = "nas-supernet/1"
# --sampler of a supernet training: how each step draws the architectures it trains
ARCH_SAMPLING_RULES = ("uniform", "sandwich", "budget")


@dataclass
class TrainConfig(LoopConfig):
    """Everything a supernet training run depends on (saved as ``config.json``)."""

    space: str = setting("mixnet_300m", help="search space (name or .yaml)",
                         path=space_location)
    sampler: str = setting("sandwich", choices=ARCH_SAMPLING_RULES,
                           help="uniform | sandwich (largest + smallest + random, in-place "
                                "distillation) | budget (archs within --band of --budget)")
    sandwich_random: int = setting(2, at_least=0, help="random archs per sandwich step")
    budget: float = setting(0.0, at_least=0, parse=parse_flops,
                            help="FLOPs budget for --sampler budget, e.g. 300M")
    band: float = setting(0.2, above=0, below=1, help="relative band around the budget")

    def check(self) -> None:
        super().check()
        if self.sampler == "budget" and self.budget <= 0:
            raise UsageError("--sampler budget needs --budget (e.g. --budget 300M)")


class ArchSampler:
    """Which architectures a training step trains, and with which targets.

    ``uniform``: one random architecture on the labels (single path).
    ``sandwich``: the largest on the labels, then the smallest and ``n`` random ones
    distilled from the largest's outputs (in-place distillation).
    ``budget``: one random architecture whose FLOPs lie within ``band`` of the budget.
    """

    def __init__(self, space: SearchSpace, rule: str, rng: random.Random, n_random: int = 2,
                 budget: float = 0.0, band: float = 0.2):
        self.space, self.rule, self.rng = space, rule, rng
        self.n_random, self.budget, self.band = n_random, budget, band
        self.largest = space.extreme_arch(largest=True)
        self.smallest = space.extreme_arch(largest=False)
        if rule == "budget":
            lo, hi = budget * (1 - band), budget * (1 + band)
            r = space.cost_range()
            if hi < r.flops_min or lo > r.flops_max:
                raise RunError(f"no architecture of {space.name} lies within {band:.0%} of the "
                               f"budget: its FLOPs run {r.flops_min:,} .. {r.flops_max:,}")

    def _in_band(self) -> Architecture:
        lo, hi = self.budget * (1 - self.band), self.budget * (1 + self.band)
        for _ in range(10_000):
            arch = self.space.sample(self.rng)
            if lo <= count_cost(arch).flops <= hi:
                return arch
        raise RunError(f"could not sample an architecture within {self.band:.0%} of the budget")

    def step(self) -> List[Tuple[Architecture, bool]]:
        """``[(arch, distilled)]`` for one step; the teacher (if any) comes first."""
        if self.rule == "uniform":
            return [(self.space.sample(self.rng), False)]
        if self.rule == "budget":
            return [(self._in_band(), False)]
        archs = [(self.largest, False), (self.smallest, True)]
        return archs + [(self.space.sample(self.rng), True) for _ in range(self.n_random)]


@dataclass
class SupernetRun:
    """A loaded (or freshly trained) supernet with what is needed to evaluate it."""

    supernet: Supernet
    config: TrainConfig
    dataset: Dataset
    mean: List[float]
    std: List[float]
    step: int

    @property
    def recipe(self):
        """The data recipe it was trained with (:class:`~nas.data.Recipe`)."""
        return recipe_of(self.dataset, self.config)

    @property
    def resolution(self) -> int:
        """The input side it was trained at, which its batches have: ``--resolution``, or
        the recipe's default for the data."""
        return self.recipe.resolution

    def loaders(self, batch_size: int = 256, device=None):
        """``(calibration, validation)`` loaders over the train/val split the run used:
        calibration batches are shuffled training images without augmentation."""
        train, val = data_splits(self.dataset, self.config)
        device = device or self.supernet.stem_weight.device
        common = dict(recipe=self.recipe, device=device, channels_last=self.config.channels_last,
                      workers=self.config.loader_workers)
        calib = make_loader(train, self.config.batch_size, self.mean, self.std, train=True,
                            augment=False, seed=self.config.seed + 1, **common)
        valid = make_loader(val, batch_size, self.mean, self.std, **common)
        return calib, valid


def _space_of(config: TrainConfig, space_text: Optional[str] = None) -> SearchSpace:
    if space_text is not None:  # the exact space the checkpoint was trained on
        return parse_space(space_text, Path(config.space).stem, config.space)
    return load_space(config.space)


def check_resolution(space: SearchSpace, resolution: int) -> None:
    """Refuse, before anything is trained or written, a training resolution at which some
    architecture of ``space`` cannot run (a patch larger than the image, an ADown fed 1x1).

    Raises:
        UsageError: naming the row, the reason and the resolution.
    """
    problem = space.size_problem(resolution)
    if problem:
        where, why = problem
        raise UsageError(f"{space.name} cannot train at {resolution}x{resolution}: {where}: "
                         f"{why}; train at a larger --resolution")


def train_supernet(config: Optional[TrainConfig], run_dir, resume: bool = False,
                   progress: bool = True, stop_after: Optional[int] = None) -> SupernetRun:
    """Train (or resume training) a supernet into ``run_dir``.

    Args:
        config: the settings; with ``resume`` the saved ones win and this may be None.
        run_dir: the run directory.
        resume: continue from its checkpoint.
        progress: show a progress bar.
        stop_after: stop (with a checkpoint) after this many steps in this call (tests).
    """
    run = SupernetDir(run_dir)
    state = resume_state(run.checkpoint, SUPERNET_CHECKPOINT_FORMAT, resume)
    if state is not None:
        config = TrainConfig.from_dict(state["config"], f"{run.checkpoint}", base=run.path)
    config = config.validate().resolved()
    device = resolve_device(config.device)
    dist = setup(device)
    if dist.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        if config.batch_size % dist.world:
            raise UsageError(f"--batch-size {config.batch_size} must divide evenly over "
                             f"{dist.world} processes")
    space = _space_of(config, state["space_text"] if state else None)
    precision = Precision.resolve(config.precision, device)
    dataset = load_data(config)
    recipe = recipe_of(dataset, config)
    check_resolution(space, recipe.resolution)
    train, _ = data_splits(dataset, config)
    mean, std = image_stats(train)  # normalisation from the training split only
    loader = train_loader(train, dataset, mean, std, config, device, dist)
    total = total_steps(config, loader)
    if dist.main and progress:
        print(f"data: {recipe.describe()}; {precision.name} on {device}", flush=True)

    torch.manual_seed(config.seed)
    supernet = Supernet(space, num_classes=len(dataset.classes),
                        in_chans=dataset.channels).to(device)
    if config.channels_last:
        supernet.use_memory_format(torch.channels_last)
    optimizer = create_optimizer(supernet, config.optimizer, config.lr, config.weight_decay)
    scheduler = create_schedule(optimizer, total, config.warmup)
    rng = random.Random(config.seed)
    # Built before anything is written: it checks the budget band is reachable.
    sampler = ArchSampler(space, config.sampler, rng, config.sandwich_random, config.budget,
                          config.band)
    step = 0
    if state is not None:
        supernet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.setstate(_as_rng_state(state["sampler_rng"]))
        precision.load_state_dict(state.get("scaler", {}))
        step = state["step"]
    elif dist.main:
        write_json(run.config, config.to_dict(run.path))

    def save(at: int) -> None:
        dist.average_buffers(supernet)
        if not dist.main:  # rank 0 writes; the others wait until the file is complete
            dist.barrier()
            return
        save_checkpoint({
            "format": SUPERNET_CHECKPOINT_FORMAT, "config": config.to_dict(run.path), "step": at,
            "model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "sampler_rng": list_rng(rng.getstate()),
            "space_text": space.text, "classes": list(dataset.classes),
            "mean": mean, "std": std, "recipe": recipe.describe(),
            "scaler": precision.state_dict(),
        }, run.checkpoint)
        dist.barrier()

    supernet.train()
    try:
        step = fit(lambda x, y: _train_step(supernet, sampler, x, y, config, precision),
                   supernet.parameters(), optimizer, scheduler, loader, total, step,
                   grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every,
                   save=save, log_path=run.log, desc="supernet", progress=progress,
                   dist=dist, stop_after=stop_after, precision=precision)
    finally:
        dist.close()
    return SupernetRun(supernet.eval(), config, dataset, mean, std, step)


def _train_step(supernet: Supernet, sampler: ArchSampler, x, y, config: TrainConfig,
                precision: Precision) -> float:
    """Forward/backward every arch of the step; gradients accumulate. Returns the first loss.
    ``y`` holds class indices, or soft labels ``[B, classes]`` under mixup / cutmix."""
    teacher = None
    first = None
    for arch, distilled in sampler.step():
        with precision.autocast():
            logits = supernet(x, arch)
        logits = logits.float()
        if distilled and teacher is not None:
            loss = -(teacher * F.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            teacher = F.softmax(logits.detach(), 1)
        precision.backward(loss)
        if first is None:
            first = loss.item()
    return first


def list_rng(state) -> list:
    """random.Random state as nested lists (plain data for weights_only loading)."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _as_rng_state(saved) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def load_supernet(path, device: str = "auto") -> SupernetRun:
    """Load a supernet checkpoint (or its run directory) for evaluation and search."""
    path = supernet_checkpoint(path)
    state = load_checkpoint(path, SUPERNET_CHECKPOINT_FORMAT)
    config = TrainConfig.from_dict(state["config"], str(path), base=path.parent)
    space = _space_of(config, state["space_text"])
    dataset = load_data(config)
    recipe = recipe_of(dataset, config).describe()
    if state.get("recipe", recipe) != recipe:
        raise CheckpointError(f"{path}: trained with the data recipe '{state['recipe']}', but "
                              f"{config.data} now gives '{recipe}'")
    if list(dataset.classes) != list(state["classes"]):
        raise CheckpointError(f"{path}: trained on classes {state['classes']}, but "
                              f"{config.data} has {dataset.classes}")
    supernet = Supernet(space, num_classes=len(state["classes"]), in_chans=dataset.channels)
    supernet.load_state_dict(state["model"])
    supernet.to(resolve_device(device)).eval()
    if config.channels_last:
        supernet.use_memory_format(torch.channels_last)
    return SupernetRun(supernet, config, dataset, state["mean"], state["std"], state["step"])


@dataclass
class QuickReportConfig(Settings):
    """Whether ``nas supernet train`` validates the supernet it trained
    (:func:`quick_report`), and on how many BN recalibration batches."""

    eval: bool = setting(True, help="validate the largest and smallest subnets at the end")
    recalibration_batches: int = setting(20, help="BN recalibration batches for the final "
                                                  "evaluation")


@dataclass
class QuickReport:
    """Validation accuracy (fractions) of a supernet's largest and smallest subnets after
    ``batches`` BN recalibration batches (:func:`quick_report`)."""

    largest: float
    smallest: float
    batches: int

    def line(self) -> str:
        return (f"validation accuracy (BN recalibrated, {self.batches} batches): "
                f"largest {self.largest:.2%}, smallest {self.smallest:.2%}")


def quick_report(run: SupernetRun, batches: int = 20) -> QuickReport:
    """Validation accuracy of the largest and smallest subnets (after BN recalibration)."""
    calib, valid = run.loaders()
    space = run.supernet.space
    return QuickReport(
        evaluate(run.supernet, space.extreme_arch(True), valid, calib, batches),
        evaluate(run.supernet, space.extreme_arch(False), valid, calib, batches), batches)


def resume_or_new(given: Dict[str, object], run_dir, resume: bool) -> Optional[TrainConfig]:
    """The settings of a new supernet training in ``run_dir`` (``given``: those typed), or
    None to continue the run's (``resume``; any given must agree with its own).

    Raises:
        RunError: ``resume`` with a setting the run was trained with otherwise.
    """
    from ..files import read_json
    from ..runs import SupernetDir

    if not resume:
        return TrainConfig(**given).validate()
    saved = SupernetDir(run_dir).config
    if saved.exists():
        old = TrainConfig.from_dict(read_json(saved, "training configuration"), str(saved),
                                    base=saved.parent)
        typed = TrainConfig(**{**old.to_dict(), **given}).resolved()  # paths as the run keeps
        clash = {k: v for k, v in given.items() if getattr(old, k) != getattr(typed, k)}
        if clash:
            raise RunError(f"{saved.parent} was trained with "
                           + ", ".join(f"{k}={getattr(old, k)!r}" for k in clash)
                           + "; --resume continues it with its own settings")
    return None
