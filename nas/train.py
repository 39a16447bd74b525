"""Supernet training: sampling rules, optimisation, progress, checkpoints, exact resume.

A run directory holds ``config.json`` (everything needed to rerun), ``supernet.pt``
(the latest checkpoint: model, optimiser, scheduler, sampler RNG, step, written
atomically) and ``train_log.jsonl`` (one line per logged step).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .arch import Architecture
from .checkpoint import (CheckpointError, atomic_write_bytes, load_checkpoint, resume_state,
                         save_checkpoint)
from .cost import count_cost
from .data import Dataset, Loader, image_stats, load_dataset, train_val_split
from .distributed import setup
from .evaluate import evaluate
from .space.loader import load_space, parse_space
from .space.search_space import SearchSpace
from .supernet import Supernet

__all__ = ["TrainConfig", "ArchSampler", "SupernetRun", "train_supernet", "load_supernet",
           "RunError", "SAMPLERS"]

CHECKPOINT_FORMAT = "nas-supernet/1"
SAMPLERS = ("uniform", "sandwich", "budget")


class RunError(ValueError):
    """A run directory or configuration that cannot be used as asked."""


@dataclass
class LoopConfig:
    """Data, optimiser and schedule settings shared by supernet and standalone training."""

    data: str = "fashion-mnist"
    steps: int = 0                   # 0: derived from epochs
    epochs: float = 1.0
    batch_size: int = 64
    # AdamW: on the few hundred CPU steps nas is run for, it learned clearly faster than
    # SGD (loss 1.77 vs 2.10 after 40 steps of the largest mixnet_300m subnet; SGD at
    # 0.1 and 0.03 alike). SGD + Nesterov stays available for long runs.
    optimizer: str = "adamw"         # adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05             # fraction of steps with a linear warm-up
    label_smoothing: float = 0.1
    resolution: int = 0              # proxy resolution; 0 keeps the data's own
    val_fraction: float = 0.1
    # The validation carve's seed, apart from the training seed: runs that differ only in
    # `seed` are then scored on the same validation images.
    split_seed: int = 0
    train_subset: int = 0            # use only this many training images (0: all)
    seed: int = 0
    checkpoint_every: int = 100
    device: str = "auto"
    grad_clip: float = 5.0
    channels_last: bool = True       # NHWC layout: 2-3x faster depthwise convs on CPU

    def validate(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise RunError(f"--optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.steps < 0 or self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise RunError("steps, epochs, batch size and learning rate must be positive")
        if self.checkpoint_every < 1:
            raise RunError("--checkpoint-every must be at least 1")
        for name in ("epochs", "lr", "weight_decay", "warmup", "label_smoothing",
                     "val_fraction", "grad_clip"):
            if not math.isfinite(getattr(self, name)):
                raise RunError(f"--{name.replace('_', '-')} must be a finite number")
        if self.weight_decay < 0 or self.grad_clip < 0 or not 0 <= self.warmup < 1:
            raise RunError("--weight-decay and --grad-clip must be >= 0, warm-up in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise RunError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.val_fraction < 1:
            raise RunError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.train_subset < 0 or self.resolution < 0:
            raise RunError("--train-subset and --resolution must be >= 0")
        if 0 < self.resolution < 8 or self.resolution > 4096:
            raise RunError(f"--resolution must be 0 (native) or 8..4096, got {self.resolution}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise RunError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    @classmethod
    def from_dict(cls, data: Dict[str, Any]):
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise RunError(f"unknown training settings {sorted(unknown)}")
        return cls(**data).validate()


@dataclass
class TrainConfig(LoopConfig):
    """Everything a supernet training run depends on (saved as ``config.json``)."""

    space: str = "mixnet_300m"
    sampler: str = "sandwich"        # uniform | sandwich | budget
    sandwich_random: int = 2         # random archs per sandwich step besides largest/smallest
    budget: float = 0.0              # FLOPs at the target input, for the budget sampler
    band: float = 0.2                # budget sampler keeps archs within +-band of the budget

    def validate(self) -> "TrainConfig":
        super().validate()
        if self.sampler not in SAMPLERS:
            raise RunError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.sampler == "budget" and self.budget <= 0:
            raise RunError("--sampler budget needs --budget (e.g. --budget 300M)")
        if not 0 < self.band < 1:
            raise RunError(f"--band must be in (0, 1), got {self.band}")
        if self.sandwich_random < 0:
            raise RunError("--sandwich-random must be >= 0")
        if not math.isfinite(self.budget):
            raise RunError("--budget must be a finite number")
        return self


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

    def loaders(self, batch_size: int = 256, device=None):
        """``(calibration, validation)`` loaders over the train/val split the run used."""
        train, val = _splits(self.dataset, self.config)
        device = device or self.supernet.stem_weight.device
        res = self.config.resolution or None
        cl = self.config.channels_last
        calib = Loader(train, self.config.batch_size, self.mean, self.std, train=True,
                       resolution=res, seed=self.config.seed + 1, device=device, channels_last=cl)
        valid = Loader(val, batch_size, self.mean, self.std, resolution=res, device=device,
                       channels_last=cl)
        return calib, valid


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def _splits(dataset: Dataset, config: LoopConfig):
    train, val = train_val_split(dataset.train, config.val_fraction, config.split_seed)
    if config.train_subset:
        train = train.subset(torch.arange(min(config.train_subset, len(train))))
    return train, val


def _space_of(config: TrainConfig, space_text: Optional[str] = None) -> SearchSpace:
    if space_text is not None:  # the exact space the checkpoint was trained on
        return parse_space(space_text, Path(config.space).stem, config.space)
    return load_space(config.space)


def _schedule(config: LoopConfig, total: int):
    warm = max(1, int(total * config.warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return factor


def _optimizer(config: LoopConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BN affine parameters and biases (1-D tensors).
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def train_supernet(config: TrainConfig, run_dir, resume: bool = False,
                   progress: bool = True, stop_after: Optional[int] = None) -> SupernetRun:
    """Train (or resume training) a supernet into ``run_dir``.

    Args:
        config: the settings; with ``resume`` the saved ``config.json`` wins and
            ``config`` must be None-equivalent (only ``--resume`` is needed to continue).
        run_dir: the run directory.
        resume: continue from ``run_dir/supernet.pt``.
        progress: show a tqdm bar.
        stop_after: stop (with a checkpoint) after this many steps in this call (tests).
    """
    run = Path(run_dir)
    ckpt_path = run / "supernet.pt"
    state = resume_state(ckpt_path, CHECKPOINT_FORMAT, resume)
    if state is not None:
        config = TrainConfig.from_dict(state["config"])
    config.validate()
    device = _device(config.device)
    ddp = setup(device)
    if ddp.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", ddp.local_rank)
        if config.batch_size % ddp.world:
            raise RunError(f"--batch-size {config.batch_size} must divide evenly over "
                           f"{ddp.world} processes")
    space = _space_of(config, state["space_text"] if state else None)
    dataset = load_dataset(config.data)
    train, _ = _splits(dataset, config)
    mean, std = image_stats(train)  # normalisation from the training split only
    resolution = config.resolution or None
    loader = Loader(train, config.batch_size, mean, std, train=True, resolution=resolution,
                    pad=max(1, dataset.resolution // 14), flip=True, seed=config.seed,
                    device=device, channels_last=config.channels_last)
    if len(loader) == 0:
        raise RunError(f"only {len(train)} training images: fewer than one batch of "
                       f"{config.batch_size}")
    total = config.steps or max(1, int(round(config.epochs * len(loader))))

    torch.manual_seed(config.seed)
    supernet = Supernet(space, num_classes=len(dataset.classes),
                        in_chans=dataset.channels).to(device)
    if config.channels_last:
        supernet.use_memory_format(torch.channels_last)
    optimizer = _optimizer(config, supernet)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total))
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
        step = state["step"]
    elif ddp.main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run / "config.json",
                           (json.dumps(asdict(config), indent=2) + "\n").encode())
    space_text = space.text

    def checkpoint(at: int) -> None:
        ddp.average_buffers(supernet)
        if not ddp.main:  # rank 0 writes; the others wait until the file is complete
            ddp.barrier()
            return
        save_checkpoint({
            "format": CHECKPOINT_FORMAT, "config": asdict(config), "step": at,
            "model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "sampler_rng": list_rng(rng.getstate()),
            "space_text": space_text, "classes": list(dataset.classes),
            "mean": mean, "std": std,
        }, ckpt_path)
        ddp.barrier()

    bar = None
    progress = progress and ddp.main
    if progress:
        from tqdm import tqdm

        # disable=None: a live bar on a terminal; logs get one line per checkpoint instead.
        bar = tqdm(total=total, initial=step, desc="supernet", unit="step", dynamic_ncols=True,
                   disable=None)
    run.mkdir(parents=True, exist_ok=True)
    log = (run / "train_log.jsonl").open("a") if ddp.main else open(os.devnull, "w")
    supernet.train()
    started, seen, done_here = time.perf_counter(), 0, 0
    saved = step
    try:
        while step < total:
            epoch, index = divmod(step, len(loader))
            for x, y in loader.epoch(epoch, start=index):
                loss = _train_step(supernet, sampler, ddp.shard(x), ddp.shard(y), config)
                ddp.average_gradients(supernet.parameters())
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(supernet.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                done_here += 1
                seen += len(y)
                rate = seen / (time.perf_counter() - started)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}",
                                    lr=f"{scheduler.get_last_lr()[0]:.3g}")
                if step % config.checkpoint_every == 0 or step == total:
                    checkpoint(step)
                    saved = step
                    line = json.dumps({"step": step, "loss": round(loss, 5),
                                       "lr": scheduler.get_last_lr()[0],
                                       "img_per_s": round(rate, 1)})
                    log.write(line + "\n")
                    log.flush()
                    if progress and (bar is None or bar.disable):
                        eta = (total - step) * len(y) / max(rate, 1e-9)
                        print(f"step {step}/{total} loss {loss:.3f} {rate:.0f} img/s "
                              f"ETA {eta / 60:.1f} min", flush=True)
                if step >= total or (stop_after is not None and done_here >= stop_after):
                    break
            if stop_after is not None and done_here >= stop_after:
                if saved != step:
                    checkpoint(step)
                break
    except KeyboardInterrupt:
        # Between optimiser steps the state is consistent: keep the work done so far. Not
        # under torchrun: ranks are interrupted at different points, and the checkpoint's
        # collectives would pair with the wrong calls; the last periodic one is kept.
        if step > saved and ddp.world == 1:
            checkpoint(step)
        raise
    finally:
        log.close()
        if bar is not None:
            bar.close()
        ddp.close()
    return SupernetRun(supernet.eval(), config, dataset, mean, std, step)


def _train_step(supernet: Supernet, sampler: ArchSampler, x, y, config: TrainConfig) -> float:
    """Forward/backward every arch of the step; gradients accumulate. Returns the first loss."""
    teacher = None
    first = None
    for arch, distilled in sampler.step():
        logits = supernet(x, arch)
        if distilled and teacher is not None:
            loss = -(teacher * F.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            teacher = F.softmax(logits.detach(), 1)
        loss.backward()
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


def supernet_checkpoint(path) -> Path:
    """The checkpoint file a ``--supernet`` value names: ``RUN/supernet.pt`` or ``RUN``."""
    path = Path(path)
    return path / "supernet.pt" if path.is_dir() else path


def load_supernet(path, device: str = "auto") -> SupernetRun:
    """Load ``RUN/supernet.pt`` (or a run directory) for evaluation and search."""
    path = supernet_checkpoint(path)
    state = load_checkpoint(path, CHECKPOINT_FORMAT)
    config = TrainConfig.from_dict(state["config"])
    space = _space_of(config, state["space_text"])
    dataset = load_dataset(config.data)
    if list(dataset.classes) != list(state["classes"]):
        raise CheckpointError(f"{path}: trained on classes {state['classes']}, but "
                              f"{config.data} has {dataset.classes}")
    supernet = Supernet(space, num_classes=len(state["classes"]), in_chans=dataset.channels)
    supernet.load_state_dict(state["model"])
    supernet.to(_device(device)).eval()
    if config.channels_last:
        supernet.use_memory_format(torch.channels_last)
    return SupernetRun(supernet, config, dataset, state["mean"], state["std"], state["step"])


def quick_report(run: SupernetRun, batches: int = 20) -> Dict[str, float]:
    """Validation accuracy of the largest and smallest subnets (after BN recalibration)."""
    calib, valid = run.loaders()
    space = run.supernet.space
    return {
        "largest": evaluate(run.supernet, space.extreme_arch(True), valid, calib, batches),
        "smallest": evaluate(run.supernet, space.extreme_arch(False), valid, calib, batches),
    }
