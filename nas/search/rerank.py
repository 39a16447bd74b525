"""The final re-ranking: the best few architectures of a search, trained standalone.

What a careful engineer does by hand: the estimate that drove the search ranks
architectures only roughly, so the ``K`` best feasible architectures (the Pareto front first,
by reward, then the other feasible trials by reward) are each trained standalone with one
short fixed recipe and several seeds, and the winner is the one with the best reward when
its mean standalone validation accuracy replaces the estimate. ``nas export RUN --best`` then
exports the winner, with the weights of its first seed's training. The test split is not
read. Every training resumes, and every finished (trial, seed) row is kept in
``RUN/rerank.csv``, so a killed re-ranking continues where it stopped.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List

import optuna

from ..errors import RunError
from ..files import read_json, write_json
from ..runs import SearchDir
from .config import SearchConfig
from .objective import reward
from .results import pareto_front, trial_rows

__all__ = ["rerank", "rerank_candidates", "read_rerank"]

BATCH = 128


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


def rerank(config: SearchConfig, run: SearchDir, study: optuna.Study, log=print,
           progress: bool = True) -> Dict[str, Any]:
    """Train the ``config.rerank`` best feasible trials; returns (and writes) the result."""
    import pandas as pd

    from ..files import atomic_write_bytes
    from ..train import RetrainConfig, retrain

    rows = trial_rows(study)
    chosen = rerank_candidates(rows, config.rerank)
    if not chosen:
        raise RunError(f"{run}: no feasible trial to re-rank")
    recipe = _recipe(config)
    done: List[Dict[str, Any]] = []
    if run.rerank_csv.exists():
        done = pd.read_csv(run.rerank_csv).to_dict("records")
        done = [d for d in done if all(d.get(k) == v for k, v in
                                       (("steps", recipe["steps"]),))]
    have = {(int(d["trial"]), int(d["seed"])) for d in done}
    total = len(chosen) * config.rerank_seeds
    log(f"re-ranking the {len(chosen)} best feasible trials: {config.rerank_steps} steps of "
        f"standalone training, {config.rerank_seeds} seed(s) each")
    for seed in range(config.rerank_seeds):
        for row in chosen:
            if (row["trial"], seed) in have:
                continue
            out = run.rerank_run(row["trial"], seed)
            resume = out.checkpoint.exists()
            m = retrain(None if resume else RetrainConfig(
                arch=row["arch"], data=config.data, steps=config.rerank_steps,
                batch_size=BATCH, seed=seed, resolution=config.resolution,
                checkpoint_every=max(50, config.rerank_steps // 4)),
                out.path, resume=resume, progress=progress, test=False)
            done.append({"trial": row["trial"], "seed": seed, "val_accuracy": m["val_accuracy"],
                         "steps": m["steps"], "estimate": row["accuracy"], "flops": row["flops"],
                         "latency_ms": row["latency_ms"], "arch": row["arch"]})
            atomic_write_bytes(run.rerank_csv, pd.DataFrame(done).to_csv(index=False).encode())
            log(f"re-rank trial {row['trial']} seed {seed} ({len(done)}/{total} done): "
                f"validation {m['val_accuracy']:.2%} (estimate {row['accuracy']:.4g})")
    table = []
    for row in chosen:
        accs = [d["val_accuracy"] for d in done if d["trial"] == row["trial"]]
        acc = statistics.mean(accs)
        table.append({"trial": row["trial"], "val_accuracy": acc,
                      "val_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                      "reward": reward(acc, row["flops"], row["latency_ms"], config.beta,
                                       config.gamma),
                      "estimate": row["accuracy"], "flops": row["flops"],
                      "latency_ms": row["latency_ms"], "arch": row["arch"]})
    table.sort(key=lambda r: -r["reward"])
    result = {"recipe": recipe, "winner": table[0]["trial"], "table": table}
    write_json(run.rerank_json, result)
    w = table[0]
    log(f"re-ranking winner: trial {w['trial']} ({w['val_accuracy']:.2%} standalone, "
        f"{w['flops'] / 1e6:.1f}M FLOPs); nas export --best now means it")
    return result


def read_rerank(run: SearchDir):
    """The re-ranking result of ``run``, or None when it has none."""
    if not run.rerank_json.exists():
        return None
    data = read_json(run.rerank_json, "re-ranking result")
    if not isinstance(data, dict) or not isinstance(data.get("winner"), int):
        raise RunError(f"{run.rerank_json}: malformed re-ranking result")
    return data
