"""A de-noised ranking reference: architectures of one FLOPs band, each trained standalone
with several seeds (``nas reference``).

Samples ``archs`` architectures of a space with FLOPs in a band of a budget (one fixed
sampling seed: the list is written once to ``OUT/archs.csv`` and reused), trains each
with :func:`nas.train.retrain` for a short fixed recipe once per training seed, always
on the same validation carve (``split_seed``), and records the validation accuracy of
every (architecture, seed) in ``OUT/rows.csv`` as it finishes. The reference accuracy of
an architecture is its seed mean. Rerunning continues: finished rows are kept, a killed
training resumes from its checkpoint. Seeds run outermost, so after the first pass every
architecture has one label and after the second the reference's reliability is known.

Several processes may run the same reference at once, with different ``--seeds`` or
different ``--shard I/N`` (process ``I`` of ``N``, counting from 0, takes the architectures
whose index is ``I`` modulo ``N``, for every seed; all processes use the same ``N`` and each
``I`` once): each appends its rows under a file lock. The shard is how a process divides the
work, not part of the reference: it is not saved in ``reference.json``.

Its reliability is measured, not assumed (:func:`reliability`): the mean Kendall tau
between two single-seed rankings, converted to a correlation (r = sin(pi tau / 2)) and
stepped up to the seed mean with the Spearman-Brown formula; the attenuation ceiling of any
ranker against the seed mean is then sqrt(reliability).
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import dataclass
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .arch import Architecture
from .config import Settings, setting
from .cost import count_cost
from .data import DATA_MODES, data_location
from .errors import RunError, UsageError
from .files import append_each, atomic_write_bytes, read_json, shell_path, write_json
from .runs import ReferenceDir
from .space import space_location
from .units import parse_flops

__all__ = ["ReferenceConfig", "ReferenceSummary", "Ranking", "run_reference", "shard_indices",
           "reliability", "load_reference", "summarize", "estimator_context", "rank_estimator",
           "reference_config", "fit_predictor", "FittedPredictor", "POOLED_RECIPE"]


@dataclass
class ReferenceConfig(Settings):
    """The reference's settings (saved as ``OUT/reference.json``; a rerun must match)."""

    space: str = setting("mixnet_300m", help="search space (name or .yaml)",
                         path=space_location)
    data: str = setting("fashion-mnist", path=data_location,
                        help="fashion-mnist, an ImageFolder dir or a .tar.gz of one")
    budget: int = setting(300_000_000, at_least=1, parse=parse_flops,
                          help="FLOPs budget the band is relative to, e.g. 300M")
    band_low: float = setting(0.8, above=0, help="band start, fraction of the budget")
    band_high: float = setting(1.0, above=0, help="band end, fraction of the budget")
    archs: int = setting(50, at_least=3, rerun=True,
                         help="architectures (asking for more later appends to the list)")
    seeds: List[int] = setting([0, 1, 2], rerun=True, help="training seeds per architecture")
    sample_seed: int = setting(0, help="seed of the architecture sample")
    epochs: float = setting(1.0, above=0, help="epochs of standalone training")
    batch_size: int = setting(128, at_least=1, help="standalone batch size")
    lr: float = setting(2e-3, above=0, help="standalone peak learning rate")
    resolution: int = setting(0, at_least=0, help="proxy resolution (0: the data's own)")
    split_seed: int = setting(0, help="seed of the validation carve (the same for every run)")
    shard: str = setting("0/1", rerun=True, parse=lambda text: _parse_shard(text),
                         metavar="I/N",
                         help="train only the architectures whose index is I modulo N, I from "
                              "0 (N processes share one reference, each I once; not saved)")
    val_fraction: float = setting(0.1, above=0, below=1,
                                  help="share of the training data held out for validation")
    data_mode: str = setting("auto", choices=DATA_MODES, rerun=True,
                             help="auto, memory or stream (where the images live; results "
                                  "do not depend on it beyond rounding)")
    loader_workers: int = setting(-1, at_least=-1, rerun=True,
                                  help="DataLoader workers for streamed images (-1: one per "
                                       "core)")
    # Resolved from the data when the reference is first run; "" in references from before
    # recipes were recorded (all of them the small-image recipe).
    recipe: str = setting("", cli=False, help="the data recipe the architectures trained with")

    def data_settings(self) -> Dict[str, Any]:
        """The settings of a :class:`nas.train.LoopConfig` that sees this reference's data."""
        return {"data": self.data, "data_mode": self.data_mode,
                "loader_workers": self.loader_workers, "resolution": self.resolution,
                "split_seed": self.split_seed, "val_fraction": self.val_fraction}

    def check(self) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise UsageError("--seeds must be distinct")
        if not self.band_low < self.band_high:
            raise UsageError("the FLOPs band must satisfy 0 < --band-low < --band-high")
        _parse_shard(self.shard)


