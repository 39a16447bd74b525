"""Benchmark: the architecture's hot paths in this tree vs a baseline git revision, in one
process, interleaved.

    .venv/bin/python experiments/bench/arch_ops.py [--baseline main] [--space mixnet_300m]

What a search does per candidate with the space language, on one core:
``space.sample(rng)``, ``str(arch)``, ``Architecture.parse(text)``, ``count_cost(arch)``,
``space.mutate(arch, rng, p)`` and ``space.crossover(a, b, rng)`` (OFA's evolution
operators; a baseline without them mutates and crosses through the public
``choices_of`` / ``arch_from_choices``, as one would write it there), and the figure the
goal is about, **end to end**: sample -> count_cost -> str. Every operation but "end to
end, fresh space" is timed in steady state, as a search runs after its first few thousand
candidates: the same architectures every pass, whose rows the first pass has already met.
"end to end, fresh space" loads the space again before each pass (untimed), so every row
is met for the first time.

The baseline's ``nas`` package is taken from ``git archive BASELINE`` and imported under
another name (every import inside ``nas`` is relative), so both run in the same
interpreter on the same architecture strings. Each round times every operation of both
trees, the order of the trees alternating between rounds, so load from other processes
hits both alike. Times are CPU seconds of this process (``time.process_time``: what one
core gives, less sensitive than wall time to other processes on a shared machine).
Printed: per operation the median µs per architecture of each and the archs/s this
tree's median gives, and the median (and quartiles) over rounds of the ratio this tree /
baseline within a round (below 1: faster). Both load the space file from this tree.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_baseline(revision: str, where: Path):
    """The ``nas`` package of ``revision``, imported as ``nas_baseline``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "nas"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(where, filter="data")
    (where / "nas").rename(where / "nas_baseline")
    sys.path.insert(0, str(where))
    return importlib.import_module("nas_baseline")


def choices_mutate(space, arch, rng, p):
    """Mutation through the public choices API (a tree without ``space.mutate``)."""
    choices = space.choices_of(arch)
    for d in space.decisions:
        if rng.random() < p:
            choices[d.name] = rng.choice(d.values)
    return space.arch_from_choices(choices)


def choices_crossover(space, a, b, rng):
    """Uniform crossover through the public choices API."""
    ca, cb = space.choices_of(a), space.choices_of(b)
    return space.arch_from_choices({name: ca[name] if rng.random() < 0.5 else cb[name]
                                    for name in ca})


def operations(pkg, space_path: str, n: int, seed: int, p: float):
    """``{name: prepare}`` of one tree, on the same architectures; ``prepare()`` (untimed)
    returns ``(function, items)`` for one pass."""
    space = pkg.load_space(space_path)
    archs = [space.sample(random.Random(seed + i)) for i in range(n)]
    texts = [str(a) for a in archs]
    pairs = list(zip(archs, archs[1:] + archs[:1]))
    native = hasattr(space, "mutate")

    def rngs():  # fresh generators: the same draws every pass
        return [random.Random(seed + i) for i in range(n)]

    def mutate():
        rng = random.Random(seed)
        if native:
            return (lambda a: space.mutate(a, rng, p)), archs
        return (lambda a: choices_mutate(space, a, rng, p)), archs

    def crossover():
        rng = random.Random(seed)
        if native:
            return (lambda ab: space.crossover(ab[0], ab[1], rng)), pairs
        return (lambda ab: choices_crossover(space, ab[0], ab[1], rng)), pairs

    def end_to_end(of=space):
        def run(rng):
            arch = of.sample(rng)
            pkg.count_cost(arch)
            return str(arch)
        return run, rngs()

    return texts, {
        "sample": lambda: (space.sample, rngs()),
        "str": lambda: (str, archs),
        "parse": lambda: (pkg.Architecture.parse, texts),
        "count_cost": lambda: (pkg.count_cost, archs),
        "mutate": mutate,
        "crossover": crossover,
        "end to end": end_to_end,
        "end to end, fresh space": lambda: end_to_end(pkg.load_space(space_path)),
    }


def time_pass(prepare) -> float:
    """CPU µs per item of one pass."""
    fn, items = prepare()
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / len(items) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="main", help="git revision to compare against")
    p.add_argument("--space", default="mixnet_300m", help="registered space name")
    p.add_argument("--archs", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p", type=float, default=0.1, help="mutation probability (OFA's)")
    args = p.parse_args()
    import nas

    space_path = str(nas.available_spaces()[args.space])
    load = os.getloadavg()[0]
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = import_baseline(args.baseline, Path(tmp))
        head_texts, head_ops = operations(nas, space_path, args.archs, args.seed, args.p)
        base_texts, base_ops = operations(base, space_path, args.archs, args.seed, args.p)
        # Same architectures, or the comparison means nothing.
        assert head_texts == base_texts, "the two trees sample different architectures"
        trees = {"this tree": head_ops, "baseline": base_ops}
        for ops in trees.values():  # the steady state: every row met once
            for prepare in ops.values():
                time_pass(prepare)
        times = {tree: {op: [] for op in ops} for tree, ops in trees.items()}
        order = list(trees)
        for r in range(args.rounds):
            for tree in (order if r % 2 == 0 else order[::-1]):
                for op, prepare in trees[tree].items():
                    times[tree][op].append(time_pass(prepare))
    print(f"{args.space}: {args.archs} architectures, {args.rounds} interleaved rounds, "
          f"mutation p={args.p}; this tree vs {args.baseline}; CPU time; load average "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f}; {time.perf_counter() - wall:.0f} s wall")
    print(f"{'operation':<26}{'this tree µs':>13}{'archs/s':>9}{'baseline µs':>13}"
          f"{'ratio':>8}{'quartiles':>14}")
    for op in times["this tree"]:
        head, base = times["this tree"][op], times["baseline"][op]
        ratios = [h / b for h, b in zip(head, base)]  # within a round: the same load
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"{op:<26}{statistics.median(head):>13.1f}{1e6 / statistics.median(head):>9,.0f}"
              f"{statistics.median(base):>13.1f}{statistics.median(ratios):>8.3f}"
              f"{f'{q1:.3f}-{q3:.3f}':>14}")


if __name__ == "__main__":
    main()
