"""The directories nas writes, and every file name in them (the one place they are spelled).

* :class:`SearchDir` (``nas search -o RUN``): settings, the study, the trial table, the
  report, and the supernet the search trained (a :class:`SupernetDir`);
* :class:`SupernetDir` (``nas supernet train -o DIR``) and :class:`TrainDir` (``nas train
  -o DIR``): settings, checkpoint, log, and for a finished standalone run its metrics and
  weights;
* :class:`ExportDir` (``nas export -o DIR``): ``model.py`` and what goes with it;
* :class:`DiagnoseDir` and :class:`ReferenceDir`: rank-correlation studies;
  :class:`ReferenceCache`: the references ``nas search --estimator predictor`` trains, one
  per budget, shared by the runs beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

__all__ = ["SearchDir", "SupernetDir", "TrainDir", "ExportDir", "DiagnoseDir", "ReferenceDir",
           "ReferenceCache", "supernet_checkpoint"]

CONFIG = "config.json"


@dataclass(frozen=True)
class _Dir:
    path: Path

    def __init__(self, path):
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:  # usable wherever a path is
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


class TrainDir(_Dir):
    """A training run: settings, the latest checkpoint, the log, and (standalone) results."""

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def weights(self) -> Path:
        return self.path / "weights.pt"


class SupernetDir(TrainDir):
    """A supernet training run; its checkpoint is what ``--supernet`` names."""

    @property
    def checkpoint(self) -> Path:
        return self.path / "supernet.pt"


def supernet_checkpoint(path) -> Path:
    """The checkpoint file a ``--supernet`` value names: the file itself, its directory, or
    a search run whose own supernet it is (``RUN/supernet/``)."""
    path = Path(path)
    if not path.is_dir():
        return path
    own = SupernetDir(path).checkpoint
    searched = SearchDir(path).supernet.checkpoint
    return searched if not own.exists() and searched.exists() else own


class SearchDir(_Dir):
    """A search run (``nas search -o RUN``)."""

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def study_db(self) -> Path:
        return self.path / "study.db"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def pareto_png(self) -> Path:
        return self.path / "pareto.png"

    def trial_picture(self, trial: int, suffix: str) -> Path:
        """``nas report RUN --trial N``: the picture of trial N's architecture (svg or png)."""
        return self.path / f"trial-{int(trial)}.{suffix}"

    def trial_export(self, trial: int) -> Path:
        """The export directory the report suggests for trial N."""
        return self.path / f"export-{int(trial)}"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    @property
    def supernet(self) -> SupernetDir:
        """Where the search trains its supernet when none is given."""
        return SupernetDir(self.path / "supernet")

    @property
    def export(self) -> Path:
        """The export directory the search's closing lines suggest."""
        return self.path / "export"

    @property
    def diagnose(self) -> "DiagnoseDir":
        return DiagnoseDir(self.path / "diagnose")

    @property
    def rerank_csv(self) -> Path:
        """One row per (trial, seed) of the final re-ranking's standalone trainings."""
        return self.path / "rerank.csv"

    @property
    def rerank_json(self) -> Path:
        """The re-ranking's recipe, table and winner."""
        return self.path / "rerank.json"

    def rerank_run(self, trial: int, seed: int) -> TrainDir:
        return TrainDir(self.path / "rerank" / f"trial{trial}-s{seed}")

    @property
    def predictor(self) -> Path:
        """``--estimator predictor``: the predictor the run fitted (its fit stage is done
        once this exists)."""
        return self.path / "predictor.json"

    def reference_cache(self, key: str) -> "ReferenceCache":
        """``--estimator predictor``: the references of one space, data and recipe
        (``key``), beside the run directory so that the runs beside it share them."""
        return ReferenceCache(self.path.parent / "references" / key)


