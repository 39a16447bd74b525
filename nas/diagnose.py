"""Does the supernet rank architectures like standalone training does? (``nas diagnose``)

Samples K architectures of the run's space whose FLOPs fall in one band, scores each with
the supernet exactly as the search does (BN recalibration, the same validation images),
trains each standalone with one short fixed recipe (:func:`nas.retrain.retrain`, validation
accuracy; the test split is not read), and reports Kendall's tau and Spearman's rho
between the two with bootstrap 95% confidence intervals, plus a scatter plot. Every
architecture's result is written to ``OUT/diagnose.csv`` as it finishes, so a killed run
continues where it stopped when rerun.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .config import Settings, setting
from .cost import count_cost
from .errors import RunError, UsageError
from .estimators.metrics import rank_correlation
from .files import append_each, atomic_write_bytes, read_json, write_json
from .runs import DiagnoseDir
from .search import open_run
from .space import sample_band

# rank_correlation: re-exported
__all__ = ["DiagnoseConfig", "Diagnosis", "diagnose", "rank_correlation"]


@dataclass
class DiagnoseConfig(Settings):
    """The study's settings (saved as ``OUT/diagnose.json``; a rerun must match them)."""

    archs: int = setting(30, at_least=3, help="architectures K (a rank correlation needs "
                                              "pairs)")
    band_low: float = setting(0.8, above=0, help="band start, fraction of the budget")
    band_high: float = setting(1.0, above=0, help="band end, fraction of the budget")
    steps: int = setting(300, at_least=1, help="standalone training steps per architecture")
    batch_size: int = setting(128, at_least=1, help="standalone batch size")
    train_subset: int = setting(0, at_least=0,
                                help="train on this many images (0: the whole training split)")
    lr: float = setting(2e-3, above=0, help="standalone learning rate")
    seed: int = setting(0, help="seed of the sample and the training")

    def check(self) -> None:
        if not self.band_low < self.band_high:
            raise UsageError("the FLOPs band must satisfy 0 < --band-low < --band-high")


@dataclass
class Diagnosis:
    """What a diagnosis found (``OUT/summary.json``): Kendall tau and Spearman rho of the
    supernet's against the standalone accuracies with bootstrap 95% CIs, over ``n``
    architectures of the FLOPs ``band``, and what the scores were measured with."""

    kendall: float
    spearman: float
    n: int
    kendall_ci: Tuple[float, float]
    spearman_ci: Tuple[float, float]
    band: Tuple[int, int]
    validation_images: int
    bn_batches: int
    resolution: int
    supernet_step: int
    recipe_steps: int

    def to_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """One line: the band, tau and rho with their CIs."""
        return (f"{self.n} architectures, FLOPs {self.band[0] / 1e6:.0f}M-"
                f"{self.band[1] / 1e6:.0f}M: Kendall tau {self.kendall:.3f} "
                f"[{self.kendall_ci[0]:.2f}, {self.kendall_ci[1]:.2f}], Spearman rho "
                f"{self.spearman:.3f} [{self.spearman_ci[0]:.2f}, {self.spearman_ci[1]:.2f}] "
                "(95% bootstrap CIs)")


