"""Several search workers on one PostgreSQL study: exact total, no duplicate, no trial left
RUNNING, and a killed worker's trial retried (by the parent of local workers, and by
heartbeats between independent workers as on several hosts).

Starts a throwaway PostgreSQL server from Debian's ``postgresql`` package (`make test`
installs it when run as root); skipped where it is absent.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from nas.train import TrainConfig, train_supernet
from processes import check_study, kill_mid_evaluation

TINY = str(Path(__file__).parent / "spaces" / "tiny.yaml")
INITDB = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
pytestmark = pytest.mark.skipif(not INITDB, reason="Debian postgresql is not installed")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on a free loopback port, trust auth, deleted afterwards."""
    bin_dir = INITDB[-1].parent
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))  # not under pytest's 0700 tmp dirs
    as_user = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust",
                    "-U", "nas"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-w", "-l",
                    str(root / "log"), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)
    yield f"postgresql://nas@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                    "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    path = tmp_path_factory.mktemp("sn")
    train_supernet(TrainConfig(space=TINY, steps=8, checkpoint_every=10**6), path,
                   progress=False)
    return str(path / "supernet.pt")


def search_cmd(run_dir, storage, study, supernet, trials, *extra):
    # 3,000 validation images make evaluation the slow part of a trial (~1 s), so a
    # kill can land mid-evaluation reliably.
    return [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY,
            "--storage", storage, "--study", study, "--supernet", supernet,
            "--trials", str(trials), "--val-images", "3000", "--recalibration-batches", "1",
            "-o", str(run_dir), *extra]


def test_three_local_workers_one_killed(postgres, supernet, tmp_path):
    cmd = search_cmd(tmp_path / "run", postgres, "three", supernet, 12, "--workers", "3")
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid, killed = kill_mid_evaluation(postgres, "three")
    out, _ = parent.communicate(timeout=600)
    assert parent.returncode == 0, out
    assert f"worker {pid} exited with -9" in out
    check_study(postgres, "three", 12, killed)
    assert (tmp_path / "run" / "trials.csv").exists()


def test_independent_workers_recover_by_heartbeat(postgres, supernet, tmp_path):
    """Two workers as on two hosts (no common parent): the survivor fails the dead worker's
    trial once its heartbeat is stale and retries it."""
    env = {**os.environ, "NAS_HEARTBEAT_GRACE_S": "4"}
    procs = [subprocess.Popen(search_cmd(tmp_path / f"host{i}", postgres, "hosts", supernet, 10),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for i in range(2)]
    pid, killed = kill_mid_evaluation(postgres, "hosts")
    survivor = next(p for p in procs if p.pid != pid)
    out, _ = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, out
    next(p for p in procs if p.pid == pid).wait()
    check_study(postgres, "hosts", 10, killed)


def test_workers_refuse_sqlite_and_a_different_supernet(postgres, supernet, tmp_path, capsys):
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
