"""``nas search --workers N``: N worker processes on this machine sharing one study.

The parent has already trained or loaded the supernet and written the run's settings;
each worker (``python -m nas.search.workers RUN SUPERNET INDEX``) loads both and runs
:func:`nas.search.trials.run_trials` against the shared storage with ``cores // N`` torch
threads. The parent waits, and when a worker dies (killed, out of memory) it fails that
worker's running trial and queues it again, so another worker retries it; storages with
heartbeats (RDB) would also notice on their own after the grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import List

import optuna
import torch

from ..errors import NasError, RunError
from ..files import read_json
from ..runs import SearchDir
from .config import SearchConfig
from .storage import recover, storage_errors

__all__ = ["run_workers"]


def run_workers(config: SearchConfig, run: SearchDir, study: optuna.Study, log=print,
                echo: bool = True) -> int:
    """Start ``config.workers`` processes, wait for them; returns trials requeued.

    ``echo=False`` keeps the workers' progress lines off stdout (``--json``).
    """
    from .scoring import needs_supernet
    from .trials import supernet_file

    supernet = (str(supernet_file(config, run).resolve()) if needs_supernet(config.estimator)
                else "")
    out = None if echo else subprocess.DEVNULL
    procs: List[subprocess.Popen] = [
        subprocess.Popen([sys.executable, "-m", "nas.search.workers", str(run.path), supernet,
                          str(i)], stdout=out)
        for i in range(config.workers)]
    log(f"started {len(procs)} workers: pids {', '.join(str(p.pid) for p in procs)}")
    requeued, failed = 0, 0
    host = socket.gethostname()
    try:
        alive = list(procs)
        while alive:
            time.sleep(0.5)
            for proc in list(alive):
                code = proc.poll()
                if code is None:
                    continue
                alive.remove(proc)
                if code != 0:
                    failed += 1
                    n = recover(study, worker=f"{host}:{proc.pid}")
                    requeued += n
                    log(f"worker {proc.pid} exited with {code}; "
                        f"{n} running trial(s) queued again for the other workers")
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait()
            recover(study, worker=f"{host}:{proc.pid}")  # left to the next run
        raise
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if failed and done < config.trials:
        raise RunError(f"{failed} of {len(procs)} workers failed and the study holds {done} of "
                       f"{config.trials} trials (see the workers' errors above); rerun to "
                       "continue")
    return requeued


def main(argv=None) -> int:
    from ..train import load_supernet
    from .trials import run_trials

    run_dir, supernet, index = (argv or sys.argv[1:])[:3]
    run = SearchDir(run_dir)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported below
    try:
        config = SearchConfig.from_dict(read_json(run.config, "search configuration"),
                                        str(run.config), base=run.path)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
        sn = load_supernet(supernet, config.device) if supernet else None
        with storage_errors(config.storage):
            run_trials(config, run, sn, log=lambda m: print(m, flush=True),
                       prefix=f"[worker {index}] ")
    except KeyboardInterrupt:
        return 130
    except NasError as e:
        print(f"nas: error: [worker {index}] {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nas: error: [worker {index}] {e.filename or ''}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