def diagnose(run_dir, out_dir, config: DiagnoseConfig, progress: bool = True,
             log=print) -> Diagnosis:
    """Run (or continue) the rank-correlation study; returns the summary written."""
    import pandas as pd
    import torch

    from .evaluate import calibration_batches, evaluate
    from .train import RetrainConfig, data_settings, load_supernet, retrain

    config.validate()
    run = open_run(run_dir)
    out = DiagnoseDir(out_dir)
    # The supernet scores saved in OUT/diagnose.csv are only valid for the supernet that
    # made them: a rerun on another run's supernet must not mix its scores with them.
    digest = hashlib.sha256(run.supernet_path().read_bytes()).hexdigest()
    if out.settings.exists():
        before = read_json(out.settings, "diagnosis settings")
        if before.get("supernet_sha256", digest) != digest:
            raise RunError(f"{out} holds a diagnosis scored with another supernet than "
                           f"{run.supernet_path()}; use another -o (copying its archs/ "
                           "folder there reuses the standalone trainings)")
        before.pop("supernet_sha256", None)
        if before != config.to_dict():
            raise RunError(f"{out} holds a diagnosis with other settings; use another -o")
    write_json(out.settings, {**config.to_dict(), "supernet_sha256": digest})

    sn = load_supernet(run.supernet_path(), device="cpu")
    budget = run.config.budget
    archs = sample_band(sn.supernet.space, config.archs, int(config.band_low * budget),
                        int(config.band_high * budget), config.seed)
    calib, valid = sn.loaders(device=torch.device("cpu"))
    valid_n = min(run.config.val_images, len(valid.data))
    # One size for both scores: the one the supernet was trained and the search scored at.
    scored = valid.derive(data=valid.data.subset(torch.arange(valid_n)))
    bn_batches = calibration_batches(calib, run.config.recalibration_batches)
    csv = out.rows
    rows: List[Dict[str, Any]] = (pd.read_csv(csv, dtype={"id": str}).to_dict("records")
                                  if csv.exists() else [])

    def train(item) -> Dict[str, Any]:
        i, arch = item
        supernet_acc = evaluate(sn.supernet, arch, scored, calib, bn_batches)
        recipe = RetrainConfig(arch=str(arch), steps=config.steps,
                               batch_size=config.batch_size, train_subset=config.train_subset,
                               lr=config.lr, seed=sn.config.seed,
                               checkpoint_every=max(50, config.steps // 4),
                               # the supernet's data, recipe and split: standalone nets never
                               # train on the validation images both are scored on
                               **data_settings(sn.config, resolution=sn.resolution))
        arch_dir = out.arch(arch.id)
        if arch_dir.metrics.exists():  # trained before the kill: reuse
            metrics = read_json(arch_dir.metrics, "metrics file")
        else:
            resume = arch_dir.checkpoint.exists()
            metrics = retrain(None if resume else recipe, arch_dir.path, resume=resume,
                              progress=False, test=False)
        cost = count_cost(arch)
        log(f"arch {i + 1}/{len(archs)}: {cost.flops / 1e6:.1f}M FLOPs, supernet "
            f"{supernet_acc:.2%}, standalone {metrics['val_accuracy']:.2%}")
        return {"id": arch.id, "flops": cost.flops, "params": cost.params,
                "supernet_acc": supernet_acc, "standalone_acc": metrics["val_accuracy"],
                "arch": str(arch)}

    append_each(csv, list(enumerate(archs)), lambda item: item[1].id, train, rows,
                lambda r: r["id"])
    frame = pd.DataFrame(rows)
    correlation = rank_correlation(frame.supernet_acc, frame.standalone_acc, seed=config.seed)
    summary = Diagnosis(
        kendall=correlation["kendall"], spearman=correlation["spearman"], n=correlation["n"],
        kendall_ci=tuple(correlation["kendall_ci"]),
        spearman_ci=tuple(correlation["spearman_ci"]),
        band=(int(config.band_low * budget), int(config.band_high * budget)),
        validation_images=valid_n, bn_batches=bn_batches, resolution=sn.resolution,
        supernet_step=int(sn.step), recipe_steps=config.steps)
    write_json(out.summary, summary.to_dict())
    _scatter(frame, summary, out.plot)
    return summary


def _scatter(frame, summary: Diagnosis, path: Path) -> Optional[Path]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    import io

    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(100 * frame.supernet_acc, 100 * frame.standalone_acc, s=24)
    ax.set_xlabel("supernet validation accuracy (%)")
    ax.set_ylabel("standalone validation accuracy (%)")
    ax.set_title(f"n={summary.n}  Kendall tau {summary.kendall:.2f}  "
                 f"Spearman rho {summary.spearman:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path
