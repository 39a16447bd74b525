"""Export a searched architecture with the weights it inherits from the supernet.

``nas export RUN --trial N`` (or ``--best``) takes the trial's architecture, extracts its
subnet from the run's supernet, recalibrates BatchNorm exactly as the search did (same
batches), and writes it with :func:`nas.export.export_network`: ``model.py``,
``weights.pt``, ``arch.json``, ``model.ts`` (and ``model.onnx`` with ``onnx`` installed).
The weights are for the run's dataset (its channels, classes and resolution), so
``model.py``'s ``build_model()`` defaults to those, and everything written about the
network describes that network: ``arch.json``'s ``arch``, ``flops``, ``params`` and
``input`` (and ``model.py``'s header) are at the data's channels, classes and the
resolution the search scored at; the architecture as searched, at its space's target
input (the FLOPs the budget and the report count), is ``arch.json``'s ``target``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..arch import Architecture, InputSpec, read_arch
from ..cost import count_cost
from ..errors import DataError, RunError, UsageError
from ..evaluate import calibration_batches, recalibrate
from ..files import all_or_nothing
from ..latency.quantize import require_onnxruntime
from ..runs import ExportDir
from ..search import open_run
from ..train import load_supernet
from ..units import fmt_count
from .config import ExportConfig
from .deploy import Deploy, check_deploy, deploy_lines, write_deploy
from .int8 import Int8Report, int8_inputs
from .mobile import Converted
from .source import ExportForm, out_levels
from .write import export_arch, export_network, export_untrained, load_exported

__all__ = ["export_trial", "export_architecture", "TrialExport", "ArchExport", "target_inputs"]

_FRESH_INT8 = "; model.onnx and model.int8.onnx hold fresh weights, for size and latency"


@dataclass
class TrialExport:
    """What :func:`export_trial` wrote: the files, the largest absolute output differences
    of the written network (``model``: model.py + weights.pt, ``torchscript``: model.ts,
    ``supernet``: against ``supernet(x, arch)``) from the network nas extracted (none when
    the trial has no weights), the int8 file's report, the trial's stored results (``row``),
    its architecture as searched and as written (``produced``: at the data's input), the
    output directory and each deploy format's conversion."""

    paths: List[Path]
    deltas: Dict[str, float]
    int8: Optional[Int8Report]
    row: Dict[str, Any]
    arch: Architecture
    produced: Architecture
    out: Path
    converted: Dict[str, Converted]
    backbone: bool  # --yolo / --features: what the outputs are
    yolo: bool

    def lines(self) -> List[str]:
        """What ``nas export RUN --trial N`` prints."""
        row, net = self.row, self.produced
        cost, inp = count_cost(net), net.input
        estimate = (f"search accuracy {row['accuracy']:.2%}"
                    if row.get("estimator", "supernet") != "naswot" else
                    f"NASWOT score {row['accuracy']:.2f}")
        lines = [f"exported trial {row['trial']} ({net.id}): {fmt_count(cost.flops)} FLOPs, "
                 f"{fmt_count(cost.params)} params at {inp.channels}x{inp.resolution}x"
                 f"{inp.resolution}, {inp.classes} classes, {estimate} (at the space's target "
                 f"input: {fmt_count(row['flops'])} FLOPs, {fmt_count(row['params'])} params)"]
        lines += [f"  {path}" for path in self.paths]
        lines += deploy_lines(self.paths, self.converted, self.yolo,
                              fresh=not (self.deltas or self.int8))
        what = "features" if self.backbone else "logits"
        if "model" not in self.deltas:
            lines.append("no weights: the search scored without a supernet and did not "
                         "re-rank (nas rerank RUN trains the best few); retrain it with nas "
                         "train --from DIR" + (_FRESH_INT8 if self.int8 else ""))
        else:
            d = self.deltas
            lines.append(f"check: max |{what} - exported network's source| = "
                         f"{d['model']:.2e} (model.py + weights.pt), {d['torchscript']:.2e} "
                         "(model.ts)" + (f"; vs supernet(x, arch) {d['supernet']:.2e}"
                                         if "supernet" in d else ""))
        if self.int8:
            lines += self.int8.lines(self.backbone)
        return lines


@dataclass
class ArchExport:
    """What :func:`export_architecture` wrote: an architecture without weights (``int8``:
    the int8 file's report, both ONNX files holding fresh weights)."""

    arch: Architecture
    paths: List[Path]
    converted: Dict[str, Converted]
    int8: Optional[Int8Report]
    backbone: bool
    yolo: bool

    def lines(self) -> List[str]:
        """What ``nas export --arch ARCH`` prints."""
        cost = count_cost(self.arch)
        lines = [f"exported {self.arch.id}: {fmt_count(cost.flops)} FLOPs, "
                 f"{fmt_count(cost.params)} params (no weights"
                 + (_FRESH_INT8 if self.int8 else "") + ")"]
        lines += [f"  {path}" for path in self.paths]
        lines += deploy_lines(self.paths, self.converted, self.yolo, fresh=True)
        if self.int8:
            lines += self.int8.lines(self.backbone)
        return lines


def export_architecture(arch, out_dir, **settings: Any) -> ArchExport:
    """``nas export --arch``: ``arch`` (an :class:`Architecture`, or what ``--arch`` takes:
    :func:`nas.arch.read_arch`) without weights, in the forms ``settings`` (ExportConfig's,
    as for :func:`export_trial`) ask for; ``int8=True`` needs ``calib``, the images to
    calibrate on.

    Raises:
        UsageError: a setting out of its bounds, or ``int8`` without ``calib``.
    """
    config = ExportConfig(**settings).validate()
    if config.int8 and not config.calib:
        raise UsageError("--arch --int8 needs --calib DATA: the images to calibrate on "
                         "(there is no run whose data to use)")
    arch = arch if isinstance(arch, Architecture) else read_arch(arch)
    form, deploy = config.form(), config.deploy()
    check_deploy(arch, form, deploy)
    int8 = inputs = None
    if config.int8:  # read the data before anything is written
        inputs = int8_inputs(config.calib, arch.input.resolution, arch.input.channels)
    with all_or_nothing(ExportDir(out_dir).files(arch.id)):  # no half export
        if inputs is not None:
            paths, int8 = export_untrained(arch, out_dir, inputs, force=config.force, form=form)
        else:
            paths = export_arch(arch, out_dir, force=config.force, form=form)
        more, converted = write_deploy(out_dir, arch, form, target_inputs(arch), deploy)
    return ArchExport(arch, paths + more, converted, int8, form.backbone, deploy.yolo)


def export_trial(run_dir, out_dir, trial: Optional[int] = None, onnx: bool = True,
                 **settings: Any) -> TrialExport:
    """Export trial ``trial`` of ``run_dir`` (the best by ``objective`` when None);
    ``onnx=False`` skips ``model.onnx`` (slow to write). The settings ``formats`` and
    ``yolo`` add the deploy forms (:class:`nas.export.deploy.Deploy`), converted at the
    resolution the weights were scored at, checked on two of the run's validation images.

    ``int8=True`` also writes ``model.int8.onnx`` (:mod:`nas.export.int8`), calibrated on
    training images of the data its weights were trained on, or of ``calib`` (a ``--data``
    value) when given; its report is the result's ``int8``.

    Args:
        settings: :class:`~nas.export.ExportConfig`'s settings by name (``fused=True``,
            ``objective="acc"``, ...), the others at its defaults: its fields are the one
            declaration of what ``nas export`` takes.

    Returns:
        What was written, checked and converted (:class:`TrialExport`).

    Raises:
        UsageError: a setting out of its bounds (TypeError: a name ExportConfig lacks).
    """
    config = ExportConfig(**settings).validate()
    force = config.force
    run = open_run(run_dir)
    row = run.best(config.objective) if trial is None else run.trial(trial)
    try:
        arch = Architecture.parse(str(row.get("arch", "")))
    except ValueError as e:
        raise RunError(f"trial {row['trial']} of {run.path} stores a malformed "
                       f"architecture: {e}") from None
    form, deploy = config.form(), config.deploy()
    int8, calib_data = config.int8, config.calib or None
    out_levels(arch, form.out_indices)  # before any weights are loaded: a bad level fails fast
    check_deploy(arch, form, deploy)
    if int8:
        require_onnxruntime("nas export --int8")  # before anything is loaded or written
    trained = run.dir.rerank_run(int(row["trial"]), 0)
    if trained.weights.exists():  # re-ranked: its own standalone training beats inheritance
        return _export_trained(run, row, arch, trained, out_dir, form, force, onnx, deploy,
                               int8, calib_data)
    if not run.supernet_path().exists() and run.config.estimator != "supernet":
        # scored without a supernet (NASWOT, a predictor): nothing to inherit
        deltas: Dict[str, Any] = {}
        with all_or_nothing(ExportDir(out_dir).files(arch.id)):
            if int8:  # the untrained network: for its int8 size and latency
                inp = arch.input
                paths, deltas["int8"] = export_untrained(
                    arch, out_dir, int8_inputs(calib_data or run.config.data, inp.resolution,
                                               inp.channels),
                    force=force, form=form, extra=_search_extra(row))
            else:
                paths = export_arch(arch, out_dir, force=force, form=form,
                                    extra=_search_extra(row))
            more, converted = write_deploy(out_dir, arch, form, target_inputs(arch), deploy)
        return _result(paths + more, deltas, row, arch, arch, out_dir, converted, form, deploy)
    try:
        sn = load_supernet(run.supernet_path(), device="cpu")
        if not sn.supernet.space.contains(arch):
            raise RunError(f"trial {row['trial']}'s architecture is not a point of the "
                           f"supernet's space {sn.supernet.space.name}")
        calib, valid = sn.loaders(device=torch.device("cpu"))
    except DataError as e:  # e.g. the data moved since the search
        raise DataError(f"{e} (the data {run.supernet_path()} was trained on: the export "
                        "recalibrates BatchNorm on its training images, so it must be where "
                        "the search found it)") from None
    scored_at = row.get("resolution", sn.resolution)
    if scored_at != sn.resolution:
        raise RunError(f"trial {row['trial']} of {run.path} was scored at {scored_at} px, but "
                       f"its supernet {run.supernet_path()} gives {sn.resolution} px batches")
    bn_batches = row.get("bn_batches", run.config.recalibration_batches)
    if not isinstance(bn_batches, int) or isinstance(bn_batches, bool) or bn_batches < 0:
        raise RunError(f"trial {row['trial']} stores a bad bn_batches {bn_batches!r}")
    bn_batches = calibration_batches(calib, bn_batches)  # what recalibrate really uses
    model = recalibrate(sn.supernet, arch, calib, bn_batches)
    model = model.to(memory_format=torch.contiguous_format)
    example = next(iter(valid.epoch(0)))[0][:8].contiguous()
    channels, classes = sn.supernet.in_chans, sn.supernet.num_classes
    resolution = int(example.shape[-1])
    # The network written: the searched architecture with the data's stem and classifier,
    # at the size its weights were calibrated and scored at.
    produced = replace(arch, input=InputSpec(channels, resolution, classes))
    target = count_cost(arch)
    form = replace(form, num_classes=classes, in_chans=channels)
    note = (f"{ExportDir(out_dir).weights.name}: inherited from the supernet "
            f"(step {int(sn.step)}), BatchNorm "
            f"recalibrated on {bn_batches} batches; input {channels}x{resolution}x"
            f"{resolution} normalised with the mean and std in arch.json, {classes} classes.")
    extra = {
        "target": {"arch": str(arch), "id": arch.id, "flops": target.flops,
                   "params": target.params, "input": arch.to_dict()["input"]},
        **_search_extra(row),
        "weights": {"source": "supernet", "supernet_step": int(sn.step),
                    "bn_batches": bn_batches, "data": sn.config.data,
                    "classes": list(sn.dataset.classes), "in_chans": channels,
                    "num_classes": classes, "resolution": resolution,
                    "recipe": sn.recipe.describe(), "eval_transform": sn.recipe.eval_steps(),
                    "mean": [float(m) for m in sn.mean], "std": [float(s) for s in sn.std]},
    }
    # calibrated on the supernet's training images, its validation carve left out
    inputs = int8_inputs(calib_data or sn.config.data, resolution, channels,
                         sn.config.val_fraction, sn.config.split_seed) if int8 else None
    with all_or_nothing(ExportDir(out_dir).files(produced.id)):  # no half export on failure
        paths, deltas = export_network(model, produced, out_dir, example, form, force=force,
                                      weights_note=note, extra=extra, onnx=onnx, int8=inputs)
        more, converted = write_deploy(out_dir, produced, form, _batch_ones(example), deploy)
    if bn_batches == 0 and not form.backbone:  # --yolo makes a backbone too
        # The weights are the supernet's own, statistics included: the written network must
        # give the supernet's logits for this architecture.
        exported = load_exported(out_dir).build_model().eval()
        exported.load_state_dict(torch.load(ExportDir(out_dir).weights, weights_only=True))
        with torch.no_grad():
            deltas["supernet"] = (exported(example) - sn.supernet(
                example.contiguous(memory_format=sn.supernet.memory_format), arch)
            ).abs().max().item()
    return _result(paths + more, deltas, row, arch, produced, out_dir, converted, form, deploy)


def _result(paths, deltas, row, arch, produced, out_dir, converted, form: ExportForm,
            deploy: Deploy) -> TrialExport:
    deltas = dict(deltas)
    int8 = deltas.pop("int8", None)
    return TrialExport(paths, deltas, int8, row, arch, produced, Path(out_dir), converted,
                       form.backbone, deploy.yolo)


def _batch_ones(example: torch.Tensor) -> List[torch.Tensor]:
    """The first two images of ``example``, each a batch of one (what mobile runtimes take)."""
    return [x.unsqueeze(0) for x in example[:2]]


def target_inputs(arch: Architecture) -> List[torch.Tensor]:
    """Two seeded random images at ``arch``'s target input, each a batch of one."""
    inp = arch.input
    g = torch.Generator().manual_seed(0)
    return [torch.randn(1, inp.channels, inp.resolution, inp.resolution, generator=g)
            for _ in range(2)]


def _search_extra(row: Dict[str, Any]) -> Dict[str, Any]:
    return {"trial": int(row["trial"]),
            "search": {k: row.get(k) for k in ("accuracy", "estimator", "reward", "latency_ms",
                                                "flops", "params", "proxy_flops")}}


def _export_trained(run, row, arch: Architecture, trained, out_dir, form: ExportForm,
                    force: bool, onnx: bool, deploy: Deploy, int8: bool = False,
                    calib_data: Optional[str] = None) -> TrialExport:
    """Export with the weights of the re-ranking's first standalone training of ``row``."""
    from ..files import load_checkpoint, read_json
    from ..model import build_model
    from ..train.standalone import RETRAIN_CHECKPOINT_FORMAT

    metrics = read_json(trained.metrics, "metrics file")
    state = torch.load(trained.weights, map_location="cpu", weights_only=True)
    ckpt = load_checkpoint(trained.checkpoint, RETRAIN_CHECKPOINT_FORMAT)
    classes = int(state["classifier.weight"].shape[0])
    channels = int(state["stem.0.weight"].shape[1])
    model = build_model(arch, num_classes=classes, in_chans=channels)
    model.load_state_dict(state)
    resolution = int(run.config.resolution or 0) or None
    # the size it was trained at: the proxy resolution, else the data's own
    trained_at = metrics.get("input") if isinstance(metrics.get("input"), dict) else {}
    side = resolution or int(trained_at.get("resolution", 32))
    example = torch.randn(8, channels, side, side, generator=torch.Generator().manual_seed(0))
    form = replace(form, num_classes=classes, in_chans=channels)
    # the network written: the searched architecture with the data's stem and classifier
    produced = replace(arch, input=InputSpec(channels, side, classes))
    note = (f"{ExportDir(out_dir).weights.name}: trained standalone for "
            f"{int(metrics['steps'])} steps on {len(ckpt['mean'])}-channel images in the final "
            f"re-ranking (validation accuracy {100 * metrics['val_accuracy']:.2f} percent), "
            f"{classes} classes, normalised with the mean and std in arch.json.")
    extra = {**_search_extra(row),
             "weights": {"source": "rerank", "steps": int(metrics["steps"]),
                         "val_accuracy": float(metrics["val_accuracy"]),
                         "data": run.config.data, "in_chans": channels, "num_classes": classes,
                         "resolution": resolution,
                         # re-rankings before eval_transform was recorded: the recipe's words
                         "recipe": metrics.get("recipe", ""),
                         **({"eval_transform": metrics["eval_transform"]}
                            if isinstance(metrics.get("eval_transform"), dict) else {}),
                         "mean": [float(m) for m in ckpt["mean"]],
                         "std": [float(s) for s in ckpt["std"]]}}
    inputs = None
    if int8:  # the training's own data and validation carve
        trained_with = ckpt["config"]
        inputs = int8_inputs(calib_data or run.config.data, side, channels,
                             float(trained_with.get("val_fraction", 0.1)),
                             int(trained_with.get("split_seed", 0)))
    with all_or_nothing(ExportDir(out_dir).files(produced.id)):  # no half export on failure
        paths, deltas = export_network(model.eval(), produced, out_dir, example, form,
                                       force=force, weights_note=note, extra=extra, onnx=onnx,
                                       int8=inputs)
        more, converted = write_deploy(out_dir, produced, form, _batch_ones(example), deploy)
    return _result(paths + more, deltas, row, arch, produced, out_dir, converted, form, deploy)
