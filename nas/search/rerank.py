"""The final re-ranking: the best few architectures of a search, trained standalone.

What a careful engineer does by hand: the estimate that drove the search ranks
architectures only roughly, so the ``K`` best feasible architectures (the Pareto front first,
by reward, then the other feasible trials by reward) are each trained standalone with one
short fixed recipe and several seeds, and the winner is the one with the best reward when
its mean standalone validation accuracy replaces the estimate. ``nas export RUN --best`` then
exports the winner, with the weights of its first seed's training. The test split is not
read. Every training resumes, and every finished (trial, seed) row is kept in
``RUN/rerank.csv``, so a killed re-ranking continues where it stopped.

Each trained network is also quantised to int8 as ``nas export --int8`` would write it
(:func:`nas.latency.quantize_module`: BatchNorm folded, static QDQ, per-channel weights,
calibrated on 16 training images drawn with seed 0) and scored in ONNX Runtime on the same
validation images: post-training quantisation costs architectures different amounts, so
the table shows both (``int8_val_accuracy``; left empty without onnxruntime). A row
finished before this existed gets its int8 accuracy when the re-ranking is run again.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional

import optuna

from ..errors import RunError
from ..files import read_json, write_json
from ..runs import SearchDir
from .config import RerankConfig, SearchConfig
from .objective import reward
from .results import Reranking, open_run, pareto_front, trial_rows

__all__ = ["rerank", "rerank_run", "rerank_candidates"]

BATCH = 128
#: The columns of ``RUN/rerank.csv``: one row per (trial, seed) trained.
COLUMNS = ("trial", "seed", "val_accuracy", "int8_val_accuracy", "steps", "estimate", "flops",
           "latency_ms", "arch")


def rerank_candidates(rows: List[Dict[str, Any]], k: int) -> List[Dict[str, Any]]:
    """The ``k`` trials to retrain: the front by reward, then other feasible ones by reward."""
    feasible = [r for r in rows if r.get("feasible")]
    front = sorted(pareto_front(feasible), key=lambda r: -r["reward"])
    ids = {r["trial"] for r in front}
    rest = sorted((r for r in feasible if r["trial"] not in ids), key=lambda r: -r["reward"])
    return (front + rest)[:k]


def _recipe(config: SearchConfig) -> Dict[str, Any]:
    return {"steps": config.rerank_steps, "seeds": config.rerank_seeds, "batch_size": BATCH,
            "data": config.data, "resolution": config.resolution}


def _int8_accuracy(trained, data: str, resolution: Optional[int]) -> float:
    """Validation accuracy of the network trained in ``trained`` (a re-ranking's
    :class:`~nas.runs.TrainDir`) quantised to int8, in ONNX Runtime: the images and carve
    its float ``val_accuracy`` was measured on."""
    import torch

    from ..arch import Architecture
    from ..latency import OnnxModel, quantize_module
    from ..latency.quantize import CALIBRATION_INPUTS
    from ..model import build_model
    from ..train import calibration_inputs, heldout_batches

    settings = read_json(trained.config, "training configuration")
    carve = dict(val_fraction=float(settings.get("val_fraction", 0.1)),
                 split_seed=int(settings.get("split_seed", 0)),
                 crop_pct=float(settings.get("crop_pct", 0.875)),
                 data_mode=str(settings.get("data_mode", "auto")))
    state = torch.load(trained.weights, map_location="cpu", weights_only=True)
    model = build_model(Architecture.parse(settings["arch"]),
                        num_classes=int(state["classifier.weight"].shape[0]),
                        in_chans=int(state["stem.0.weight"].shape[1]))
    model.load_state_dict(state)
    calibration = calibration_inputs(data, CALIBRATION_INPUTS, resolution, seed=0, **carve)
    _, int8 = quantize_module(model.eval(), calibration)
    session = OnnxModel(int8)
    right = total = 0
    for x, y in heldout_batches(data, resolution, **carve):
        right += int((session(x).argmax(1) == y).sum())
        total += len(y)
    return right / total


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def rerank(config: SearchConfig, run: SearchDir, study: optuna.Study, log=print,
           progress: bool = True) -> Reranking:
    """Train the ``config.rerank_top`` best feasible trials; returns (and writes) the
    result."""
    import pandas as pd

    from ..files import append_each, atomic_write_bytes
    from ..train import RetrainConfig, retrain

    rows = trial_rows(study)
    chosen = rerank_candidates(rows, config.rerank_top)
    if not chosen:
        raise RunError(f"{run}: no feasible trial to re-rank")
    recipe = _recipe(config)
    done: List[Dict[str, Any]] = []
    if run.rerank_csv.exists():
        done = pd.read_csv(run.rerank_csv).to_dict("records")
        done = [d for d in done if all(d.get(k) == v for k, v in
                                       (("steps", recipe["steps"]),))]
    total = len(chosen) * config.rerank_seeds
    log(f"re-ranking the {len(chosen)} best feasible trials: {config.rerank_steps} steps of "
        f"standalone training, {config.rerank_seeds} seed(s) each")
    from ..errors import UsageError
    from ..latency.quantize import require_onnxruntime

    try:
        require_onnxruntime("the re-ranking's int8 accuracy")
        quantise = True
    except UsageError as e:
        log(f"note: {e}; int8 accuracies left empty")
        quantise = False
    resolution = config.resolution or None

    def int8_of(trial: int, seed: int) -> Optional[float]:
        return (_int8_accuracy(run.rerank_run(trial, seed), config.data, resolution)
                if quantise else None)

    def rewrite() -> None:  # this recipe's rows only, in today's columns
        atomic_write_bytes(run.rerank_csv, pd.DataFrame(done, columns=list(COLUMNS)).to_csv(
            index=False).encode())

    for d in done:  # rows of a re-ranking from before int8 accuracies
        if quantise and _missing(d.get("int8_val_accuracy")) and \
                run.rerank_run(int(d["trial"]), int(d["seed"])).weights.exists():
            d["int8_val_accuracy"] = int8_of(int(d["trial"]), int(d["seed"]))
            rewrite()
    if run.rerank_csv.exists():
        rewrite()

    def train(item) -> Dict[str, Any]:
        seed, row = item
        out = run.rerank_run(row["trial"], seed)
        resume = out.checkpoint.exists()
        m = retrain(None if resume else RetrainConfig(
            arch=row["arch"], data=config.data, steps=config.rerank_steps,
            batch_size=BATCH, seed=seed, resolution=config.resolution,
            checkpoint_every=max(50, config.rerank_steps // 4)),
            out.path, resume=resume, progress=progress, test=False)
        int8 = int8_of(row["trial"], seed)
        log(f"re-rank trial {row['trial']} seed {seed} ({len(done) + 1}/{total} done): "
            f"validation {m['val_accuracy']:.2%}"
            + (f", int8 {int8:.2%}" if int8 is not None else "")
            + f" (estimate {row['accuracy']:.4g})")
        return dict(zip(COLUMNS, (row["trial"], seed, m["val_accuracy"], int8, m["steps"],
                                  row["accuracy"], row["flops"], row["latency_ms"],
                                  row["arch"])))

    append_each(run.rerank_csv, [(seed, row) for seed in range(config.rerank_seeds)
                                 for row in chosen],
                lambda item: (item[1]["trial"], item[0]), train, done,
                lambda d: (int(d["trial"]), int(d["seed"])))
    table = []
    for row in chosen:
        accs = [d["val_accuracy"] for d in done if d["trial"] == row["trial"]]
        acc = statistics.mean(accs)
        int8s = [d.get("int8_val_accuracy") for d in done if d["trial"] == row["trial"]]
        int8s = [a for a in int8s if not _missing(a)]
        table.append({"trial": row["trial"], "val_accuracy": acc,
                      "val_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                      # over the same seeds as the float accuracy, or None
                      "int8_val_accuracy": (statistics.mean(int8s) if len(int8s) == len(accs)
                                            else None),
                      "reward": reward(acc, row["flops"], row["latency_ms"], config.beta,
                                       config.gamma),
                      "estimate": row["accuracy"], "flops": row["flops"],
                      "latency_ms": row["latency_ms"], "arch": row["arch"]})
    table.sort(key=lambda r: -r["reward"])
    result = Reranking(recipe, table[0]["trial"], table)
    write_json(run.rerank_json, result.to_dict())
    for r in table:
        int8 = r["int8_val_accuracy"]
        log(f"  trial {r['trial']}: validation {r['val_accuracy']:.2%} float"
            + (f", {int8:.2%} int8 ({100 * (int8 - r['val_accuracy']):+.2f} points)"
               if int8 is not None else "") + f", {r['flops'] / 1e6:.1f}M FLOPs")
    w = table[0]
    log(f"re-ranking winner: trial {w['trial']} ({w['val_accuracy']:.2%} standalone, "
        f"{w['flops'] / 1e6:.1f}M FLOPs); nas export --best now means it")
    return result


def rerank_run(run_dir, recipe: RerankConfig, log=print) -> Reranking:
    """``nas rerank RUN``: the re-ranking of an existing search run with ``recipe``'s
    top, steps and seeds, on the study the run was read from."""
    from dataclasses import replace

    run = open_run(run_dir)
    config = replace(run.config, rerank=recipe.top, rerank_steps=recipe.steps,
                     rerank_seeds=recipe.seeds).validate()
    return rerank(config, run.dir, run.study, log=log)
