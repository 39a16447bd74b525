"""Benchmark: the latency lookup table's predictions vs measurements, same run.

    .venv/bin/python experiments/bench/latency.py [--archs 30] [--lut-archs 40]

Builds a table for mixnet_300m (operations of 40 random architectures plus the extremes;
fit on 24 more measured whole), then predicts and measures 30 fresh random architectures
(3x224x224, batch 1, 1 thread, median of 5). Prints the mean absolute percentage error
(goal <= 5%) of the table's per-kind fit and, from the same measurements, of one shared
scale plus a per-op constant (the previous model's form); the measurement's own
repeatability; and the time a
prediction takes relative to a measurement.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import nas
from nas.latency import LatencyTable, arch_latency, build_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mixnet_300m")
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--lut-archs", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calibrate", type=int, default=24)
    args = p.parse_args()
    space = nas.load_space(args.space)
    start = time.perf_counter()
    table = build_table(space, archs=args.lut_archs, calibrate=args.calibrate,
                        repeats=args.repeats, seed=0, progress=False, per_kind=True)
    shared = LatencyTable(threads=table.threads, repeats=table.repeats)
    shared.entries = table.entries  # one dict: both tables see the same operation timings
    shared.fit(*table.calibration, per_kind=False)
    built = len(table.entries)
    build_s = time.perf_counter() - start
    rng = random.Random(12345)  # archs unseen by the table's calibration
    errors, shared_errors, predict_s, measure_s, noise = [], [], [], [], []
    for _ in range(args.archs):
        arch = space.sample(rng)
        t0 = time.perf_counter()
        predicted = table.predict(arch)
        t1 = time.perf_counter()
        measured = arch_latency(arch, repeats=args.repeats)
        t2 = time.perf_counter()
        errors.append(abs(predicted - measured) / measured)
        shared_errors.append(abs(shared.predict(arch) - measured) / measured)
        again = arch_latency(arch, repeats=args.repeats)  # the reference's own repeatability
        noise.append(abs(again - measured) / measured)
        predict_s.append(t1 - t0)
        measure_s.append(t2 - t1)
    weights = ", ".join(f"{k} {w:.2f}" for k, w in table.weights.items())
    print(f"table: {built} operation shapes, weights {weights}, +{table.per_op:.4f} ms per op, "
          f"built in {build_s / 60:.1f} min; {len(table.entries) - built} new shapes "
          f"measured while predicting")
    print(f"MAPE predicted vs measured over {args.archs} random archs: "
          f"{100 * statistics.mean(errors):.1f}% (median {100 * statistics.median(errors):.1f}%, "
          f"max {100 * max(errors):.1f}%; goal <= 5%)")
    print(f"  the same table with one shared scale ({shared.weights['dw']:.3f} x sum + "
          f"{shared.per_op:.4f} x ops): MAPE {100 * statistics.mean(shared_errors):.1f}%")
    print(f"measurement noise (same arch measured twice): "
          f"{100 * statistics.mean(noise):.1f}% mean absolute difference")
    print(f"prediction time / measurement time (medians): "
          f"{statistics.median(predict_s) / statistics.median(measure_s):.3f} "
          f"(unseen block shapes are measured on first use)")


if __name__ == "__main__":
    main()