def _parse_shard(text: str) -> str:
    """``"I/N"`` with ``0 <= I < N``, checked; returned unchanged."""
    match = re.fullmatch(r"(\d+)/(\d+)", str(text), re.ASCII)
    if not (match and int(match[1]) < int(match[2])):
        raise UsageError(f"--shard: expected I/N with 0 <= I < N, got {text!r}")
    return str(text)


def shard_indices(shard: str, archs: int) -> List[int]:
    """The architecture indices process ``I`` of ``N`` trains (``shard = "I/N"``)."""
    part, count = (int(x) for x in _parse_shard(shard).split("/"))
    return [i for i in range(archs) if i % count == part]


def _sample(config: ReferenceConfig) -> List[Architecture]:
    from .space import load_space, sample_band

    space = load_space(config.space)
    return sample_band(space, config.archs, int(config.band_low * config.budget),
                       int(config.band_high * config.budget), config.sample_seed)


def _write_csv(path, rows: List[Dict[str, Any]]) -> None:
    import pandas as pd

    atomic_write_bytes(path, pd.DataFrame(rows).to_csv(index=False).encode())


def _read_csv(path) -> List[Dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        return []
    return pd.read_csv(path, dtype={"id": str}).to_dict("records")


def reference_config(out_dir) -> ReferenceConfig:
    """The recipe saved in a reference directory (its files absolute again)."""
    out = ReferenceDir(out_dir)
    return ReferenceConfig.from_dict(read_json(out.settings, "reference settings"),
                                     str(out.settings), base=out.path)


def data_recipe(config: ReferenceConfig) -> str:
    """The recipe (:meth:`nas.data.Recipe.describe`) the reference's data gives."""
    from .train import LoopConfig, load_data, recipe_of

    loop = LoopConfig(**config.data_settings())
    return recipe_of(load_data(loop), loop).describe()


def run_reference(config: ReferenceConfig, out_dir, log=print,
                  skip: Collection[str] = ()) -> Optional["ReferenceSummary"]:
    """Train (or continue training) every (architecture, seed) of the reference, but for
    the architectures whose ids are in ``skip`` (another reference of the same recipe has
    them: ``nas search --estimator predictor`` pools its bands, which overlap).

    Returns the reference's summary, or None while it has no row at all (this process's
    share was empty, and no other process has written one yet).
    """
    from dataclasses import replace

    from .data.recipe import same_recipe
    from .train import RetrainConfig, retrain

    config = config.validate().resolved()
    out = ReferenceDir(out_dir)
    recipe = data_recipe(config)
    if out.settings.exists():
        old = reference_config(out.path)
        if not same_recipe(old.recipe, recipe):
            raise RunError(f"{out} holds a reference trained with the data recipe "
                           f"'{old.recipe}', but {config.data} now gives '{recipe}'; use "
                           "another -o")
        recipe = old.recipe  # a legacy "" stays as it was
    config = replace(config, recipe=recipe)
    if out.settings.exists():
        old = reference_config(out.path)
        if config.differences(old):
            raise RunError(f"{out} holds a reference with another recipe ("
                           + ", ".join(f"{k}={v!r}" for k, v in config.differences(old).items())
                           + "); use another -o")
    saved = config.to_dict(out.path)
    del saved["shard"]  # how this process divides the work, not the reference's recipe
    write_json(out.settings, saved)

    archs = _sample(config)
    arch_rows = [{"index": i, "id": a.id, "flops": count_cost(a).flops,
                  "params": count_cost(a).params, "arch": str(a)} for i, a in enumerate(archs)]
    old_archs = _read_csv(out.archs)
    # The sample is a prefix-stable stream: asking for more archs appends to the list.
    for old, new in zip(old_archs, arch_rows):
        if old["id"] != new["id"]:
            raise RunError(f"{out.archs} lists other architectures than this sample")
    if len(arch_rows) >= len(old_archs):
        _write_csv(out.archs, arch_rows)
    rows = _read_csv(out.rows)
    done = {(r["id"], int(r["seed"])) for r in rows}
    mine = [i for i in shard_indices(config.shard, len(archs)) if archs[i].id not in skip]
    total = len(mine) * len(config.seeds)  # this process's share
    finished = [sum((archs[i].id, seed) in done for seed in config.seeds for i in mine)]

    def train(item) -> Dict[str, Any]:
        seed, i = item
        arch = archs[i]
        run_dir = out.run(arch.id, seed)
        training = RetrainConfig(
            arch=str(arch), epochs=config.epochs, batch_size=config.batch_size,
            lr=config.lr, seed=seed, checkpoint_every=100, **config.data_settings())
        resume = run_dir.checkpoint.exists()
        started = time.perf_counter()
        metrics = retrain(None if resume else training, run_dir.path, resume=resume,
                          progress=False, test=False)
        finished[0] += 1
        log(f"[{finished[0]}/{total}] seed {seed} arch {i + 1}/{len(archs)} "
            f"{arch_rows[i]['flops'] / 1e6:.1f}M FLOPs: val {metrics['val_accuracy']:.2%}")
        return {"id": arch.id, "seed": seed, "val_accuracy": metrics["val_accuracy"],
                "steps": metrics["steps"], "train_images": metrics["train_images"],
                "wall_s": round(time.perf_counter() - started, 1)}

    append_each(out.rows, [(seed, i) for seed in config.seeds for i in mine],
                lambda item: (archs[item[1]].id, item[0]), train, rows,
                lambda r: (r["id"], int(r["seed"])),
                # the row is what the reference keeps
                then=lambda item: shutil.rmtree(out.run(archs[item[1]].id, item[0]).path,
                                                ignore_errors=True))
    return summarize(out) if out.rows.exists() else None


def load_reference(out_dir):
    """``(archs frame, per-arch seed-mean frame, rows frame)`` of a reference directory."""
    import pandas as pd

    out = ReferenceDir(out_dir)
    archs = pd.read_csv(out.archs, dtype={"id": str})
    rows = pd.read_csv(out.rows, dtype={"id": str}).drop_duplicates(["id", "seed"])
    mean = rows.groupby("id").val_accuracy.agg(["mean", "std", "count"]).reset_index()
    return archs, archs.merge(mean, on="id"), rows


def _tau_to_r(tau: float) -> float:
    return math.sin(math.pi * tau / 2)


def _r_to_tau(r: float) -> float:
    return 2 / math.pi * math.asin(max(-1.0, min(1.0, r)))


def reliability(rows, seeds: List[int]) -> Dict[str, Any]:
    """How far the seed mean can be trusted as a ranking.

    ``pairwise_tau``: mean Kendall tau between two single-seed rankings. Converted to a
    correlation (r = sin(pi tau / 2)) it is the reliability of one seed; the Spearman-Brown
    formula steps it up to the mean of ``k`` seeds, and a perfect ranker can correlate with
    that mean at most sqrt(reliability) (the attenuation ceiling, also given as a tau).
    ``split_half_tau``: tau between the first seed and the mean of the others, measured.
    """
    import itertools

    from scipy import stats

    table = rows.pivot_table(index="id", columns="seed", values="val_accuracy")
    table = table[[s for s in seeds if s in table.columns]].dropna()
    k = table.shape[1]
    if k < 2 or len(table) < 3:
        return {"archs": int(len(table)), "seeds": k}
    pairs = [stats.kendalltau(table[a], table[b]).statistic
             for a, b in itertools.combinations(table.columns, 2)]
    tau1 = float(np.mean(pairs))
    r1 = _tau_to_r(tau1)
    r_k = k * r1 / (1 + (k - 1) * r1) if r1 > 0 else r1
    ceiling_r = math.sqrt(max(0.0, r_k))
    first, rest = table.columns[0], list(table.columns[1:])
    split = float(stats.kendalltau(table[first], table[rest].mean(axis=1)).statistic)
    return {"archs": int(len(table)), "seeds": k, "pairwise_tau": tau1,
            "split_half_tau": split, "reliability_r": r_k, "ceiling_r": ceiling_r,
            "ceiling_tau": _r_to_tau(ceiling_r)}


@dataclass
class ReferenceSummary:
    """A reference's state (``OUT/summary.json``): its rows, the architectures and seeds
    complete so far, its reliability (:func:`reliability`; None until two seeds cover three
    architectures), the range of seed-mean accuracies and the mean std over seeds (None
    with one seed)."""

    rows: int
    archs: int
    seeds: int
    accuracy_range: Tuple[float, float]
    mean_seed_std: Optional[float]
    pairwise_tau: Optional[float] = None
    split_half_tau: Optional[float] = None
    reliability_r: Optional[float] = None
    ceiling_r: Optional[float] = None
    ceiling_tau: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        measured = ("pairwise_tau", "split_half_tau", "reliability_r", "ceiling_r",
                    "ceiling_tau")
        return {"rows": self.rows, "archs": self.archs, "seeds": self.seeds,
                **{k: getattr(self, k) for k in measured if getattr(self, k) is not None},
                "accuracy_range": list(self.accuracy_range), "mean_seed_std": self.mean_seed_std}

    def describe(self) -> str:
        """One line: the trainings, and how far one seed ranks like another."""
        return (f"{self.rows} trainings of {self.archs} architectures x {self.seeds} seeds"
                + (f": one seed ranks like another at Kendall tau {self.pairwise_tau:.2f}; "
                   f"the {self.seeds}-seed mean caps any ranker at tau {self.ceiling_tau:.2f}"
                   if self.pairwise_tau is not None else ""))


def summarize(out_dir) -> ReferenceSummary:
    out = ReferenceDir(out_dir)
    archs, per_arch, rows = load_reference(out.path)
    # The seeds trained on every architecture so far (all seeds trained, while fewer than
    # two are complete), not the saved --seeds: processes running other seeds each saved
    # their own list, and a seed still in progress would shrink the table to a few rows.
    seeds = sorted(int(s) for s in rows["seed"].unique())
    spread = per_arch["std"].mean() if len(per_arch) else float("nan")  # NaN with one seed
    complete = [s for s in seeds if set(archs["id"]) <= set(rows.loc[rows["seed"] == s, "id"])]
    summary = ReferenceSummary(
        rows=int(len(rows)), **reliability(rows, complete if len(complete) >= 2 else seeds),
        accuracy_range=(float(per_arch["mean"].min()), float(per_arch["mean"].max())),
        mean_seed_std=None if math.isnan(spread) else float(spread))  # strict JSON
    write_json(out.summary, summary.to_dict())
    return summary


def estimator_context(out_dir, supernets=(), calib_images: int = 2048,
                      val_images: int = 0, seed: int = 0):
    """What an estimator scores the reference's architectures with: its data, at its
    resolution, on its validation carve (``val_images`` 0: all of it), the supernets given."""
    from .data import image_stats, sample_batch
    from .estimators import EstimatorContext
    from .train import LoopConfig, data_splits, load_data, load_supernet, recipe_of

    config = reference_config(out_dir)
    loop = LoopConfig(**config.data_settings())
    dataset = load_data(loop)
    train, val = data_splits(dataset, loop)
    mean, std = image_stats(train)
    recipe = recipe_of(dataset, loop)
    resolution = config.resolution or None
    runs = [load_supernet(path, device="cpu") for path in supernets]
    for path, run in zip(supernets, runs):
        if (run.config.split_seed, run.config.val_fraction) != (config.split_seed,
                                                                config.val_fraction):
            raise RunError(f"{path} carved another validation split than the reference: its "
                           "scores would be measured on images it trained on")

    def images(n: int):
        return sample_batch(train, n, mean, std, recipe, seed)

    return EstimatorContext(num_classes=len(dataset.classes), images=images,
                            supernets=(lambda: runs) if runs else None,
                            calib_images=calib_images, val_images=val_images or len(val),
                            resolution=resolution, seed=seed)


@dataclass
class Ranking:
    """How an estimator ranks a reference's architectures (:func:`rank_estimator`)."""

    estimator: str  # its describe()
    n: int
    kendall: float
    kendall_ci: Tuple[float, float]
    spearman: float
    spearman_ci: Tuple[float, float]
    k: int
    top_precision: float  # of the k best
    top_regret: float  # accuracy lost by the first pick
    seconds_per_arch: float
    frame: Any = None  # pandas frame of the per-architecture scores (column score)

    def describe(self) -> str:
        """One line: tau, rho with CIs, top-k precision and regret, cost."""
        return (f"{self.n} architectures: Kendall tau {self.kendall:.3f} "
                f"[{self.kendall_ci[0]:.2f}, {self.kendall_ci[1]:.2f}], Spearman rho "
                f"{self.spearman:.3f} [{self.spearman_ci[0]:.2f}, {self.spearman_ci[1]:.2f}] "
                f"(95% bootstrap CIs); top-{self.k} precision {self.top_precision:.2f}, regret "
                f"{100 * self.top_regret:.2f} points; {self.seconds_per_arch:.2f} s per "
                "architecture")

    def write_scores(self, path) -> None:
        """The per-architecture scores as a CSV file (``nas rank -o``), atomically."""
        atomic_write_bytes(path, self.frame.to_csv(index=False).encode())


def rank_estimator(out_dir, estimator, min_seeds: int = 2, k: int = 5) -> Ranking:
    """Score the reference's architectures (those with ``min_seeds`` seeds) with
    ``estimator`` and compare with their seed means: Kendall tau and Spearman rho with
    bootstrap CIs, top-``k`` precision and regret, seconds per architecture, and the frame
    of per-architecture scores."""
    from .estimators import rank_metrics

    _, per_arch, _ = load_reference(out_dir)
    per_arch = per_arch[per_arch["count"] >= min_seeds].reset_index(drop=True)
    if len(per_arch) < 3:
        raise RunError(f"{out_dir}: fewer than 3 architectures with {min_seeds} seeds yet")
    archs = [Architecture.parse(a) for a in per_arch.arch]
    started = time.perf_counter()
    scores = estimator.score(archs)
    seconds = (time.perf_counter() - started) / len(archs)
    per_arch = per_arch.assign(score=scores)
    m = rank_metrics(per_arch.score, per_arch["mean"], k=k)
    return Ranking(estimator.describe(), m["n"], m["kendall"], tuple(m["kendall_ci"]),
                   m["spearman"], tuple(m["spearman_ci"]), k, m[f"top{k}_precision"],
                   m[f"top{k}_regret"], seconds, per_arch)


#: The reference settings that must agree for accuracies to be pooled in one predictor
#: (and the data recipe, compared with :func:`nas.data.recipe.same_recipe`).
POOLED_RECIPE = ("space", "data", "resolution", "epochs", "batch_size", "lr", "split_seed",
                 "val_fraction")


@dataclass
class FittedPredictor:
    """What :func:`fit_predictor` wrote: the file, its architectures, the recipe."""

    path: str
    archs: int
    naswot: bool
    config: ReferenceConfig  # the first reference's (all share the pooled recipe)
    references: Tuple[str, ...]
    model: str  # the model on its encoding, e.g. "ridge on summary"

    def lines(self) -> List[str]:
        """What ``nas predictor fit`` prints: what was fitted on what, and how to use it."""
        return [f"{self.model}{' + naswot' if self.naswot else ''}, fitted on {self.archs} "
                f"architectures of {' + '.join(map(str, self.references))}: {self.path}",
                f"use it: nas search --budget 300M --data {shell_path(self.config.data)} "
                f"--estimator predictor:{shell_path(self.path)}"]


def fit_predictor(references: Sequence, output, fit) -> FittedPredictor:
    """Fit a predictor file on references of one recipe (``nas predictor fit``; the
    ``--estimator predictor`` search's fit stage).

    An architecture in several references counts once, with the row that has the most
    seeds; only architectures with ``fit.min_seeds`` seeds or more are used.

    Args:
        references: reference directories (``nas reference``) of one space, data and
            recipe (:data:`POOLED_RECIPE`).
        output: the predictor file to write.
        fit: a :class:`nas.estimators.PredictorConfig`.

    Raises:
        UsageError: the references' recipes differ.
        RunError: fewer than 5 architectures have enough seeds.
    """
    import pandas as pd

    from .data.recipe import same_recipe
    from .estimators import NaswotEstimator, save_predictor

    references = [str(r) for r in references]
    configs, tables = [], []
    for path in references:
        config = reference_config(path)
        differ = [k for k in POOLED_RECIPE
                  if configs and getattr(config, k) != getattr(configs[0], k)]
        if configs and not same_recipe(config.recipe, configs[0].recipe):
            differ.append("data recipe")
        if differ:
            raise UsageError(f"{path}: its {', '.join(differ)} differ from those of "
                             f"{references[0]}; pool only references of one recipe")
        configs.append(config)
        tables.append(load_reference(path)[1])
    config = configs[0]
    # an architecture in two references: the row with the most seeds
    per_arch = (pd.concat(tables, ignore_index=True).sort_values("count", ascending=False,
                                                               kind="stable")
                .drop_duplicates("id"))
    per_arch = per_arch[per_arch["count"] >= fit.min_seeds]
    if len(per_arch) < 5:
        raise RunError(f"{' + '.join(references)}: {len(per_arch)} architectures have "
                       f"{fit.min_seeds} seeds or more; a predictor needs at least 5")
    archs = [Architecture.parse(a) for a in per_arch.arch]
    extra, settings = {}, {"reference": references, "data": config.data,
                           "recipe": next((c.recipe for c in configs if c.recipe), "")}
    if fit.naswot:
        context = estimator_context(references[0])
        extra["naswot"] = NaswotEstimator(context.images(128), context.num_classes).score(archs)
        settings.update(naswot_images=128, naswot_seed=0)
    space = None
    if fit.encoding == "onehot":
        from .space import load_space

        space = load_space(config.space)
    save_predictor(output, archs, list(per_arch["mean"]), fit.model, fit.encoding,
                   config.resolution or None, extra, space, settings)
    return FittedPredictor(str(output), len(archs), bool(extra), config,
                           tuple(map(str, references)), f"{fit.model} on {fit.encoding}")
