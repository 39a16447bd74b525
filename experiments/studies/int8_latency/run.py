"""Issue 27: does an int8 deployment rank a search's networks as float does? Every feasible
trial of a CIFAR-10 search measured in onnxruntime-int8 and onnxruntime, and the picks of
two searches with one accuracy estimator, one pricing latency in each.

    # the two searches, with one accuracy estimator: the committed CIFAR-10 predictor
    P=experiments/studies/found_vs_mixnet/searches/predictor-ridge-130.json
    nas search --budget 300M --data ../shared/data/cifar10-jpg.tar.gz --estimator predictor:$P \\
        --trials 40 --latency onnxruntime-int8 -o runs/int8/s-int8
    nas search ... (the same) --latency onnxruntime -o runs/int8/s-fp32
    .venv/bin/python experiments/studies/int8_latency/run.py measure \\
        --int8-run runs/int8/s-int8 --fp32-run runs/int8/s-fp32
    .venv/bin/python experiments/studies/int8_latency/run.py summary
    # the top 3, re-ranked (standalone training on the validation carve), then exported
    nas rerank runs/int8/s-int8 --top 3
    .venv/bin/python experiments/studies/int8_latency/run.py top3

``measure`` times every feasible trial of the int8 search again, in three passes over all
of them, each a fresh export (and quantisation) per network, the search's protocol (batch
1, 3x224x224, one thread, the thread's CPU time, fastest of ``--repeats`` after 2
warm-up runs): float (``fp32_a``), int8 calibrated on the search's 16 training images
(``int8_a``), float again (``fp32_b``). The search's own int8 measurement (3 runs) is kept
as ``int8_search``. It also times each search's pick in the other runtime. Rows go to
``rows.csv`` as they are measured (one per trial and pass, with the quantisation
seconds); a killed run continues when rerun.

``summary`` prints and writes ``summary.json``: the int8/float latency ratio (median,
range), Kendall's tau between the int8 and float rankings with a bootstrap interval (2,000
resamples of the trials, percentile) beside tau between the two float passes (and between
the two int8 measurements) and the paired bootstrap interval of their gap, the per-trial
quantisation cost, and the two searches' picks: whether they are the same architecture,
and whether the int8 search's own trials, priced in float instead, would have given
another pick (the reward with the other latency); and the trial each latency column picks
(the searches' own measurements and the three passes) with its reward margin over the
runner-up, to tell a runtime's effect from noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import time
from pathlib import Path

HERE = Path(__file__).parent
PASSES = ("fp32_a", "int8_a", "fp32_b")
RUNTIME = {"fp32_a": "onnxruntime", "fp32_b": "onnxruntime", "int8_a": "onnxruntime-int8"}


def _feasible(run_dir):
    from nas.search import open_run

    run = open_run(run_dir)
    return run, sorted(run.feasible, key=lambda r: r["trial"])


def _pick(run) -> dict:
    """The search's pick: its best reward (what nas search prints without re-ranking)."""
    return max(run.feasible, key=lambda r: r["reward"])


def _calibration(run):
    """The images the search's int8 latency calibrated on (nas.search.run's own rule)."""
    from nas.search.run import latency_calibration
    from nas.search.scoring import needs_supernet
    from nas.space import load_space
    from nas.train import load_supernet

    sn = (load_supernet(run.config.supernet or run.dir.supernet.checkpoint, "cpu")
          if needs_supernet(run.config.estimator) else None)
    return latency_calibration(run.config, load_space(run.config.space), sn)


