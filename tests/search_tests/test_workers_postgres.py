"""Several search workers on one PostgreSQL study: exact total, no duplicate, no trial left
RUNNING, and a killed worker's trial retried (by the parent of local workers, and by
heartbeats between independent workers as on several hosts).

Starts a throwaway PostgreSQL server from Debian's ``postgresql`` package (`make test`
installs it when run as root); skipped where it is absent.
"""

import os
import subprocess
import sys
from pathlib import Path

import optuna
from processes import check_study, kill_mid_evaluation

from nas.train import TrainConfig, train_supernet

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def search_cmd(run_dir, storage, study, supernet, trials, *extra):
    # 3,000 validation images make evaluation the slow part of a trial (~1 s), so a
    # kill can land mid-evaluation reliably.
    return [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY,
            "--storage", storage, "--study", study, "--supernet", supernet,
            "--trials", str(trials), "--val-images", "3000", "--recalibration-batches", "1",
            "-o", str(run_dir), *extra]


def test_three_local_workers_one_killed(postgres, tiny_supernet, tmp_path):
    supernet = tiny_supernet
    cmd = search_cmd(tmp_path / "run", postgres, "three", supernet, 12, "--workers", "3")
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid, killed = kill_mid_evaluation(postgres, "three")
    out, _ = parent.communicate(timeout=600)
    assert parent.returncode == 0, out
    assert f"worker {pid} exited with -9" in out
    check_study(postgres, "three", 12, killed)
    assert (tmp_path / "run" / "trials.csv").exists()


def test_independent_workers_recover_by_heartbeat(postgres, tiny_supernet, tmp_path):
    """Two workers as on two hosts (no common parent): the survivor fails the dead worker's
    trial once its heartbeat is stale and retries it."""
    env = {**os.environ, "NAS_HEARTBEAT_GRACE_S": "4"}
    procs = [subprocess.Popen(search_cmd(tmp_path / f"host{i}", postgres, "hosts", tiny_supernet,
                                         10),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for i in range(2)]
    pid, killed = kill_mid_evaluation(postgres, "hosts")
    survivor = next(p for p in procs if p.pid != pid)
    out, _ = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, out
    next(p for p in procs if p.pid == pid).wait()
    check_study(postgres, "hosts", 10, killed)


def test_workers_refuse_sqlite_and_a_different_supernet(postgres, tiny_supernet, tmp_path,
                                                        capsys):
    supernet = tiny_supernet
    from nas.cli import main

    other = tmp_path / "other"
    train_supernet(TrainConfig(space=TINY, steps=2, checkpoint_every=10**6), other,
                   progress=False)
    base = ["search", "--budget", "8M", "--space", TINY, "--storage", postgres, "--study",
            "mixed", "--trials", "2", "--val-images", "100"]
    assert main([*base, "--supernet", supernet, "-o", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main([*base, "--supernet", str(other / "supernet.pt"), "-o",
                 str(tmp_path / "c")]) == 2
    assert "another supernet" in capsys.readouterr().err
