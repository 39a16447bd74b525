"""Benchmark: start-up of the light commands, as a ratio to a bare Python start-up.

    .venv/bin/python experiments/bench/importtime.py [--rounds 15]

Times, interleaved round by round (so a burst of load hits all alike), the wall time of
``python -c pass`` (the baseline), ``nas --help``, ``nas space show mixnet_s`` and, for
scale, ``python -c "import torch"`` and ``python -c "import optuna"``; prints medians and
ratios to the baseline, and the modules ``python -X importtime -m nas space show mixnet_s``
imports from torch or Optuna (none expected).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "nas --help": [sys.executable, "-m", "nas", "--help"],
    "nas space show mixnet_s": [sys.executable, "-m", "nas", "space", "show", "mixnet_s"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'import optuna'": [sys.executable, "-c", "import optuna"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    times = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28s} {median * 1000:7.1f} ms   {median / base:5.2f}x python -c pass")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nas", "space", "show",
                           "mixnet_s"], capture_output=True, text=True, check=True)
    modules = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")]
    heavy = sorted(m for m in modules if m.split(".")[0] in ("torch", "optuna"))
    print(f"`nas space show mixnet_s` imports {len(modules)} modules; from torch or optuna: "
          f"{len(heavy)}{' ' + str(heavy[:5]) if heavy else ''}")


if __name__ == "__main__":
    main()
