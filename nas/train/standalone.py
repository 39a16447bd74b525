"""Standalone training of one architecture: the exported network, not the supernet.

``nas train (--arch ARCH | --from DIR) --data D -o OUT`` builds the static network
(:func:`nas.build_model`, the classes ``nas export`` writes), trains it on the training
split less the validation carve (the same seeded carve as the supernet's), and at the end
evaluates it on the validation split and, once, on the **test** split, writing
``OUT/metrics.json``. Everything it states describes the network it trained: the
architecture with the data's channels, resolution and classes (``arch``, whose
``nas.build_model`` loads ``weights.pt``), its FLOPs, parameters and latency at that input;
the architecture as given, at its space's target input, is under ``target``.
``--init inherited`` starts from an export's ``weights.pt`` (the
supernet's weights); tensors whose shapes do not fit the data (another number of input
channels or classes) start fresh and are listed. Checkpoints are atomic, read with
``weights_only=True``, and ``--resume`` continues exactly.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from ..arch import Architecture, InputSpec
from ..config import a_path, inherit, setting
from ..cost import count_cost
from ..data import data_location, image_stats, make_loader
from ..errors import ArchError, RunError, UsageError
from ..evaluate import accuracy
from ..files import (
    atomic_write_bytes,
    read_json,
    resume_state,
    save_checkpoint,
    tensor_bytes,
    write_json,
)
from ..latency import arch_latency
from ..model import build_model
from ..runs import ExportDir, TrainDir
from .amp import Precision
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

__all__ = ["RetrainConfig", "retrain", "arch_from_export", "retrain_config", "metrics_lines"]

RETRAIN_CHECKPOINT_FORMAT = "nas-retrain/1"
INITS = ("scratch", "inherited")


@dataclass
class RetrainConfig(LoopConfig):
    """Everything a standalone training run depends on (saved as ``config.json``)."""

    arch: str = setting("", cli=False, help="canonical architecture string")
    init: str = setting("scratch", choices=INITS,
                        help="start from fresh weights, or from the export's weights.pt")
    weights: str = setting("", cli=False, path=a_path,
                           help="an export's weights.pt, for --init inherited")
    epochs: float = inherit(5.0)
    batch_size: int = inherit(128)
    checkpoint_every: int = inherit(200)
    # A fixed network compiles once; a supernet changes shape every step, so it has no flag.
    compile: bool = setting(False, help="train through torch.compile (a fixed network: "
                                        "faster steps on a GPU after a compile of a minute "
                                        "or so)")

    def check(self) -> None:
        super().check()
        if self.init == "inherited" and not self.weights:
            raise UsageError("--init inherited needs weights: use --from DIR (an export with "
                             "weights.pt)")
        try:
            Architecture.parse(self.arch)
        except ArchError as e:
            raise UsageError(f"bad architecture: {e}") from None


def arch_from_export(directory) -> tuple:
    """``(canonical arch, weights.pt path or "")`` of an export directory: the
    architecture as searched (``target``) when the export says, so that ``metrics.json``'s
    ``target`` is the space's target input again."""
    export = ExportDir(directory)
    try:
        meta = read_json(export.arch_json, "export's arch.json")
        target = meta.get("target")
        arch = Architecture.parse(str(target["arch"] if isinstance(target, dict)
                                      else meta["arch"]))
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{export.arch_json}: not an export's arch.json "
                       f"({e.__class__.__name__})") from None
    form = meta.get("form") if isinstance(meta.get("form"), dict) else {}
    if form.get("fold_bn"):
        raise RunError(f"{export} is a --fold-bn export: its network has no BatchNorm to "
                       "train; export the trial again without --fold-bn to train it")
    if form.get("fused"):
        raise RunError(f"{export} is a --fused export: its weights.pt holds fused MixConv "
                       "kernels; export the trial again without --fused to train it")
    return str(arch), str(export.weights) if export.weights.is_file() else ""


