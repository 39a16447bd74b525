"""Study: how well each accuracy estimator ranks the architectures of a de-noised reference.

    .venv/bin/python experiments/studies/estimators/run.py --reference REF \\
        [--extra REF2 [REF3 ...]] [--supernet A/supernet.pt B/supernet.pt] [--repeats 5]

REF is a ``nas reference`` directory (its seed means are the truth: architectures with all
of its seeds); REF2 (and more), optional, other references of other architectures of the same
space, band and recipe whose seed means (>= ``--extra-seeds`` seeds, default 2) only ever train
predictors (pooled; an architecture in two counts once).
For each estimator, on REF's architectures: Kendall tau and Spearman rho with 95% bootstrap
CIs over architectures, top-5 precision and regret (points of accuracy lost by taking the
estimator's first pick), and seconds per architecture:

* ``naswot``: the NASWOT score at initialisation (one seed);
* ``supernet:NAME`` for each ``--supernet`` (NAME: its run directory) and ``supernet:mean``
  (their scores averaged; with two, their Kendall tau against each other is printed): BN
  recalibrated on 2,048 training images, scored on the whole validation carve;
* ``flops``, ``-params``: the cost model alone, as baselines;
* predictors (``ridge``/``gbm`` on ``summary``/``onehot`` encodings, with and without the
  NASWOT score as a feature): out-of-fold predictions of 5-fold cross-validation over REF's
  architectures, ``--repeats`` times with other folds; each fold trains on the other folds
  plus REF2, never on the architectures it predicts. The learning curve subsamples that
  training set to 30, 60, 120 and 160 architectures (where there are that many); with REF2,
  each predictor is also trained on REF2 alone and scored on all of REF (a clean hold-out).
  Each predictor's gain in tau over ``ridge/summary`` (today's default) comes with a paired
  bootstrap 95% CI over REF's architectures (the first repeat's folds, the same for both).

Per-architecture scores go to ``scores.csv`` and the table to ``estimators.csv`` beside this
script (or in ``--out``); NASWOT and supernet scores are cached beside it, so a rerun only
computes what is new.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import nas
from nas.estimators import Predictor, SupernetEstimator, make_estimator, rank_metrics, tau_gain
from nas.reference import estimator_context, load_reference
from nas.runs import supernet_checkpoint

HERE = Path(__file__).parent
PREDICTORS = [("ridge", "summary"), ("ridge", "onehot"), ("gbm", "summary")]
CURVE = (30, 60, 120, 160)
BASELINE = "ridge/summary"  # what nas predictor fit and --estimator predictor use


def truth_table(reference, min_seeds):
    _, per_arch, rows = load_reference(reference)
    return per_arch[per_arch["count"] >= min_seeds].reset_index(drop=True)


def cached_scores(name, ids, compute, cache):
    """Scores of ``ids`` under column ``name`` of ``cache`` (computing the missing ones)."""
    have = cache.get(name, {})
    missing = [i for i in ids if i not in have]
    if missing:
        have.update(zip(missing, compute(missing)))
        cache[name] = have
    return [have[i] for i in ids]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True)
    p.add_argument("--extra", nargs="*", default=[])
    p.add_argument("--extra-seeds", type=int, default=2,
                   help="seeds an architecture of REF2 needs to be used")
    p.add_argument("--supernet", nargs="*", default=[])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3, help="seeds an architecture of REF needs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE),
                   help="where estimators.csv and scores.csv go (the cache stays beside this "
                        "script)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ref = truth_table(args.reference, args.seeds)
    extra = (pd.concat([truth_table(e, args.extra_seeds) for e in args.extra],
                       ignore_index=True).drop_duplicates("id") if args.extra else ref.iloc[0:0])
    if set(extra.id) & set(ref.id):
        raise SystemExit("--extra shares architectures with --reference: sample it with "
                         "another --sample-seed")
    space = nas.load_space("mixnet_300m")
    all_rows = pd.concat([ref, extra], ignore_index=True)
    archs = {r.id: nas.Architecture.parse(r.arch) for r in all_rows.itertuples()}
    cache_path = HERE / "cache.csv"
    cache = {}
    if cache_path.exists():
        frame = pd.read_csv(cache_path, dtype={"id": str}).set_index("id")
        cache = {c: frame[c].dropna().to_dict() for c in frame.columns}
    context = estimator_context(args.reference, supernets=args.supernet)
    timings = {}

    def timed(name, estimator):
        def compute(ids):
            import time

            start = time.perf_counter()
            out = estimator.score([archs[i] for i in ids])
            timings[name] = (time.perf_counter() - start) / len(ids)
            return out
        return compute

    ids = list(all_rows.id)
    scores = {"naswot": cached_scores("naswot", ids, timed("naswot", make_estimator(
        "naswot", context)), cache)}
    runs = context.supernets() if context.supernets else []
    # Cached under the supernet's run directory name, so another supernet is scored anew
    # (a supernet retrained in the same directory needs its column deleted from cache.csv).
    names = [f"supernet:{supernet_checkpoint(path).resolve().parent.name}"
             for path in args.supernet]
    if len(set(names)) != len(names):
        raise SystemExit(f"--supernet: run directories must have distinct names, got {names}")
    for name, run in zip(names, runs):
        est = SupernetEstimator([run], calib_images=2048, val_images=context.val_images)
        scores[name] = cached_scores(name, list(ref.id), timed(name, est), cache)
    pd.DataFrame(cache).rename_axis("id").to_csv(cache_path)
    if len(runs) > 1:
        scores["supernet:mean"] = list(np.mean([scores[n] for n in names], axis=0))
        timings["supernet:mean"] = sum(timings.get(n, float("nan")) for n in names)
        between = rank_metrics(scores[names[0]], scores[names[1]])
        print(f"supernet seed-to-seed: Kendall tau {between['kendall']:.3f} between the first "
              f"two, {names[0]} and {names[1]}, on {len(ref)} architectures")
    truth = ref["mean"].to_numpy()
    n_ref = len(ref)
    table = []

    def add(name, values, cost, **more):
        m = rank_metrics(values[:n_ref], truth)
        table.append({"estimator": name, "tau": m["kendall"], "tau_lo": m["kendall_ci"][0],
                      "tau_hi": m["kendall_ci"][1], "rho": m["spearman"],
                      "rho_lo": m["spearman_ci"][0], "rho_hi": m["spearman_ci"][1],
                      "top5_precision": m["top5_precision"], "regret": m["top5_regret"],
                      "seconds_per_arch": cost, **more})

    add("flops", list(ref.flops), 0.0)
    add("-params", list(-ref.params), 0.0)
    add("naswot", scores["naswot"], timings.get("naswot", float("nan")))
    for name in [k for k in scores if k.startswith("supernet")]:
        add(name, scores[name], timings.get(name, float("nan")))
    # predictors: out-of-fold predictions over REF, trained on the other folds + EXTRA
    naswot = dict(zip(ids, scores["naswot"]))
    frame = pd.DataFrame({"id": ref.id, "truth": truth, **{k: v[:n_ref] if len(v) > n_ref
                                                           else v for k, v in scores.items()}})
    for model, encoding in PREDICTORS:
        for with_naswot in (False, True):
            label = f"{model}/{encoding}" + ("+naswot" if with_naswot else "")
            for size in (None, *CURVE):
                taus, preds_first = [], None
                for rep in range(args.repeats):
                    rng = random.Random(rep)
                    order = list(range(n_ref))
                    rng.shuffle(order)
                    folds = [order[f::5] for f in range(5)]
                    pred = np.zeros(n_ref)
                    for fold in folds:
                        train_ids = ([ref.id[i] for i in range(n_ref) if i not in fold]
                                     + list(extra.id))
                        if size is not None:
                            if len(train_ids) < size:
                                break
                            train_ids = rng.sample(train_ids, size)
                        targets = all_rows.set_index("id").loc[train_ids, "mean"].to_numpy()
                        extra_feats = ({"naswot": [naswot[i] for i in train_ids]}
                                       if with_naswot else None)
                        model_ = Predictor(model, encoding, space, 32,
                                           ("naswot",) if with_naswot else ())
                        model_.fit([archs[i] for i in train_ids], targets, extra_feats)
                        test_ids = [ref.id[i] for i in fold]
                        pred[fold] = model_.predict(
                            [archs[i] for i in test_ids],
                            {"naswot": [naswot[i] for i in test_ids]} if with_naswot else None)
                    else:
                        taus.append(rank_metrics(pred, truth)["kendall"])
                        if preds_first is None:
                            preds_first = pred.copy()
                if not taus:
                    continue
                if size is None:
                    gain = tau_gain(preds_first, frame[BASELINE], truth) if label != BASELINE \
                        else {"gain": 0.0, "gain_ci": [0.0, 0.0]}
                    add(label, list(preds_first), timings.get("naswot", 0.0) if with_naswot
                        else 0.0, tau_repeats_mean=float(np.mean(taus)),
                        tau_repeats_std=float(np.std(taus)), gain=gain["gain"],
                        gain_lo=gain["gain_ci"][0], gain_hi=gain["gain_ci"][1],
                        train_archs=n_ref - n_ref // 5 + len(extra))
                    frame[label] = preds_first
                else:
                    table.append({"estimator": f"{label} @ {size} training archs",
                                  "tau": float(np.mean(taus)), "tau_std": float(np.std(taus))})
            if len(extra):
                # held out entirely: trained on REF2 alone, scored on all of REF
                model_ = Predictor(model, encoding, space, 32,
                                   ("naswot",) if with_naswot else ())
                model_.fit([archs[i] for i in extra.id], list(extra["mean"]),
                           {"naswot": [naswot[i] for i in extra.id]} if with_naswot else None)
                pred = model_.predict([archs[i] for i in ref.id],
                                      {"naswot": [naswot[i] for i in ref.id]} if with_naswot
                                      else None)
                add(f"{label}, trained on REF2 only ({len(extra)})", list(pred),
                    timings.get("naswot", 0.0) if with_naswot else 0.0)
    out = pd.DataFrame(table)
    where = Path(args.out)
    where.mkdir(parents=True, exist_ok=True)
    out.to_csv(where / "estimators.csv", index=False)
    frame.to_csv(where / "scores.csv", index=False)
    pd.set_option("display.width", 200)
    print(f"{n_ref} reference architectures ({args.seeds} seeds), {len(extra)} extra for "
          "predictors")
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
