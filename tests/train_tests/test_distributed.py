"""Supernet training with torchrun: 2 CPU processes (gloo) against 1 process, same global
batch; and a distributed run killed mid-way resumes to the uninterrupted result."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from processes import kill_after_file

import nas
from nas.supernet import Supernet

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train_args(out, steps, *extra):
    return ["-m", "nas", "supernet", "train", "--space", TINY, "-o", str(out), "--steps",
            str(steps), "--batch-size", "32", "--optimizer", "sgd", "--no-eval", *extra]


def params(path):
    return torch.load(path / "supernet.pt", weights_only=True)


def run_together(*commands, env):
    """Run ``commands`` at once (their interpreters start in parallel: most of these tests'
    time); each must succeed."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:  # none left running when one failed or hung
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def update(state, init):
    return torch.cat([(state["model"][k] - init[k]).flatten() for k in init])


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    run_together([sys.executable, *train_args(tmp_path / "one", 3)],
                 [*TORCHRUN, *train_args(tmp_path / "two", 3)], env=ENV)
    torch.manual_seed(0)  # the training's own initialisation (seed 0)
    init = {k: v.detach().clone() for k, v in Supernet(
        nas.load_space(TINY), num_classes=10, in_chans=1).named_parameters()}
    a, b = params(tmp_path / "one"), params(tmp_path / "two")
    assert a["step"] == b["step"] == 3
    d1, d2 = update(a, init), update(b, init)
    assert d1.norm() > 1e-3  # the runs really trained
    # Not bit-identical: BatchNorm normalises each rank's 16 images with their own
    # statistics (as DDP without SyncBatchNorm). Gradients that were not averaged, or a
    # different batch or architecture per rank, fall far outside this.
    assert torch.nn.functional.cosine_similarity(d1, d2, dim=0) > 0.99
    assert (d1 - d2).norm() / d1.norm() < 0.15


def test_distributed_run_killed_and_resumed_matches_uninterrupted(tmp_path):
    # the uninterrupted run trains while the other is started and killed
    full = subprocess.Popen([*TORCHRUN, *train_args(tmp_path / "full", 12,
                                                    "--checkpoint-every", "3")],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = tmp_path / "killed"
        kill_after_file([*TORCHRUN, *train_args(out, 12, "--checkpoint-every", "3")],
                        out / "supernet.pt", env=ENV)
        stopped_at = params(out)["step"]
        assert 3 <= stopped_at < 12
        resumed = subprocess.run([*TORCHRUN, *train_args(out, 12, "--checkpoint-every", "3"),
                                  "--resume"], env=ENV, capture_output=True, text=True,
                                 timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        _, err = full.communicate(timeout=300)
        assert full.returncode == 0, err[-3000:]
    finally:
        if full.poll() is None:
            full.kill()
            full.wait()
    a, b = params(tmp_path / "full"), params(out)
    assert a["step"] == b["step"] == 12
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key


def test_streamed_photos_each_rank_decoding_its_share_match_one_process(tmp_path):
    from photos import photo_folder

    data = str(photo_folder(tmp_path / "photos", per_class=20))
    env = {**ENV, "NAS_CACHE_DIR": str(tmp_path / "cache")}
    extra = ("--data", data, "--resolution", "32", "--loader-workers", "1")
    run_together([sys.executable, *train_args(tmp_path / "one", 3, *extra)],
                 [*TORCHRUN, *train_args(tmp_path / "two", 3, *extra)], env=env)
    torch.manual_seed(0)
    init = {k: v.detach().clone() for k, v in Supernet(
        nas.load_space(TINY), num_classes=2, in_chans=3).named_parameters()}
    d1, d2 = update(params(tmp_path / "one"), init), update(params(tmp_path / "two"), init)
    assert d1.norm() > 1e-3
    # the same images and crops, split between the ranks (see the in-memory test above)
    assert torch.nn.functional.cosine_similarity(d1, d2, dim=0) > 0.99


def test_tar_shards_train_under_torchrun(tmp_path):
    from photos import photo_folder

    from nas.data import load_dataset
    from nas.data.shards import write_shards

    env = {**ENV, "NAS_CACHE_DIR": str(tmp_path / "cache")}
    os.environ["NAS_CACHE_DIR"] = env["NAS_CACHE_DIR"]
    try:
        folder = load_dataset(str(photo_folder(tmp_path / "photos", per_class=20)), "stream")
    finally:
        del os.environ["NAS_CACHE_DIR"]
    write_shards(folder, tmp_path / "shards", shard_size=7)  # 36 + ... images, uneven shards
    run = subprocess.run([*TORCHRUN, *train_args(tmp_path / "run", 4, "--data",
                                                 str(tmp_path / "shards"), "--resolution", "32",
                                                 "--batch-size", "4")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert params(tmp_path / "run")["step"] == 4
