"""The training loop every trainer in nas runs (supernet, standalone, distributed).

:func:`fit` owns what the trainers share: the step schedule over epochs of
:func:`~nas.data.make_loader`'s batches, gradient averaging across processes, clipping, the
optimiser and learning-rate steps, the progress bar (or one line per checkpoint when not on a
terminal), the JSON-lines log, periodic checkpoints, exact resume (the loader replays an
epoch from any batch) and Ctrl-C (a checkpoint of the work done, then re-raised). What a
step computes is the caller's: ``step_fn(x, y)`` runs the forward and backward passes and
returns the loss. :class:`LoopConfig` holds the settings both trainers share.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch

from ..config import Settings, setting
from ..data import (
    DATA_MODES,
    Dataset,
    data_location,
    load_dataset,
    make_loader,
    require_classes,
    train_val_split,
)
from ..data.recipe import parse_aa
from ..errors import UsageError
from ..files import AppendLog
from .amp import PRECISIONS, Precision
from .distributed import Dist

__all__ = ["LoopConfig", "fit", "resolve_device", "data_splits", "train_loader", "total_steps",
           "recipe_of", "load_data", "data_settings", "DATA_SETTINGS", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adamw")


def _aa(text: str) -> str:
    parse_aa(text)  # refused at once, with the flag named
    return text


@dataclass
class LoopConfig(Settings):
    """Data, optimiser and schedule settings shared by supernet and standalone training."""

    data: str = setting("fashion-mnist", path=data_location,
                        help="fashion-mnist, an ImageFolder dir (train/ test/) or a .tar.gz "
                             "of one")
    steps: int = setting(0, at_least=0, help="optimisation steps (0: from --epochs)")
    epochs: float = setting(1.0, above=0, help="epochs over the training split")
    batch_size: int = setting(64, at_least=1, help="images per step")
    # AdamW: on the few hundred CPU steps nas is run for, it learned clearly faster than
    # SGD (loss 1.77 vs 2.10 after 40 steps of the largest mixnet_300m subnet; SGD at
    # 0.1 and 0.03 alike). SGD + Nesterov stays available for long runs.
    optimizer: str = setting("adamw", choices=OPTIMIZERS,
                             help="adamw, or sgd (Nesterov momentum 0.9)")
    lr: float = setting(2e-3, above=0, help="peak learning rate (cosine schedule)")
    weight_decay: float = setting(0.05, at_least=0,
                                  help="weight decay (not on BatchNorm and biases)")
    warmup: float = setting(0.05, at_least=0, below=1,
                            help="fraction of the steps with a linear warm-up")
    label_smoothing: float = setting(0.1, at_least=0, below=1,
                                     help="label smoothing of the hard-label loss")
    resolution: int = setting(0, at_least=0, at_most=4096,
                              help="proxy resolution to resize images to (0: native)")
    val_fraction: float = setting(0.1, above=0, below=1,
                                  help="share of the training data held out for validation")
    # Apart from the training seed: runs that differ only in --seed are scored on the
    # same validation images.
    split_seed: int = setting(0, help="seed of the validation carve")
    train_subset: int = setting(0, at_least=0, help="train on only this many images (0: all)")
    seed: int = setting(0, help="seed of initialisation, data order and augmentation")
    checkpoint_every: int = setting(100, at_least=1, help="steps between checkpoints")
    device: str = setting("auto", pattern=r"auto|cpu|cuda(:\d+)?", metavar="{auto,cpu,cuda}",
                          expected="auto, cpu, cuda or cuda:N",
                          help="auto (CUDA when present), cpu, cuda or cuda:N")
    grad_clip: float = setting(5.0, at_least=0, help="gradient norm clip (0: none)")
    channels_last: bool = setting(True, help="NHWC layout (2-3x faster depthwise convs "
                                             "on CPU)")
    # The data recipe (nas.data.recipe), in timm's names and with its defaults.
    data_mode: str = setting("auto", choices=DATA_MODES,
                             help="auto: small images that fit min(2 GB, 10% of RAM) in "
                                  "memory, everything else streamed from the files; or force "
                                  "memory | stream")
    loader_workers: int = setting(-1, at_least=-1,
                                  help="DataLoader worker processes decoding streamed images "
                                       "(-1: one per core, 0: in the training process)")
    hflip: float = setting(0.5, at_least=0, at_most=1,
                           help="probability of a horizontal flip in training")
    scale_min: float = setting(0.08, above=0, at_most=1,
                               help="photos: smallest area fraction RandomResizedCrop takes "
                                    "(timm's --scale)")
    crop_pct: float = setting(0.875, above=0, at_most=1,
                              help="photos: evaluation centre crop as a fraction of the resized "
                                   "side (timm's --crop-pct)")
    aa: str = setting("", parse=_aa, metavar="rand-mM-nN",
                      help="RandAugment in timm's notation, e.g. rand-m9-n2 (empty: off)")
    mixup: float = setting(0.0, at_least=0, help="mixup alpha (0: off; timm's --mixup)")
    cutmix: float = setting(0.0, at_least=0, help="cutmix alpha (0: off; timm's --cutmix)")
    precision: str = setting("auto", choices=PRECISIONS,
                             help="auto: bf16 autocast on CUDA, fp32 on CPU; or fp32 | bf16 | "
                                  "fp16 (with a gradient scaler)")

    def check(self) -> None:
        if 0 < self.resolution < 8:
            raise UsageError(f"--resolution must be 0 (native) or 8..4096, got "
                             f"{self.resolution}")
        parse_aa(self.aa)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


#: The settings that decide which images a network trains and is scored on, and how they
#: are made: a trainer that must see the same data as another copies these.
DATA_SETTINGS = ("data", "data_mode", "loader_workers", "resolution", "val_fraction",
                 "split_seed", "hflip", "scale_min", "crop_pct", "aa", "mixup", "cutmix")


def data_settings(config, **overrides) -> dict:
    """``config``'s :data:`DATA_SETTINGS` (those it has) as keyword arguments for another
    :class:`LoopConfig`, with ``overrides``."""
    out = {k: getattr(config, k) for k in DATA_SETTINGS if hasattr(config, k)}
    return {**out, **overrides}


def load_data(config: LoopConfig) -> Dataset:
    """The data set ``config`` names, held or streamed as its ``--data-mode`` says."""
    return load_dataset(config.data, config.data_mode)


def recipe_of(dataset: Dataset, config: LoopConfig):
    """The :class:`~nas.data.Recipe` ``config`` trains ``dataset`` with."""
    return dataset.recipe(config.resolution, hflip=config.hflip, scale_min=config.scale_min,
                          crop_pct=config.crop_pct, aa=config.aa, mixup=config.mixup,
                          cutmix=config.cutmix)


def data_splits(dataset: Dataset, config: LoopConfig):
    """``(train, validation)``: the seeded carve, then the optional training subset.

    Raises:
        DataError: a part too small to hold one image per class, or holding one class
            only (it could not rank architectures).
    """
    train, val = train_val_split(dataset.train, config.val_fraction, config.split_seed,
                                 classes=dataset.classes)
    if config.train_subset:
        train = train.subset(torch.arange(min(config.train_subset, len(train))))
        require_classes(train, dataset.classes, f"the training subset (--train-subset "
                        f"{config.train_subset})", "raise --train-subset")
    return train, val


def train_loader(train, dataset: Dataset, mean, std, config: LoopConfig,
                 device: torch.device, dist: Dist = Dist()):
    """The augmented training batches (the recipe's training transform); streamed ones are
    decoded by this rank for its share only."""
    loader = make_loader(train, config.batch_size, mean, std, recipe=recipe_of(dataset, config),
                         train=True, seed=config.seed, device=device,
                         channels_last=config.channels_last, workers=config.loader_workers,
                         num_classes=len(dataset.classes), part=(dist.rank, dist.world))
    if len(loader) == 0:
        raise UsageError(f"only {len(train)} training images: fewer than one batch of "
                         f"{config.batch_size} (--batch-size)")
    return loader


def total_steps(config: LoopConfig, loader) -> int:
    return config.steps or max(1, int(round(config.epochs * len(loader))))


def fit(step_fn: Callable[[torch.Tensor, torch.Tensor], float],
        parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
        scheduler, loader, total: int, step: int, *, grad_clip: float,
        checkpoint_every: int, save: Callable[[int], None], log_path: Optional[Path],
        desc: str, progress: bool = True, dist: Dist = Dist(),
        stop_after: Optional[int] = None, precision: Optional[Precision] = None) -> int:
    """Train from ``step`` to ``total`` steps; returns the step reached.

    Args:
        step_fn: forward and backward of one batch (this process's shard); returns the loss.
            It runs the forward in ``precision.autocast()`` and calls
            ``precision.backward(loss)``.
        parameters: what the optimiser updates (gradients averaged, then clipped).
        optimizer, scheduler: stepped once per batch, in that order.
        loader: training batches; step ``s`` is batch ``s % len(loader)`` of epoch
            ``s // len(loader)``, so a resumed run continues exactly.
        total: the last step.
        step: the first step (0, or the checkpoint's).
        grad_clip: gradient norm clip (0: none).
        checkpoint_every: steps between calls of ``save``; it is also called at the end
            and, on Ctrl-C, with the work done since the last one.
        save: writes a checkpoint at the given step (every process calls it; the caller
            decides which one writes).
        log_path: JSON lines: ``{step, loss, lr, img_per_s, data_wait}`` per checkpoint and
            ``{epoch, steps, img_per_s, data_wait}`` per epoch (or part of one) trained, where
            ``data_wait`` is the share of the wall time spent waiting for the next batch.
        desc: the progress bar's label.
        progress: a bar on a terminal, else one line per checkpoint.
        dist: this process's place in a torchrun job.
        stop_after: stop after this many steps in this call, with a checkpoint (tests).
        precision: the step's numeric precision (default fp32): its scaler, if any, is
            unscaled before clipping and steps the optimiser.
    """
    parameters = list(parameters)
    precision = precision or Precision("fp32", torch.device("cpu"))
    progress = progress and dist.main
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: a live bar on a terminal; logs get one line per checkpoint instead.
        bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True,
                   disable=None)
    # A failed write (a full disk) names the log file.
    log = AppendLog(log_path if log_path is not None and dist.main else os.devnull)
    shard = (lambda t: t) if getattr(loader, "sharded", False) else dist.shard
    started, seen, done_here, saved = time.perf_counter(), 0, 0, step
    timer = _DataTimer()
    try:
        while step < total:
            epoch, index = divmod(step, len(loader))
            timer.start_epoch(epoch)
            batches = iter(loader.epoch(epoch, start=index))
            while True:
                with timer.waiting():
                    batch = next(batches, None)
                if batch is None:
                    break
                x, y = batch
                loss = step_fn(shard(x), shard(y))
                dist.average_gradients(parameters)
                precision.unscale(optimizer)
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
                precision.step(optimizer)
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                done_here += 1
                seen += len(y)
                timer.count(len(y))
                rate = seen / (time.perf_counter() - started)
                lr = scheduler.get_last_lr()[0]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}", lr=f"{lr:.3g}",
                                    wait=f"{timer.share():.0%}")
                if step % checkpoint_every == 0 or step == total:
                    save(step)
                    saved = step
                    log.write({"step": step, "loss": round(loss, 5), "lr": lr,
                               "img_per_s": round(rate, 1),
                               "data_wait": round(timer.share(), 4)})
                    if progress and (bar is None or bar.disable):
                        eta = (total - step) * len(y) / max(rate, 1e-9)
                        print(f"{desc} step {step}/{total} loss {loss:.3f} {rate:.0f} img/s "
                              f"(waiting for data {timer.share():.0%}) ETA {eta / 60:.1f} min",
                              flush=True)
                if step >= total or (stop_after is not None and done_here >= stop_after):
                    break
            batches.close()  # stop the loader's workers prefetching an abandoned epoch
            log.write(timer.epoch_record(step - epoch * len(loader), len(loader)))
            if stop_after is not None and done_here >= stop_after:
                if saved != step:
                    save(step)
                break
    except KeyboardInterrupt:
        # Between optimiser steps the state is consistent: keep the work done so far. Not
        # under torchrun: ranks are interrupted at different points, and the checkpoint's
        # collectives would pair with the wrong calls; the last periodic one is kept.
        if step > saved and dist.world == 1:
            save(step)
        raise
    finally:
        log.close()
        if bar is not None:
            bar.close()
    return step


class _DataTimer:
    """The share of training wall time spent waiting for batches, per epoch."""

    def __init__(self):
        self.epoch, self.images, self.wait, self.begun = 0, 0, 0.0, time.perf_counter()

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.images, self.wait, self.begun = epoch, 0, 0.0, time.perf_counter()

    @contextlib.contextmanager
    def waiting(self):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.wait += time.perf_counter() - began

    def count(self, images: int) -> None:
        self.images += images

    def share(self) -> float:
        return self.wait / max(time.perf_counter() - self.begun, 1e-9)

    def epoch_record(self, steps: int, per_epoch: int) -> dict:
        elapsed = max(time.perf_counter() - self.begun, 1e-9)
        return {"epoch": self.epoch, "steps": steps, "of": per_epoch,
                "img_per_s": round(self.images / elapsed, 1),
                "data_wait": round(self.wait / elapsed, 4)}
