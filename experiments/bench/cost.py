"""Benchmark: analytic ``count_cost`` vs fvcore (the baseline), same archs, same run.

    .venv/bin/python experiments/bench/cost.py [--archs 2000] [--fvcore-archs 12]

Both count the same random architectures of the default space at its target input
(3x224x224). fvcore builds the model and traces it (what one would do without an
analytic model); count_cost reads the architecture. Sampling is not timed. Printed:
median archs/s of each over repeats, and their ratio (the figure to quote).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import nas
from nas.cost import cache_clear


def rate(fn, items, repeats: int, before=lambda: None) -> float:
    """Median items/s over ``repeats`` passes; ``before`` runs untimed before each."""
    rates = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        for item in items:
            fn(item)
        rates.append(len(items) / (time.perf_counter() - start))
    return statistics.median(rates)


def fvcore_flops(arch) -> int:
    from fvcore.nn import FlopCountAnalysis

    model = nas.build_model(arch).eval()
    r = arch.input.resolution
    counter = FlopCountAnalysis(model, torch.zeros(1, arch.input.channels, r, r))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    with torch.no_grad():
        return counter.total()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mixnet_300m")
    p.add_argument("--archs", type=int, default=2000)
    p.add_argument("--fvcore-archs", type=int, default=12)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    space = nas.load_space(args.space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    def cold():
        # Every pass starts cold: count_cost remembers a row's cost with its Block and
        # MixConv weights per (width, kernel set, split), which would otherwise be warm
        # from the previous pass; fresh copies of the architectures remember nothing.
        cache_clear()
        archs[:] = [nas.Architecture.from_json(a.to_json()) for a in archs]

    fast = rate(nas.count_cost, archs, args.repeats, before=cold)
    slow = rate(fvcore_flops, archs[: args.fvcore_archs], max(1, args.repeats // 2))
    for a in archs[: args.fvcore_archs]:  # the two must agree, or the race is meaningless
        assert nas.count_cost(a).flops == fvcore_flops(a)
    print(f"space {args.space}, {args.archs} archs, torch threads {args.threads}")
    print(f"count_cost: {fast:12,.0f} archs/s (median of {args.repeats})")
    print(f"fvcore:     {slow:12,.1f} archs/s (median, {args.fvcore_archs} archs)")
    print(f"ratio count_cost / fvcore: {fast / slow:,.0f}x   "
          "(target: count_cost >= 20,000 archs/s)")


if __name__ == "__main__":
    main()