def measure(args) -> None:
    import nas
    from nas.latency import MeasuredLatency

    int8_run, rows = _feasible(args.int8_run)
    fp32_run, _ = _feasible(args.fp32_run)
    images = _calibration(int8_run)
    models = {"onnxruntime": MeasuredLatency("onnxruntime", repeats=args.repeats),
              "onnxruntime-int8": MeasuredLatency("onnxruntime-int8", repeats=args.repeats,
                                                  calibration=images)}
    out = Path(args.out) / "rows.csv"
    done = set()
    if out.exists():
        with out.open() as f:
            done = {(r["search"], int(r["trial"]), r["pass"]) for r in csv.DictReader(f)}
    fields = ["search", "trial", "pass", "runtime", "ms", "quantise_s", "int8_search_ms",
              "fp32_search_ms", "flops", "accuracy", "reward", "arch"]
    # each pass over every network, then the next: passes minutes apart, as the search's
    jobs = [("int8", row, p) for p in PASSES for row in rows]
    # each search's pick in the runtime it was not priced in (and in its own, again)
    jobs += [("fp32", _pick(fp32_run), p) for p in ("int8_a", "fp32_a")]
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}", flush=True)
    started = time.perf_counter()
    for search, row, pass_ in jobs:
        if (search, row["trial"], pass_) in done:
            continue
        model = models[RUNTIME[pass_]]
        ms = model.predict(nas.Architecture.parse(row["arch"]))
        record = {"search": search, "trial": row["trial"], "pass": pass_,
                  "runtime": RUNTIME[pass_], "ms": round(ms, 4),
                  "quantise_s": model.used().get("latency_quantise_s", ""),
                  "int8_search_ms": row["latency_ms"] if search == "int8" else "",
                  "fp32_search_ms": row["latency_ms"] if search == "fp32" else "",
                  "flops": row["flops"], "accuracy": row["accuracy"], "reward": row["reward"],
                  "arch": row["arch"]}
        new = not out.exists()
        with out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow(record)
        done.add((search, row["trial"], pass_))
        print(f"{search} trial {row['trial']} {pass_}: {ms:.2f} ms", flush=True)
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[:3]}; "
              f"{(time.perf_counter() - started) / 60:.1f} min", flush=True)


def _tau_ci(a, b, resamples: int = 2000, seed: int = 0):
    """Kendall's tau of ``a`` and ``b`` and its 95% percentile bootstrap interval."""
    from scipy.stats import kendalltau

    rng = random.Random(seed)
    n, taus = len(a), []
    for _ in range(resamples):
        index = [rng.randrange(n) for _ in range(n)]
        tau = kendalltau([a[i] for i in index], [b[i] for i in index])[0]
        if tau == tau:  # a resample of one distinct value has no tau
            taus.append(tau)
    taus.sort()
    return (kendalltau(a, b)[0], taus[int(0.025 * len(taus))],
            taus[int(0.975 * len(taus)) - 1])


def _tau_gap_ci(int8, fp32_a, fp32_b, resamples: int = 2000, seed: int = 0):
    """tau(fp32_a, fp32_b) - tau(int8, fp32_a) on the same bootstrap resamples of the
    trials (paired), and its 95% percentile interval: how much further apart the int8 and
    float rankings are than two float measurements, beyond what the resampling moves."""
    from scipy.stats import kendalltau

    def gap(index):
        return (kendalltau([fp32_a[i] for i in index], [fp32_b[i] for i in index])[0]
                - kendalltau([int8[i] for i in index], [fp32_a[i] for i in index])[0])

    rng = random.Random(seed)
    n = len(int8)
    gaps = sorted(g for g in (gap([rng.randrange(n) for _ in range(n)])
                              for _ in range(resamples)) if g == g)
    return gap(range(n)), gaps[int(0.025 * len(gaps))], gaps[int(0.975 * len(gaps)) - 1]


