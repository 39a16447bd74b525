"""Supernet training: learning, exact resume, SIGKILL safety, clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.errors import CheckpointError, RunError
from nas.files import load_checkpoint
from nas.train import SUPERNET_CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from nas.train import TrainConfig, load_supernet, train_supernet

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")


def config(**kw):
    base = dict(space=TINY, steps=12, batch_size=32, train_subset=1024, checkpoint_every=4,
                sampler="sandwich", sandwich_random=1)
    base.update(kw)
    return TrainConfig(**base)


def weights(run_dir):
    return load_checkpoint(Path(run_dir) / "supernet.pt", CHECKPOINT_FORMAT)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_resume_continues_exactly(tmp_path):
    train_supernet(config(), tmp_path / "straight", progress=False)
    run = train_supernet(config(), tmp_path / "split", progress=False, stop_after=6)
    assert run.step == 6
    assert load_checkpoint(tmp_path / "split" / "supernet.pt", CHECKPOINT_FORMAT)["step"] == 6
    run = train_supernet(None, tmp_path / "split", resume=True, progress=False)
    assert run.step == 12
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))


@pytest.mark.parametrize("sampler", ["uniform", "budget"])
def test_other_samplers_train(tmp_path, sampler):
    run = train_supernet(config(sampler=sampler, steps=4, budget=3e6, band=0.5),
                         tmp_path / sampler, progress=False)
    assert run.step == 4


def test_budget_sampler_refuses_an_impossible_band(tmp_path):
    with pytest.raises(RunError, match="no architecture"):
        train_supernet(config(sampler="budget", budget=1e12, band=0.1), tmp_path / "r",
                       progress=False)
    assert not (tmp_path / "r").exists()  # nothing written before the settings were checked


def test_sigkill_mid_run_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "supernet", "train", "--space", TINY, "-o", str(run_dir),
           "--steps", "40", "--batch-size", "32", "--train-subset", "1024",
           "--checkpoint-every", "4", "--sampler", "sandwich", "--sandwich-random", "1",
           "--no-eval"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log = run_dir / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("training never wrote two checkpoints")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run_dir / "supernet.pt", CHECKPOINT_FORMAT)["step"]
    assert 8 <= killed_at < 40 and killed_at % 4 == 0
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(run_dir / "supernet.pt", CHECKPOINT_FORMAT)["step"] == 40
    # same final weights as a run that was never interrupted
    train_supernet(config(steps=40), tmp_path / "straight", progress=False)
    assert_same_weights(weights(tmp_path / "straight"), weights(run_dir))


def test_run_directory_guards(tmp_path, capsys):
    train_supernet(config(steps=2), tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        train_supernet(config(steps=2), tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_supernet(None, tmp_path / "empty", resume=True, progress=False)
    code = main(["supernet", "train", "-o", str(tmp_path / "r"), "--resume", "--lr", "0.3"])
    assert code == 2 and "lr=0.002" in capsys.readouterr().err
    (tmp_path / "r" / "supernet.pt").write_bytes(b"torn")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train_supernet(None, tmp_path / "r", resume=True, progress=False)
    # a resume that repeats one of the run's settings is checked with the run's others
    # (here --budget, which --sampler budget needs), not refused for lacking them
    train_supernet(config(steps=2, sampler="budget", budget=8_000_000), tmp_path / "b",
                   progress=False)
    code = main(["supernet", "train", "-o", str(tmp_path / "b"), "--resume", "--sampler",
                 "budget", "--no-eval"])
    assert code == 0, capsys.readouterr().err


def test_ctrl_c_keeps_the_steps_done(tmp_path, monkeypatch):
    from nas.train import supernet as train_module

    calls = {"n": 0}
    real_step = train_module._train_step

    def interrupt_at_step_7(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(train_module, "_train_step", interrupt_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(config(checkpoint_every=100), tmp_path / "r", progress=False)
    assert load_checkpoint(tmp_path / "r" / "supernet.pt", CHECKPOINT_FORMAT)["step"] == 6


@pytest.mark.parametrize("argv, fragment", [
    (["--device", "gpu"], "--device must be"),
    (["--train-subset", "-1"], ">= 0"),
    (["--label-smoothing", "2"], "--label-smoothing must be in"),
    (["--lr", "nan"], "finite"),
    (["--epochs", "inf"], "finite"),
    (["--resolution", "4"], "--resolution must be"),
    (["--sampler", "random"], "--sampler must be one of"),
    (["--sampler", "budget"], "needs --budget"),
    (["--budget", "3OOM", "--sampler", "budget"], "bad budget '3OOM'"),
    (["--optimizer", "adam"], "sgd or adamw"),
])
def test_bad_settings_exit_2(tmp_path, capsys, argv, fragment):
    assert main(["supernet", "train", "--space", TINY, "-o", str(tmp_path / "x")] + argv) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written


def test_load_supernet_and_evaluate(tmp_path):
    from nas.evaluate import accuracy, evaluate, recalibrate

    train_supernet(config(steps=30), tmp_path / "r", progress=False)
    run = load_supernet(tmp_path / "r")
    assert run.step == 30
    assert json.loads((tmp_path / "r" / "config.json").read_text())["steps"] == 30
    calib, valid = run.loaders()
    arch = run.supernet.space.extreme_arch(True)
    model = recalibrate(run.supernet, arch, calib, batches=5)
    # recalibration changes only the copy: the supernet's statistics stay as trained
    assert not torch.equal(model.head[1].running_mean,
                           run.supernet.head_bn.running_mean[:arch.head.out])
    acc = evaluate(run.supernet, arch, valid, calib, batches=5)
    assert acc == accuracy(recalibrate(run.supernet, arch, calib, batches=5), valid)
    assert acc > 0.2  # 10 classes: chance is 0.1; 30 steps already learn something