def export_data(directory) -> str:
    """The data an export's weights were trained on (``arch.json``'s ``weights.data``), or
    "" when it does not say (an ``--arch`` export has no weights)."""
    try:
        weights = read_json(ExportDir(directory).arch_json, "export's arch.json").get("weights")
    except AttributeError:  # not an object: arch_from_export has said so already
        return ""
    data = weights.get("data") if isinstance(weights, dict) else None
    return data if isinstance(data, str) else ""


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
    stops after that many steps in this call, with a checkpoint, and returns
    ``{"stopped_at": step}`` (tests). ``test=False`` leaves the test split unread (rank
    studies compare on validation accuracy).
    """
    out = TrainDir(out_dir)
    state = resume_state(out.checkpoint, RETRAIN_CHECKPOINT_FORMAT, resume)
    if state is not None:
        config = RetrainConfig.from_dict(state["config"], str(out.checkpoint), base=out.path)
    config = config.validate().resolved()
    arch = Architecture.parse(config.arch)
    device = resolve_device(config.device)
    precision = Precision.resolve(config.precision, device)
    dataset = load_data(config)
    recipe = recipe_of(dataset, config)
    # Validates the network at the training resolution (an ADown fed 1x1 is an ArchError).
    replace(arch, input=InputSpec(arch.input.channels, recipe.resolution, arch.input.classes))
    train, val = data_splits(dataset, config)
    mean, std = image_stats(train)
    loader = train_loader(train, dataset, mean, std, config, device)
    total = total_steps(config, loader)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = build_model(arch, num_classes=len(dataset.classes), in_chans=dataset.channels)
    fresh: List[str] = []
    if config.init == "inherited" and state is None:
        fresh = _inherit(model, config.weights)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    scheduler = create_schedule(optimizer, total, config.warmup)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        precision.load_state_dict(state.get("scaler", {}))
        step, fresh = state["step"], state["fresh"]
    else:
        write_json(out.config, config.to_dict(out.path))

    def save(at: int) -> None:
        save_checkpoint({"format": RETRAIN_CHECKPOINT_FORMAT, "config": config.to_dict(out.path),
                         "step": at,
                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "fresh": fresh,
                         "mean": mean, "std": std, "scaler": precision.state_dict()},
                        out.checkpoint)

    forward = torch.compile(model) if config.compile else model

    def step_fn(x, y) -> float:
        with precision.autocast():
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        precision.backward(loss)
        return loss.item()

    model.train()
    step = fit(step_fn, model.parameters(), optimizer, scheduler, loader, total, step,
               grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every, save=save,
               log_path=out.log, desc="train", progress=progress, stop_after=stop_after,
               precision=precision)
    if step < total:
        return {"stopped_at": step}
    model.eval()
    common = dict(recipe=recipe, device=device, channels_last=config.channels_last,
                  workers=config.loader_workers)
    val_acc = accuracy(model, make_loader(val, 256, mean, std, **common))
    # The test split is read here, once, for the finished network; search never reads it.
    test_acc = (accuracy(model, make_loader(dataset.test, 256, mean, std, **common))
                if test else None)
    # The network trained has the data's stem and classifier, and ran at this resolution.
    produced = replace(arch, input=InputSpec(dataset.channels, recipe.resolution,
                                             len(dataset.classes)))
    cost, target = count_cost(produced), count_cost(arch)
    metrics = {
        "test_accuracy": test_acc, "val_accuracy": val_acc, "arch": str(produced),
        "id": produced.id, "input": produced.to_dict()["input"],
        "flops": cost.flops, "params": sum(p.numel() for p in model.parameters()),
        "latency_ms": round(arch_latency(produced), 3),
        "target": {"arch": str(arch), "flops": target.flops, "params": target.params,
                   "latency_ms": round(arch_latency(arch), 3)},
        "epochs": round(step / len(loader), 4),
        "steps": step, "seed": config.seed, "init": config.init, "data": config.data,
        "recipe": recipe.describe(), "eval_transform": recipe.eval_steps(),
        "precision": precision.name,
        "fresh_tensors": fresh, "train_images": len(train),
        "test_images": len(dataset.test) if test else 0,
    }
    atomic_write_bytes(out.weights, tensor_bytes(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))
    write_json(out.metrics, metrics)  # last: it marks the run finished (diagnose reuses it)
    return metrics


def retrain_config(given: Dict[str, Any], arch: Optional[str] = None,
                   from_dir: Optional[str] = None, resume: bool = False) -> Optional[RetrainConfig]:
    """``nas train``'s settings: those ``given`` on the command line for the architecture of
    ``arch`` (what ``--arch`` takes, :func:`nas.arch.read_arch`) or of the export
    ``from_dir`` (with its weights, and, unless ``--data`` is given, the data they were
    trained on); None with ``resume`` (the run's own settings).

    Raises:
        UsageError: no architecture, both a run to resume and settings, or ``--init
            inherited`` without weights.
    """
    from ..arch import read_arch

    if resume:
        if arch or from_dir or given:
            raise UsageError("--resume continues with the run's own settings; give only -o")
        return None
    if from_dir:
        arch, weights = arch_from_export(from_dir)
        recorded = export_data(from_dir)
        if "data" not in given and recorded:  # the data its weights know
            if data_location(recorded) and not os.path.exists(recorded):
                raise UsageError(f"--from {from_dir}: its weights were trained on {recorded} "
                                 "(arch.json weights.data), which is not here: give --data")
            given = {**given, "data": recorded}
    elif arch:
        arch, weights = str(read_arch(arch)), ""
    else:
        raise UsageError("give --arch ARCH or --from EXPORT_DIR (or -o RUN --resume)")
    if given.get("init") == "inherited" and not weights:
        raise UsageError("--init inherited needs --from an export that has weights.pt")
    return RetrainConfig(arch=arch, weights=weights, **given).validate()


def metrics_lines(m: Dict[str, Any]) -> List[str]:
    """What ``nas train`` prints of a training's metrics (:func:`retrain`'s)."""
    from ..units import fmt_count

    inp, target = m["input"], m["target"]
    lines = [f"trained {m['id']} for {m['epochs']:g} epochs ({m['steps']} steps, init "
             f"{m['init']}): test accuracy {m['test_accuracy']:.2%}, validation "
             f"{m['val_accuracy']:.2%}; {fmt_count(m['flops'])} FLOPs, "
             f"{fmt_count(m['params'])} params, {m['latency_ms']:.1f} ms at "
             f"{inp['channels']}x{inp['resolution']}x{inp['resolution']}, {inp['classes']} "
             f"classes (at the space's target input: {fmt_count(target['flops'])} FLOPs, "
             f"{fmt_count(target['params'])} params)"]
    if m["fresh_tensors"]:
        lines.append(f"  not inherited (shapes differ for this data): "
                     f"{', '.join(m['fresh_tensors'])}")
    return lines
