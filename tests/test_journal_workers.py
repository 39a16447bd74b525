"""Shared storage without heartbeats (a journal file): a killed worker's trial is found by
its dead process id and retried; SQLite is refused for several workers."""

import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main
from nas.train import TrainConfig, train_supernet
from processes import check_study, kill_mid_evaluation

TINY = str(Path(__file__).parent / "spaces" / "tiny.yaml")


def test_killed_journal_worker_is_retried_on_rerun(tmp_path):
    train_supernet(TrainConfig(space=TINY, steps=4, checkpoint_every=10**6), tmp_path / "sn",
                   progress=False)
    storage = f"journal:{tmp_path / 'study.journal'}"
    cmd = [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY,
           "--storage", storage, "--study", "j", "--supernet", str(tmp_path / "sn" / "supernet.pt"),
           "--trials", "6", "--val-images", "3000", "--recalibration-batches", "1",
           "-o", str(tmp_path / "run")]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid, killed = kill_mid_evaluation(storage, "j")
    first.wait()
    assert pid == first.pid
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    check_study(storage, "j", 6, killed)


@pytest.mark.parametrize("storage", ["", "sqlite:///x.db"])
def test_several_workers_refuse_sqlite(tmp_path, capsys, storage):
    argv = ["search", "--budget", "8M", "--space", TINY, "--workers", "2", "-o",
            str(tmp_path / "a")] + (["--storage", storage] if storage else [])
    assert main(argv) == 2
    assert "SQLite" in capsys.readouterr().err
