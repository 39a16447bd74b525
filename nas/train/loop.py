"""The training loop every trainer in nas runs (supernet, standalone, distributed).

:func:`fit` owns what the trainers share: the step schedule over epochs of a
:class:`~nas.data.Loader`, gradient averaging across processes, clipping, the optimiser
and learning-rate steps, the progress bar (or one line per checkpoint when not on a
terminal), the JSON-lines log, periodic checkpoints, exact resume (the loader replays an
epoch from any batch) and Ctrl-C (a checkpoint of the work done, then re-raised). What a
step computes is the caller's: ``step_fn(x, y)`` runs the forward and backward passes and
returns the loss. :class:`LoopConfig` holds the settings both trainers share.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple

import torch

from ..config import Settings, setting
from ..data import Dataset, ImageSet, Loader, data_location, require_classes, train_val_split
from ..errors import UsageError
from ..files import AppendLog
from .distributed import Dist

__all__ = ["LoopConfig", "fit", "resolve_device", "data_splits", "train_loader", "total_steps"]

OPTIMIZERS = ("sgd", "adamw")


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

    def check(self) -> None:
        if 0 < self.resolution < 8:
            raise UsageError(f"--resolution must be 0 (native) or 8..4096, got "
                             f"{self.resolution}")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def data_splits(dataset: Dataset, config: LoopConfig) -> Tuple[ImageSet, ImageSet]:
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


def train_loader(train: ImageSet, dataset: Dataset, mean, std, config: LoopConfig,
                 device: torch.device) -> Loader:
    """The augmented training batches (pad-and-crop by 1/14 of the side, flips)."""
    loader = Loader(train, config.batch_size, mean, std, train=True,
                    resolution=config.resolution or None, pad=max(1, dataset.resolution // 14),
                    flip=True, seed=config.seed, device=device,
                    channels_last=config.channels_last)
    if len(loader) == 0:
        raise UsageError(f"only {len(train)} training images: fewer than one batch of "
                         f"{config.batch_size} (--batch-size)")
    return loader


def total_steps(config: LoopConfig, loader: Loader) -> int:
    return config.steps or max(1, int(round(config.epochs * len(loader))))


def fit(step_fn: Callable[[torch.Tensor, torch.Tensor], float],
        parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
        scheduler, loader: Loader, total: int, step: int, *, grad_clip: float,
        checkpoint_every: int, save: Callable[[int], None], log_path: Optional[Path],
        desc: str, progress: bool = True, dist: Dist = Dist(),
        stop_after: Optional[int] = None) -> int:
    """Train from ``step`` to ``total`` steps; returns the step reached.

    Args:
        step_fn: forward and backward of one batch (this process's shard); returns the loss.
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
        log_path: one JSON line ``{step, loss, lr, img_per_s}`` per checkpoint.
        desc: the progress bar's label.
        progress: a bar on a terminal, else one line per checkpoint.
        dist: this process's place in a torchrun job.
        stop_after: stop after this many steps in this call, with a checkpoint (tests).
    """
    parameters = list(parameters)
    progress = progress and dist.main
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: a live bar on a terminal; logs get one line per checkpoint instead.
        bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True,
                   disable=None)
    # A failed write (a full disk) names the log file.
    log = AppendLog(log_path if log_path is not None and dist.main else os.devnull)
    started, seen, done_here, saved = time.perf_counter(), 0, 0, step
    try:
        while step < total:
            epoch, index = divmod(step, len(loader))
            for x, y in loader.epoch(epoch, start=index):
                loss = step_fn(dist.shard(x), dist.shard(y))
                dist.average_gradients(parameters)
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                done_here += 1
                seen += len(y)
                rate = seen / (time.perf_counter() - started)
                lr = scheduler.get_last_lr()[0]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}", lr=f"{lr:.3g}")
                if step % checkpoint_every == 0 or step == total:
                    save(step)
                    saved = step
                    log.write({"step": step, "loss": round(loss, 5), "lr": lr,
                               "img_per_s": round(rate, 1)})
                    if progress and (bar is None or bar.disable):
                        eta = (total - step) * len(y) / max(rate, 1e-9)
                        print(f"{desc} step {step}/{total} loss {loss:.3f} {rate:.0f} img/s "
                              f"ETA {eta / 60:.1f} min", flush=True)
                if step >= total or (stop_after is not None and done_here >= stop_after):
                    break
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

