"""Benchmark: the latency tables' predictions against measurement, torch eager and ONNX
Runtime (float or int8), in one run.

    .venv/bin/python experiments/bench/latency.py [--runtimes torch onnxruntime]
        [--archs 30] [--coverage space|needed] [--repeats 20] [--calibrate 12] [--rows CSV]
        [--calib DATA]

For each runtime: builds the table of mixnet_300m as ``nas latency build`` does (every
unit of the space, timed round-robin; fitted on 12 random networks measured whole), then
predicts 30 fresh random architectures and measures each twice, in two passes over all
30, each pass the measured backend's protocol (batch 1, 3x224x224, 1 thread, fastest of 20
runs after 2 warm-up runs, the thread's CPU time). Prints, per runtime, the mean and median
absolute percentage error of the prediction against the first measurement (goal <= 5%),
and beside it the measurement's own repeatability: the same statistic between the two
measurements of each architecture. Then ratios from the same run: prediction error /
repeatability, ONNX Runtime / torch eager latency, and prediction / measurement time.

For ``onnxruntime-int8`` the table is built as ``nas latency build`` builds it (units and
calibration networks calibrated on seeded noise); with ``--calib DATA`` the fresh networks
are measured as a search measures them, calibrated on 16 training images of DATA at the
target input, and once more calibrated on noise, to show whether what a network is
calibrated on changes its latency. Every runtime also prints the error of the units' sum
alone (scale 1): in int8 a unit timed alone quantises its input and dequantises its
output, which a whole network does once, so the sum could be further off than in float,
leaving the scale fitted on whole networks more to correct; the figure shows whether it is.

``--coverage needed`` times only the units the 30 fresh and 12 calibration networks use
(the same shuffled groups of 48, round-robin, the calibration networks measured between
them), which predicts them as the full table would, in a fraction of the time.
``--rows`` writes one row per runtime and architecture (predicted, both measurements) so
the figures can be recomputed; ``--from-rows CSV`` recomputes them without measuring.

The machine's speed drifts over minutes (the second pass comes out several percent faster
or slower than the first on average), and a table's scale is fitted when it is built, so
part of the error may be one factor between calibration and evaluation. The bench
therefore also prints the error left once one scale is refitted (the median ratio of
measurement to prediction): in sample, to the mean of both passes, and out of sample,
fitted to the first pass and scored on the second; and Kendall's tau of the prediction
against each pass beside the tau between the passes (the ranking a search by latency
depends on).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time

import torch

import nas
from nas.latency import build_table, make_runtime
from nas.latency.units import arch_units


def mape(predicted, measured):
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return 100 * statistics.mean(errors), 100 * statistics.median(errors), 100 * max(errors)


def shape_error(predicted, first, second) -> str:
    """What is left once one scale is refitted: in sample (fitted to the mean of both
    passes and scored against it) and out of sample (fitted to the first pass, scored
    against the second); and Kendall's tau of the prediction against each pass beside the
    tau between the passes."""
    from scipy.stats import kendalltau

    def refit(target):
        return statistics.median(m / p for m, p in zip(target, predicted))

    mean = [(a + b) / 2 for a, b in zip(first, second)]
    inside = mape([refit(mean) * p for p in predicted], mean)
    outside = mape([refit(first) * p for p in predicted], second)
    drift = statistics.mean(b / a for a, b in zip(first, second)) - 1
    tau = [kendalltau(predicted, m)[0] for m in (first, second)]
    return (f"  one scale refitted: in sample (to the mean of both) x{refit(mean):.3f}, MAPE "
            f"{inside[0]:.1f}% (median {inside[1]:.1f}%); out of sample (fitted to the first "
            f"pass, scored on the second) {outside[0]:.1f}% (median {outside[1]:.1f}%); second "
            f"pass / first {100 * drift:+.1f}% on average\n"
            f"  Kendall tau prediction/first pass {tau[0]:.2f}, prediction/second pass "
            f"{tau[1]:.2f}, between the passes {kendalltau(first, second)[0]:.2f}")


def print_errors(predicted, first, second) -> None:
    """The prediction's error against each pass and their mean, the passes' own
    repeatability, and what is left once one scale is refitted: one report for a run and
    for ``--from-rows``."""
    error, noise = mape(predicted, first), mape(second, first)
    print("  predicted vs first pass: MAPE {:.1f}% (median {:.1f}%, max {:.1f}%)".format(*error))
    print("  predicted vs the mean of both passes: MAPE {:.1f}% (median {:.1f}%, max "
          "{:.1f}%)".format(*mape(predicted, [(x + y) / 2 for x, y in zip(first, second)])))
    print("  repeatability, second pass vs first (the same arch minutes apart): {:.1f}% "
          "(median {:.1f}%, max {:.1f}%)".format(*noise))
    print(f"  ratio prediction error / repeatability (means): {error[0] / max(noise[0], 1e-9):.2f}")
    print(shape_error(predicted, first, second))


def from_rows(path: str) -> None:
    """The figures of a ``--rows`` file, recomputed."""
    import pandas as pd

    rows = pd.read_csv(path)
    for name, g in rows.groupby("runtime", sort=False):
        p, a, b = (g[c].tolist() for c in ("predicted_ms", "measured_ms", "measured_again_ms"))
        print(f"== {name}, {len(g)} archs")
        if "unit_sum_ms" in g:  # rows written since the int8 runtime
            print("  the units' sum alone (scale 1) vs first pass: MAPE {:.1f}% (median "
                  "{:.1f}%, max {:.1f}%)".format(*mape(g.unit_sum_ms.tolist(), a)))
        print_errors(p, a, b)
        noise = g.get("measured_noise_calibrated_ms")
        if noise is not None and noise.notna().all():
            ratio = [x / y for x, y in zip(a, noise)]
            print(f"  calibrated on training images / on noise, same networks: median "
                  f"{statistics.median(ratio):.3f} (range {min(ratio):.3f}-{max(ratio):.3f})")
    if {"torch", "onnxruntime"} <= set(rows.runtime):
        t, o = (rows[rows.runtime == r].set_index("arch").measured_ms
                for r in ("torch", "onnxruntime"))
        ratio = (o / t.loc[o.index]).tolist()
        print(f"ONNX Runtime / torch eager latency: median {statistics.median(ratio):.3f} "
              f"(range {min(ratio):.3f}-{max(ratio):.3f})")


def bench_runtime(name: str, space, fresh, args) -> dict:
    started = time.perf_counter()
    units = None  # every unit of the space, as `nas latency build`
    if args.coverage == "needed":  # build_table adds those of its calibration networks
        units = {}
        for arch in fresh:
            units.update(arch_units(arch))
    table = build_table(space, name, calibrate=args.calibrate, repeats=args.repeats,
                        seed=args.seed, units=units)
    build_s = time.perf_counter() - started
    cal = table.calibration
    fitted = [table.scale * s for s in cal["unit_sums"]]
    table.misses = 0
    unit_sums = [table.unit_sum(arch) for arch in fresh]
    predicted, predict_s = [], []
    for arch in fresh:
        t0 = time.perf_counter()
        predicted.append(table.predict(arch))
        predict_s.append(time.perf_counter() - t0)
    runtime = make_runtime(name)
    images = None
    if args.calib and name == "onnxruntime-int8":  # as the search: its data's images
        from nas.latency.quantize import CALIBRATION_INPUTS
        from nas.train import calibration_inputs

        images = calibration_inputs(args.calib, CALIBRATION_INPUTS, space.input.resolution,
                                    channels=space.input.channels)
    calls, noise_calls, compile_s = [], [], []
    for arch in fresh:  # each network built (and exported) once, timed in two passes
        t0 = time.perf_counter()
        size = arch.input.resolution
        model = nas.build_model(arch).eval()
        x = torch.randn(1, arch.input.channels, size, size)
        calls.append(runtime.compile([model], [x], [images])[0])
        compile_s.append(time.perf_counter() - t0)
        if images is not None:  # the same network calibrated on noise instead
            noise_calls.append(runtime.compile([model], [x])[0])
    passes = []
    for _ in range(2):
        t0 = time.perf_counter()
        passes.append([runtime.time([call], repeats=args.repeats)[0] for call in calls])
        pass_s = (time.perf_counter() - t0) / len(calls)
    first, second = passes
    noise = [runtime.time([call], repeats=args.repeats)[0] for call in noise_calls]
    measure_s = [c + pass_s for c in compile_s]
    result = {
        "build_min": build_s / 60, "units": len(table.entries), "misses": table.misses,
        "scale": table.scale,
        "calibration": mape(fitted, cal["measured"]),
        "measured": first, "measured_again": second, "predicted": predicted,
        "unit_sums": unit_sums, "measured_noise": noise,
        "time_ratio": statistics.median(predict_s) / statistics.median(measure_s),
        "predict_ms": 1000 * statistics.median(predict_s),
        "measure_s": statistics.median(measure_s),
    }
    print(f"\n== {name}: table of {result['units']} units built in {result['build_min']:.1f} min "
          f"({args.coverage}); latency = {table.scale:.3f} x sum of units; {result['misses']} "
          f"units measured while predicting", flush=True)
    print("  fit on the {} calibration networks: MAPE {:.1f}% (median {:.1f}%, max {:.1f}%)"
          .format(args.calibrate, *result["calibration"]))
    print(f"  {len(fresh)} fresh archs (goal: MAPE <= 5% against the first pass)"
          + (f", measured calibrated on 16 training images of {args.calib}"
             if images is not None else ""))
    print("  the units' sum alone (scale 1) vs first pass: MAPE {:.1f}% (median {:.1f}%, max "
          "{:.1f}%)".format(*mape(unit_sums, first)))
    print_errors(predicted, first, second)
    if noise:
        ratio = [a / b for a, b in zip(first, noise)]
        print(f"  calibrated on training images / on noise, same networks: median "
              f"{statistics.median(ratio):.3f} (range {min(ratio):.3f}-{max(ratio):.3f}); "
              f"second pass / first: median "
              f"{statistics.median(b / a for a, b in zip(first, second)):.3f}")
    print(f"  prediction {result['predict_ms']:.2f} ms vs measurement {result['measure_s']:.2f} s "
          f"(medians; measurement includes building{' and exporting' if name != 'torch' else ''}"
          f" the network): ratio {result['time_ratio']:.5f}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mixnet_300m")
    p.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"])
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--coverage", choices=("space", "needed"), default="space")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--calibrate", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", help="write the per-architecture rows to this CSV")
    p.add_argument("--from-rows", metavar="CSV", help="recompute the figures of a --rows file")
    p.add_argument("--calib", metavar="DATA",
                   help="int8: calibrate the measured networks on DATA's training images")
    args = p.parse_args()
    if args.from_rows:
        return from_rows(args.from_rows)
    space = nas.load_space(args.space)
    rng = random.Random(12345)  # archs unseen by the tables' calibration (seed 0)
    fresh = [space.sample(rng) for _ in range(args.archs)]
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}")
    started = time.perf_counter()
    results = {name: bench_runtime(name, space, fresh, args) for name in args.runtimes}
    if {"torch", "onnxruntime"} <= set(results):
        ratios = [o / t for o, t in zip(results["onnxruntime"]["measured"],
                                        results["torch"]["measured"])]
        print(f"\nONNX Runtime / torch eager latency, same {len(fresh)} archs: median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")
    if args.rows:
        with open(args.rows, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["runtime", "arch", "predicted_ms", "measured_ms", "measured_again_ms",
                          "unit_sum_ms", "measured_noise_calibrated_ms"])
            for name, r in results.items():
                noise = r["measured_noise"] or [None] * len(fresh)
                for arch, row, extra in zip(fresh, zip(r["predicted"], r["measured"],
                                                       r["measured_again"], r["unit_sums"]),
                                            noise):
                    out.writerow([name, str(arch), *(f"{v:.4f}" for v in row),
                                  "" if extra is None else f"{extra:.4f}"])
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[:3]}; "
              f"wall time {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