def summary(args) -> None:
    from nas.search import SearchConfig, open_run
    from nas.search.objective import reward

    with (Path(args.out) / "rows.csv").open() as f:
        rows = list(csv.DictReader(f))
    by = {}
    for r in rows:
        if r["search"] == "int8":
            by.setdefault(int(r["trial"]), {}).update(
                {r["pass"]: float(r["ms"]), "arch": r["arch"],
                 "int8_search": float(r["int8_search_ms"]), "accuracy": float(r["accuracy"]),
                 "flops": int(r["flops"]), "reward": float(r["reward"]),
                 **({"quantise_s": float(r["quantise_s"])} if r["quantise_s"] else {})})
    trials = sorted(t for t, v in by.items() if all(p in v for p in PASSES))
    v = [by[t] for t in trials]
    col = {k: [x[k] for x in v] for k in (*PASSES, "int8_search")}
    ratios = [i / f for i, f in zip(col["int8_a"], col["fp32_a"])]
    taus = {"int8_vs_fp32": _tau_ci(col["int8_a"], col["fp32_a"]),
            "fp32_vs_fp32": _tau_ci(col["fp32_a"], col["fp32_b"]),
            "int8_vs_int8": _tau_ci(col["int8_a"], col["int8_search"]),
            "int8_vs_fp32_b": _tau_ci(col["int8_a"], col["fp32_b"])}
    gap = _tau_gap_ci(col["int8_a"], col["fp32_a"], col["fp32_b"])
    quantise = [x["quantise_s"] for x in v if "quantise_s" in x]
    # the picks
    runs = {name: open_run(getattr(args, f"{name}_run")) for name in ("int8", "fp32")}
    picks = {name: _pick(run) for name, run in runs.items()}
    config: SearchConfig = runs["int8"].config
    repriced = max(v, key=lambda x: reward(x["accuracy"], x["flops"], x["fp32_a"],
                                           config.beta, config.gamma))
    own = max(v, key=lambda x: reward(x["accuracy"], x["flops"], x["int8_a"], config.beta,
                                      config.gamma))
    # the float search's own measurement of the same architecture, where it sampled it
    fp32_search = {r["arch"]: r["latency_ms"] for r in runs["fp32"].feasible}
    for x, t in zip(v, trials):
        x["fp32_search"], x["trial"] = fp32_search.get(x["arch"]), t
    pick_by = {}  # which trial each latency column picks, and by how much reward
    for k in ("int8_search", "int8_a", "fp32_search", "fp32_a", "fp32_b"):
        if any(x[k] is None for x in v):
            continue
        ranked = sorted(v, key=lambda x: -reward(x["accuracy"], x["flops"], x[k], config.beta,
                                                 config.gamma))
        margin = [reward(x["accuracy"], x["flops"], x[k], config.beta, config.gamma)
                  for x in ranked[:2]]
        pick_by[k] = {"trial": ranked[0]["trial"], "runner_up": ranked[1]["trial"],
                      "reward_margin": margin[0] - margin[1]}
    result = {
        "trials": len(v), "trial_numbers": trials,
        "int8_over_fp32": {"median": statistics.median(ratios), "min": min(ratios),
                           "max": max(ratios),
                           "int8_slower": sum(r > 1 for r in ratios)},
        "kendall_tau": {k: {"tau": t, "ci95": [lo, hi]} for k, (t, lo, hi) in taus.items()},
        "tau_fp32_vs_fp32_minus_int8_vs_fp32": dict(zip(("gap", "ci95_lo", "ci95_hi"), gap)),
        "quantise_s": ({"median": statistics.median(quantise), "min": min(quantise),
                        "max": max(quantise)} if quantise else None),
        "picks": {name: {"trial": p["trial"], "arch": p["arch"], "accuracy": p["accuracy"],
                         "flops": p["flops"], "latency_ms": p["latency_ms"],
                         "latency_backend": p.get("latency_backend")}
                  for name, p in picks.items()},
        "picks_differ": picks["int8"]["arch"] != picks["fp32"]["arch"],
        "int8_trials_repriced_in_fp32_pick_differs": repriced["arch"] != own["arch"],
        "pick_by_latency": pick_by,
    }
    for r in rows:  # each pick in the other runtime
        if r["search"] == "fp32":
            result["picks"]["fp32"][f"{r['pass']}_ms"] = float(r["ms"])
    for p in PASSES:
        result["picks"]["int8"][f"{p}_ms"] = by[picks["int8"]["trial"]].get(p)
    (Path(args.out) / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result["int8_over_fp32"]
    print(f"{len(v)} feasible trials of the int8 search, measured in both runtimes")
    print(f"int8 / float latency: median {r['median']:.3f} (range {r['min']:.3f}-{r['max']:.3f}); "
          f"int8 slower for {r['int8_slower']} of {len(v)}")
    for k, (t, lo, hi) in taus.items():
        print(f"Kendall tau {k}: {t:.2f} [95% CI {lo:.2f}, {hi:.2f}]")
    print(f"tau fp32_vs_fp32 - tau int8_vs_fp32 (paired bootstrap): {gap[0]:.2f} "
          f"[95% CI {gap[1]:.2f}, {gap[2]:.2f}]")
    if quantise:
        q = result["quantise_s"]
        print(f"int8 calibration + quantisation per trial: median {q['median']:.1f} s "
              f"({q['min']:.1f}-{q['max']:.1f} s)")
    for name, p in result["picks"].items():
        print(f"{name} search pick: trial {p['trial']} ({p['accuracy']:.2%}, "
              f"{p['flops'] / 1e6:.1f}M FLOPs, {p['latency_ms']:.2f} ms in {p['latency_backend']})")
    print(f"picks differ: {result['picks_differ']}; the int8 search's trials priced in float "
          f"instead would pick another: {result['int8_trials_repriced_in_fp32_pick_differs']}")
    for k, p in pick_by.items():
        print(f"  priced by {k}: trial {p['trial']} (runner-up {p['runner_up']}, reward margin "
              f"{p['reward_margin']:.5f})")


def top3(args) -> None:
    """The re-ranked candidates of the int8 search: float and int8 validation accuracy
    (``rerank.json``), and each exported with ``--int8`` (its first seed's weights): file
    sizes, latencies at the exported input, the check on validation images; beside them
    the target-input latencies of ``rows.csv``. Writes ``top3.csv``."""
    from nas.export import export_trial
    from nas.search import open_run
    from nas.search.rerank import read_rerank

    run = open_run(args.int8_run)
    reranked = read_rerank(run.dir)
    if reranked is None:
        raise SystemExit(f"{run.path}: no re-ranking yet (nas rerank {run.path} --top 3)")
    target = {}
    rows_csv = Path(args.out) / "rows.csv"
    if rows_csv.exists():
        with rows_csv.open() as f:
            for r in csv.DictReader(f):
                if r["search"] == "int8":
                    target.setdefault(int(r["trial"]), {})[r["pass"]] = float(r["ms"])
    out_rows = []
    for r in reranked["table"]:
        result = export_trial(run.path, run.dir.path / f"export-int8-{r['trial']}",
                              trial=r["trial"], int8=True, force=True)
        q = result["deltas"]["int8"]
        out_rows.append({
            "trial": r["trial"], "winner": r["trial"] == reranked["winner"],
            "val_accuracy": r["val_accuracy"], "int8_val_accuracy": r["int8_val_accuracy"],
            "flops": r["flops"], "fp32_onnx_bytes": q["fp32_bytes"], "int8_onnx_bytes": q["bytes"],
            "fp32_ms_exported": round(q["fp32_ms"], 4), "int8_ms_exported": round(q["int8_ms"], 4),
            "exported_input": "x".join(map(str, q["input"])),
            "fp32_ms_target": target.get(r["trial"], {}).get("fp32_a", ""),
            "int8_ms_target": target.get(r["trial"], {}).get("int8_a", ""),
            "max_logit_diff": q["max_diff"], "largest_logit": q["largest"],
            "top1_agreement": q["agreement"], "heldout_images": q["heldout"],
            "quantise_s": round(q["quantise_s"], 2), "arch": r["arch"]})
        print(f"trial {r['trial']}: validation {r['val_accuracy']:.2%} float, "
              f"{r['int8_val_accuracy']:.2%} int8; {q['fp32_bytes'] / 1e6:.2f} -> "
              f"{q['bytes'] / 1e6:.2f} MB; {q['fp32_ms']:.3f} -> {q['int8_ms']:.3f} ms at "
              f"{out_rows[-1]['exported_input']}; max |dlogit| {q['max_diff']:.3g}", flush=True)
    with (Path(args.out) / "top3.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(out_rows[0]))
        writer.writeheader()
        writer.writerows(out_rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("measure", "summary", "top3"))
    p.add_argument("--int8-run", default="runs/int8/s-int8")
    p.add_argument("--fp32-run", default="runs/int8/s-fp32")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default=str(HERE))
    args = p.parse_args()
    {"measure": measure, "summary": summary, "top3": top3}[args.step](args)


if __name__ == "__main__":
    main()