class ExportDir(_Dir):
    """An export (``nas export -o DIR``)."""

    @property
    def model_py(self) -> Path:
        return self.path / "model.py"

    @property
    def arch_json(self) -> Path:
        return self.path / "arch.json"

    @property
    def weights(self) -> Path:
        return self.path / "weights.pt"

    @property
    def torchscript(self) -> Path:
        return self.path / "model.ts"

    @property
    def onnx(self) -> Path:
        return self.path / "model.onnx"

    #: The YOLO plugin module's file name, by architecture id.
    PLUGIN = "nas_yolo_{}.py"
    #: Each mobile format's files (``nas export --format``; Core ML's is a folder).
    FORMAT_FILES = {"ncnn": ("model.ncnn.param", "model.ncnn.bin"), "mnn": ("model.mnn",),
                    "tflite": ("model.tflite",), "coreml": ("model.mlpackage",)}

    @property
    def onnx_int8(self) -> Path:
        """``--int8``: the network statically quantised to int8 (QDQ)."""
        return self.path / "model.int8.onnx"

    def format_files(self, name: str) -> Tuple[Path, ...]:
        """The files of the mobile format ``name``."""
        return tuple(self.path / f for f in self.FORMAT_FILES[name])

    def mobile(self) -> Tuple[Path, ...]:
        """Every mobile format's files."""
        return tuple(p for name in self.FORMAT_FILES for p in self.format_files(name))

    @property
    def yolo_yaml(self) -> Path:
        """The detection model over the backbone (``nas export --yolo``)."""
        return self.path / "yolo.yaml"

    def yolo_plugin(self, arch_id: str) -> Path:
        """The plugin module that registers the backbone of architecture ``arch_id`` into
        ultralytics (a name of its own, since checkpoints store it)."""
        return self.path / self.PLUGIN.format(arch_id)

    def files(self, arch_id: str = "") -> Tuple[Path, ...]:
        """Every file an export may write (an overwrite removes them all first): with
        ``arch_id``, the YOLO plugin of that architecture too, and any plugin already
        there."""
        plugins = set(self.path.glob(self.PLUGIN.format("*"))) if self.path.is_dir() else set()
        if arch_id:
            plugins.add(self.yolo_plugin(arch_id))
        return (self.model_py, self.arch_json, self.weights, self.torchscript, self.onnx,
                self.onnx_int8, *self.mobile(), self.yolo_yaml, *sorted(plugins))


class DiagnoseDir(_Dir):
    """A rank-correlation study of a search's supernet (``nas diagnose``)."""

    @property
    def settings(self) -> Path:
        return self.path / "diagnose.json"

    @property
    def rows(self) -> Path:
        return self.path / "diagnose.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def plot(self) -> Path:
        return self.path / "diagnose.png"

    def arch(self, arch_id: str) -> TrainDir:
        return TrainDir(self.path / "archs" / arch_id)


class ReferenceDir(_Dir):
    """A multi-seed standalone reference (``nas reference``)."""

    @property
    def settings(self) -> Path:
        return self.path / "reference.json"

    @property
    def archs(self) -> Path:
        return self.path / "archs.csv"

    @property
    def rows(self) -> Path:
        return self.path / "rows.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    def run(self, arch_id: str, seed: int) -> TrainDir:
        return TrainDir(self.path / "runs" / f"{arch_id}-s{seed}")


class ReferenceCache(_Dir):
    """The references ``nas search --estimator predictor`` trained for one space, data and
    recipe: one :class:`ReferenceDir` per FLOPs budget (its band), all pooled by the fit."""

    def band(self, budget: int) -> ReferenceDir:
        return ReferenceDir(self.path / f"budget-{int(budget)}")

    def bands(self) -> Tuple[ReferenceDir, ...]:
        """The references it holds (those with their settings written), by name."""
        if not self.path.is_dir():
            return ()
        return tuple(ReferenceDir(p) for p in sorted(self.path.glob("budget-*"))
                     if ReferenceDir(p).settings.exists())
