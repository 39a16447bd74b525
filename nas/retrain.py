"""Standalone training of one architecture: the exported network, not the supernet.

``nas train (--arch ARCH | --from DIR) --data D -o OUT`` builds the static network
(:func:`nas.build_model`, the classes ``nas export`` writes), trains it on the training
split less the validation carve (the same seeded carve as the supernet's), and at the end
evaluates it on the validation split and, once, on the **test** split, writing
``OUT/metrics.json``. ``--init inherited`` starts from an export's ``weights.pt`` (the
supernet's weights); tensors whose shapes do not fit the data (another number of input
channels or classes) start fresh and are listed. Checkpoints are atomic, read with
``weights_only=True``, and ``--resume`` continues exactly.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from .arch import Architecture, ArchError
from .checkpoint import atomic_write_bytes, resume_state, save_checkpoint
from .cost import count_cost
from .data import Loader, image_stats, load_dataset
from .evaluate import accuracy
from .latency import arch_latency
from .model import build_model
from .train import LoopConfig, RunError, _device, _optimizer, _schedule, _splits

__all__ = ["RetrainConfig", "retrain", "arch_from_export"]

CHECKPOINT_FORMAT = "nas-retrain/1"
INITS = ("scratch", "inherited")


@dataclass
class RetrainConfig(LoopConfig):
    """Everything a standalone training run depends on (saved as ``config.json``)."""

    arch: str = ""                   # canonical architecture string
    init: str = "scratch"            # scratch | inherited (from weights)
    weights: str = ""                # an export's weights.pt, for --init inherited
    epochs: float = 5.0
    batch_size: int = 128
    checkpoint_every: int = 200

    def validate(self) -> "RetrainConfig":
        super().validate()
        if self.init not in INITS:
            raise RunError(f"--init must be scratch or inherited, got {self.init!r}")
        if self.init == "inherited" and not self.weights:
            raise RunError("--init inherited needs weights: use --from DIR (an export with "
                           "weights.pt)")
        try:
            Architecture.parse(self.arch)
        except ArchError as e:
            raise RunError(f"bad architecture: {e}") from None
        return self


def arch_from_export(directory) -> tuple:
    """``(canonical arch, weights.pt path or "")`` of an export directory."""
    directory = Path(directory)
    meta_path = directory / "arch.json"
    try:
        meta = json.loads(meta_path.read_text())
        arch = Architecture.parse(str(meta["arch"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{meta_path}: not an export's arch.json ({e.__class__.__name__})") \
            from None
    if isinstance(meta.get("form"), dict) and meta["form"].get("fused"):
        raise RunError(f"{directory} is a --fused export: its weights.pt holds fused MixConv "
                       "kernels; export the trial again without --fused to train it")
    weights = directory / "weights.pt"
    return str(arch), str(weights) if weights.is_file() else ""


def _inherit(model: torch.nn.Module, path: str) -> List[str]:
    """Copy the tensors of ``path`` whose names and shapes fit; returns those that did not."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise RunError(f"{path}: not a readable weights file ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: not a state dict")
    own = model.state_dict()
    fresh = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in fresh},
                          strict=False)
    return fresh


def retrain(config: Optional[RetrainConfig], out_dir, resume: bool = False,
            progress: bool = True, stop_after: Optional[int] = None,
            test: bool = True) -> Dict[str, Any]:
    """Train ``config.arch`` standalone into ``out_dir``; returns the metrics written.

    With ``resume`` the saved configuration wins (``config`` may be None). ``stop_after``
    stops after that many steps in this call, with a checkpoint (tests). ``test=False``
    leaves the test split unread (``nas diagnose`` compares on validation accuracy).
    """
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    state = resume_state(ckpt_path, CHECKPOINT_FORMAT, resume)
    if state is not None:
        config = RetrainConfig.from_dict(state["config"])
    config.validate()
    arch = Architecture.parse(config.arch)
    device = _device(config.device)
    dataset = load_dataset(config.data)
    train, val = _splits(dataset, config)
    mean, std = image_stats(train)
    res = config.resolution or None
    memory = dict(device=device, channels_last=config.channels_last)
    loader = Loader(train, config.batch_size, mean, std, train=True, resolution=res,
                    pad=max(1, dataset.resolution // 14), flip=True, seed=config.seed, **memory)
    if len(loader) == 0:
        raise RunError(f"only {len(train)} training images: fewer than one batch")
    total = config.steps or max(1, int(round(config.epochs * len(loader))))

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = build_model(arch, num_classes=len(dataset.classes), in_chans=dataset.channels)
    fresh: List[str] = []
    if config.init == "inherited" and state is None:
        fresh = _inherit(model, config.weights)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total))
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, fresh = state["step"], state["fresh"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "config.json",
                           (json.dumps(asdict(config), indent=2) + "\n").encode())

    def checkpoint(at: int) -> None:
        save_checkpoint({"format": CHECKPOINT_FORMAT, "config": asdict(config), "step": at,
                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "fresh": fresh,
                         "mean": mean, "std": std}, ckpt_path)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True,
                   disable=None)
    started, seen, saved, first = time.perf_counter(), 0, step, step
    model.train()
    try:
        while step < total:
            epoch, index = divmod(step, len(loader))
            for x, y in loader.epoch(epoch, start=index):
                loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                seen += len(y)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}",
                                    img_s=f"{seen / (time.perf_counter() - started):.0f}")
                if step % config.checkpoint_every == 0 or step == total:
                    checkpoint(step)
                    saved = step
                if step >= total:
                    break
                if stop_after is not None and step - first >= stop_after:
                    if saved != step:
                        checkpoint(step)
                    return {"stopped_at": step}
    except KeyboardInterrupt:
        if step > saved:
            checkpoint(step)
        raise
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    eval_memory = dict(resolution=res, **memory)
    val_acc = accuracy(model, Loader(val, 256, mean, std, **eval_memory))
    # The test split is read here, once, for the finished network; search never reads it.
    test_acc = (accuracy(model, Loader(dataset.test, 256, mean, std, **eval_memory))
                if test else None)
    cost = count_cost(arch)
    metrics = {
        "test_accuracy": test_acc, "val_accuracy": val_acc, "arch": str(arch), "id": arch.id,
        "flops": cost.flops, "params": cost.params,
        "latency_ms": round(arch_latency(arch), 3), "epochs": round(step / len(loader), 4),
        "steps": step, "seed": config.seed, "init": config.init, "data": config.data,
        "fresh_tensors": fresh, "train_images": len(train),
        "test_images": len(dataset.test) if test else 0,
    }
    atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    atomic_write_bytes(out / "weights.pt", _state_bytes(model))
    return metrics


def _state_bytes(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()
