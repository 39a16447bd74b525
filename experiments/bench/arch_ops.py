"""Benchmark: the architecture's hot paths in this tree vs a baseline git revision, in one
process, interleaved.

    .venv/bin/python experiments/bench/arch_ops.py [--baseline main] [--space mixnet_300m]

What a search does per trial with the space language: ``space.sample(rng)``,
``str(arch)``, ``Architecture.parse(text)`` and ``count_cost(arch)`` (its per-kernel-set
cache cleared before each pass, as ``cost.py`` does). The baseline's ``nas`` package is
taken from ``git archive BASELINE`` and imported under another name (every import inside
``nas`` is relative), so both run in the same interpreter on the same architecture
strings. Each round times every operation of both trees, the order of the trees
alternating between rounds, so load from other processes hits both alike. Printed: per
operation the median µs per architecture of each, and the median (and quartiles) over
rounds of the ratio this tree / baseline within a round (above 1: slower). Both load the
space file from this tree.
"""

from __future__ import annotations

import argparse
import importlib
import io
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


def operations(pkg, space_path: str, n: int, seed: int):
    """``{name: (function, items, before)}`` of one tree, on the same architectures."""
    space = pkg.load_space(space_path)
    cost_module = importlib.import_module(pkg.__name__ + ".cost")
    archs = [space.sample(random.Random(seed + i)) for i in range(n)]
    texts = [str(a) for a in archs]
    clear = cost_module._dw_weights.cache_clear
    return texts, {
        "sample": (space.sample, None, lambda: None),  # items: fresh generators per pass
        "str": (str, archs, lambda: None),
        "parse": (pkg.Architecture.parse, texts, lambda: None),
        "count_cost": (pkg.count_cost, archs, clear),
    }


def time_pass(fn, items, before) -> float:
    """µs per item of one pass."""
    before()
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="main", help="git revision to compare against")
    p.add_argument("--space", default="mixnet_300m", help="registered space name")
    p.add_argument("--archs", type=int, default=500)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import nas

    space_path = str(nas.available_spaces()[args.space])
    with tempfile.TemporaryDirectory() as tmp:
        base = import_baseline(args.baseline, Path(tmp))
        head_texts, head_ops = operations(nas, space_path, args.archs, args.seed)
        base_texts, base_ops = operations(base, space_path, args.archs, args.seed)
        # Same architectures, or the comparison means nothing.
        assert head_texts == base_texts, "the two trees sample different architectures"
        trees = {"this tree": head_ops, "baseline": base_ops}
        times = {tree: {op: [] for op in ops} for tree, ops in trees.items()}
        order = list(trees)
        for r in range(args.rounds):
            for tree in (order if r % 2 == 0 else order[::-1]):
                for op, (fn, items, before) in trees[tree].items():
                    if op == "sample":  # fresh generators: the same draws every pass
                        items = [random.Random(args.seed + i) for i in range(args.archs)]
                    times[tree][op].append(time_pass(fn, items, before))
    print(f"{args.space}: {args.archs} architectures, {args.rounds} interleaved rounds; "
          f"this tree vs {args.baseline}")
    print(f"{'operation':<12}{'this tree µs':>14}{'baseline µs':>14}{'ratio':>8}"
          f"{'quartiles':>16}")
    for op in times["this tree"]:
        head, base = times["this tree"][op], times["baseline"][op]
        ratios = [h / b for h, b in zip(head, base)]  # within a round: the same load
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"{op:<12}{statistics.median(head):>14.1f}{statistics.median(base):>14.1f}"
              f"{statistics.median(ratios):>8.3f}{f'{q1:.3f}-{q3:.3f}':>16}")


if __name__ == "__main__":
    main()
