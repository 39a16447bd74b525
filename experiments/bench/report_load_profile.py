"""Where Optuna's read of a 1,000-trial SQLite study goes (the floor under `nas report`),
and what `import optuna.importance` costs: evidence for two upstream proposals.

    .venv/bin/python experiments/bench/report_load_profile.py --run DIR

DIR is a search run with a ``study.db`` (``experiments/bench/report.py --run DIR`` builds a
synthetic 1,000-trial one). Public API only: the CPU time of ``optuna.load_study(...)
.get_trials(deepcopy=False)``; of the distribution parsing it does (each parameter's JSON,
twice per trial), alone and memoised by string; and of ``import optuna.importance`` and
``import sklearn.ensemble`` in fresh interpreters that have already imported optuna.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import optuna


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{Path(args.run) / 'study.db'}"
    reads = []
    for _ in range(3):  # a fresh storage each time: Optuna caches finished trials
        storage = optuna.storages.RDBStorage(url)
        study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0],
                                  storage=storage)
        started = time.process_time()
        trials = study.get_trials(deepcopy=False)
        reads.append(time.process_time() - started)
    total = sorted(reads)[1]
    # What get_trials parses: each parameter's distribution JSON, twice (for params and for
    # distributions), though a study holds a handful of distinct strings.
    strings = [optuna.distributions.distribution_to_json(d)
               for t in trials for d in t.distributions.values()] * 2
    started = time.process_time()
    for text in strings:
        optuna.distributions.json_to_distribution(text)
    parse_s = time.process_time() - started
    started = time.process_time()
    memo = {}
    for text in strings:
        if text not in memo:
            memo[text] = optuna.distributions.json_to_distribution(text)
    memo_s = time.process_time() - started
    print(f"{len(trials)} trials, {len(strings) // 2} parameters, {len(memo)} distinct "
          "distributions")
    print(f"get_trials(deepcopy=False): CPU {total:.2f} s (median of 3)")
    print(f"  its {len(strings)} json_to_distribution calls alone: CPU {parse_s:.2f} s "
          f"({100 * parse_s / total:.0f}% of the read); memoised by string: {memo_s:.3f} s")
    for label, code in (("import optuna.importance", "import optuna.importance"),
                        ("  import sklearn.ensemble alone (its share, estimated)",
                         "import sklearn.ensemble")):
        timer = ("import time, optuna; t = time.process_time(); " + code +
                 "; print(time.process_time() - t)")
        times = sorted(float(subprocess.run([sys.executable, "-c", timer], capture_output=True,
                                            text=True, check=True).stdout) for _ in range(3))
        print(f"{label}: CPU {times[1]:.2f} s (median of 3 fresh interpreters after "
              "import optuna)")


if __name__ == "__main__":
    main()
