"""Benchmark: search throughput with 1 and 2 worker processes on this machine.

    .venv/bin/python experiments/bench/workers.py [--trials 40] [--supernet RUN/supernet.pt]
                                                  [--storage journal|postgresql://...]

Runs ``nas search --budget 300M --workers N`` (default space and proxy settings) for
N = 1 and 2 against a fresh shared study each (a journal file by default: no server
needed; or a PostgreSQL URL), on one supernet (trained briefly here unless given), and
prints completed trials per minute of wall time and the 2-worker/1-worker ratio. Each
worker gets cores // N torch threads, so this measures how well trial-level parallelism
uses the machine compared with intra-op threads.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nas.train import TrainConfig, train_supernet


def run(n: int, tmp: Path, supernet: str, trials: int, storage: str) -> float:
    url = f"journal:{tmp / f'w{n}.journal'}" if storage == "journal" else storage
    cmd = [sys.executable, "-m", "nas", "search", "--budget", "300M", "--supernet", supernet,
           "--trials", str(trials), "--storage", url, "--study", f"bench-{n}-{time.time_ns()}",
           "--workers", str(n), "-o", str(tmp / f"run{n}")]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return trials / ((time.perf_counter() - start) / 60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--supernet", default="")
    p.add_argument("--storage", default="journal")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        supernet = args.supernet
        if not supernet:
            train_supernet(TrainConfig(steps=10, checkpoint_every=10**6), tmp / "sn",
                           progress=False)
            supernet = str(tmp / "sn" / "supernet.pt")
        rates = {1: [], 2: []}
        for r in range(args.rounds):
            for n in (1, 2):
                rates[n].append(run(n, tmp / f"r{r}", supernet, args.trials, args.storage))
    one, two = (sorted(v)[len(v) // 2] for v in (rates[1], rates[2]))
    print(f"nas search --budget 300M, {args.trials} trials, storage {args.storage}, "
          f"wall time including process start and supernet load (median of {args.rounds}):")
    print(f"  1 worker : {one:.1f} trials/min")
    print(f"  2 workers: {two:.1f} trials/min")
    print(f"  ratio 2/1: {two / one:.2f}")


if __name__ == "__main__":
    main()
