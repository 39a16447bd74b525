"""`nas train`: standalone training of one architecture, test accuracy, resume, inheritance."""

import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from processes import kill_after_file

import nas
from nas.arch import InputSpec
from nas.cli import main
from nas.train import RetrainConfig, retrain
from nas.train.standalone import _inherit

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")


def tiny_arch() -> str:
    return str(nas.load_space(TINY).sample(random.Random(1)))


def config(**kw):
    base = dict(arch=tiny_arch(), steps=12, batch_size=64, train_subset=1024,
                checkpoint_every=4)
    base.update(kw)
    return RetrainConfig(**base)


def test_metrics_and_reproducible_test_accuracy(tmp_path):
    a = retrain(config(steps=60, train_subset=4096), tmp_path / "a", progress=False)
    b = retrain(config(steps=60, train_subset=4096), tmp_path / "b", progress=False)
    assert a["test_accuracy"] == b["test_accuracy"]  # same seed, same result (CPU)
    assert 0.3 < a["test_accuracy"] <= 1  # well above chance (10 classes) after 60 steps
    assert a["test_images"] == 10_000 and a["steps"] == 60 and a["seed"] == 0
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["test_accuracy"] == a["test_accuracy"]
    # Issue 16: what metrics.json states describes the network trained (Fashion-MNIST's one
    # channel and ten classes, 28 px), not the 3x64x64-1000 architecture it was given.
    given = nas.Architecture.parse(tiny_arch())
    assert saved["arch"] == str(replace(given, input=InputSpec(1, 28, 10)))
    assert saved["input"] == {"channels": 1, "resolution": 28, "classes": 10}
    net = nas.build_model(nas.Architecture.parse(saved["arch"]))
    net.load_state_dict(torch.load(tmp_path / "a" / "weights.pt", weights_only=True))  # strict
    assert saved["params"] == sum(p.numel() for p in net.parameters())
    counter = FlopCountAnalysis(net.eval(), torch.zeros(1, 1, 28, 28))
    counter.unsupported_ops_warnings(False)
    assert saved["flops"] == counter.total()
    target = nas.count_cost(given)
    assert saved["target"]["arch"] == str(given)
    assert (saved["target"]["flops"], saved["target"]["params"]) == (target.flops, target.params)
    assert saved["latency_ms"] > 0 and saved["target"]["latency_ms"] > 0


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    full = retrain(config(), tmp_path / "full", progress=False)
    assert retrain(config(), tmp_path / "split", progress=False, stop_after=6) == \
        {"stopped_at": 6}
    resumed = retrain(None, tmp_path / "split", resume=True, progress=False)
    assert resumed["test_accuracy"] == full["test_accuracy"]
    wa = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "split" / "weights.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sigkill_then_resume(tmp_path):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "nas", "train", "--arch", tiny_arch(), "--steps", "40",
           "--batch-size", "64", "--train-subset", "2048", "--checkpoint-every", "4", "-o",
           str(out)]
    kill_after_file(cmd, out / "checkpoint.pt")
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 4 <= step < 40 and not (out / "metrics.json").exists()
    done = subprocess.run([sys.executable, "-m", "nas", "train", "-o", str(out), "--resume"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 40


def test_inherited_weights_fit_where_shapes_match(tmp_path):
    arch = nas.Architecture.parse(tiny_arch())
    source = nas.build_model(arch, num_classes=10, in_chans=1)
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    target = nas.build_model(arch, num_classes=10, in_chans=3)  # other data: 3 channels
    fresh = _inherit(target, str(tmp_path / "weights.pt"))
    assert fresh == ["stem.0.weight"]
    assert torch.equal(target.classifier.weight, source.classifier.weight)


def test_train_errors_exit_2(tmp_path, capsys):
    for argv in (["train", "-o", str(tmp_path / "a")],
                 ["train", "-o", str(tmp_path / "b"), "--resume"],
                 ["train", "--arch", "bogus", "-o", str(tmp_path / "c")],
                 ["train", "--arch", tiny_arch(), "--init", "inherited", "-o", str(tmp_path / "d")],
                 ["train", "--from", str(tmp_path), "-o", str(tmp_path / "e")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nas: error:") and "Traceback" not in err


def test_from_an_export_trains_on_its_weights_data_unless_told(tmp_path):
    """``nas train --from EXPORT`` without ``--data`` takes the data its weights were
    trained on (a user's 3-class photos trained as 10-class Fashion-MNIST otherwise)."""
    from nas.train import retrain_config

    export = tmp_path / "export"
    export.mkdir()
    photos = str(tmp_path / "photos")
    (export / "arch.json").write_text(json.dumps({"arch": tiny_arch(),
                                                  "weights": {"data": photos}}))
    torch.save({}, export / "weights.pt")
    from nas.errors import UsageError

    with pytest.raises(UsageError, match="trained on .*photos \\(arch.json weights.data\\), "
                                         "which is not here: give --data"):
        retrain_config({}, from_dir=str(export))  # an export copied to another machine
    (tmp_path / "photos").mkdir()
    assert retrain_config({}, from_dir=str(export)).data == photos
    assert retrain_config({"data": "fashion-mnist"}, from_dir=str(export)).data == "fashion-mnist"
    (export / "arch.json").write_text(json.dumps({"arch": tiny_arch()}))  # no weights' data
    assert retrain_config({}, from_dir=str(export)).data == RetrainConfig().data
