"""nas export --int8: model.int8.onnx beside model.onnx, a valid int8 QDQ graph with
model.onnx's names and dynamic axes, calibrated on the run's data, and checked on
validation images (the check recomputed here against model.py + weights.pt). About 1 min
(ONNX exports of the tiny search's networks)."""

import json

import onnx
import pytest
import torch

import nas
from nas.cli import main
from nas.export import load_exported
from nas.train import heldout_batches

pytest.importorskip("onnxruntime")


def _trial(run_dir) -> int:
    from nas.search import open_run

    return open_run(run_dir).feasible[0]["trial"]


def test_int8_export_of_a_trial_is_a_checked_int8_twin_of_model_onnx(search_run_dir, tmp_path,
                                                                    capsys):
    import onnxruntime as ort

    out = tmp_path / "e"
    assert main(["export", str(search_run_dir), "--trial", str(_trial(search_run_dir)),
                 "--int8", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "int8: " in printed and "ms int8 vs" in printed and "validation images" in printed
    int8 = onnx.load(str(out / "model.int8.onnx"))
    onnx.checker.check_model(int8)
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops
    fp32 = ort.InferenceSession(str(out / "model.onnx"))
    session = ort.InferenceSession(str(out / "model.int8.onnx"))
    for a, b in ((fp32.get_inputs(), session.get_inputs()),
                 (fp32.get_outputs(), session.get_outputs())):
        assert [(x.name, x.shape) for x in a] == [(x.name, x.shape) for x in b]
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    # what arch.json states, recomputed: the same 256 validation images, model.py's network
    meta = json.loads((out / "arch.json").read_text())["int8"]
    assert meta["file"] == "model.int8.onnx" and "per channel" in meta["quantisation"]
    assert meta["calibration"]["data"] == "fashion-mnist"
    assert meta["calibration"]["calibration_images"] == 16
    network = load_exported(out, "int8_export_model").build_model().eval()
    network.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    x, _ = next(heldout_batches("fashion-mnist", limit=256))
    with torch.no_grad():
        expected = network(x)
    got = torch.cat([torch.from_numpy(session.run(None, {"input": x[i:i + 32].numpy()})[0])
                     for i in range(0, len(x), 32)])  # a dynamic batch axis
    check = meta["check"]
    assert check["heldout_images"] == 256
    assert (got - expected).abs().max().item() == pytest.approx(check["max_abs_diff"], rel=1e-5)
    assert 0 < check["max_abs_diff"] < 0.2 * expected.abs().max().item()
    agree = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agree == pytest.approx(check["top1_agreement"])
    # an export written again without --int8 leaves no int8 file of the other network
    assert main(["export", str(search_run_dir), "--trial", str(_trial(search_run_dir)),
                 "-o", str(out), "--force"]) == 0
    assert not (out / "model.int8.onnx").exists()


def test_int8_of_a_backbone_keeps_its_levels_and_dynamic_size(search_run_dir, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "b"
    assert main(["export", str(search_run_dir), "--trial", str(_trial(search_run_dir)),
                 "--backbone", "--int8", "-o", str(out)]) == 0
    fp32 = ort.InferenceSession(str(out / "model.onnx"))
    session = ort.InferenceSession(str(out / "model.int8.onnx"))
    assert [o.name for o in session.get_outputs()] == [o.name for o in fp32.get_outputs()]
    x = torch.randn(2, 1, 48, 64).numpy()  # another size than the data's 28x28
    assert [o.shape for o in session.run(None, {"input": x})] == \
        [o.shape for o in fp32.run(None, {"input": x})]
    assert json.loads((out / "arch.json").read_text())["int8"]["check"]["top1_agreement"] is None


def test_int8_without_a_run_needs_calibration_images(tmp_path, capsys):
    arch = str(nas.load_space("mixnet_s").sample(0))
    assert main(["export", "--arch", arch, "--int8", "-o", str(tmp_path / "a")]) == 2
    assert main(["export", "--arch", arch, "--calib", "fashion-mnist",
                 "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--calib DATA" in err[0] and "add --int8" in err[1]
    assert not (tmp_path / "a").exists()


def test_int8_of_an_architecture_calibrates_on_the_given_data(spaces, tmp_path, capsys):
    """--arch has no weights: model.onnx and model.int8.onnx hold fresh ones (for size and
    latency), calibrated on grey Fashion-MNIST images repeated to the target's 3 channels
    at its 64 px."""
    import onnxruntime as ort

    out = tmp_path / "a"
    arch = spaces["tiny"].sample(0)
    assert main(["export", "--arch", str(arch), "--int8", "--calib", "fashion-mnist",
                 "-o", str(out)]) == 0
    assert "fresh weights" in capsys.readouterr().out
    assert not (out / "weights.pt").exists()
    session = ort.InferenceSession(str(out / "model.int8.onnx"))
    assert session.get_inputs()[0].shape[1:] == [3, 64, 64]
    meta = json.loads((out / "arch.json").read_text())["int8"]
    assert meta["check"]["top1_agreement"] is None  # fresh weights: classes mean nothing
    assert "fresh weights" in meta["check"]["against"]


def test_a_low_top1_agreement_is_flagged():
    """A new user's int8 export agreed with the float network on 76.7% of the images, and
    nothing said so."""
    from pathlib import Path

    from nas.export.int8 import INT8_AGREEMENT, Int8Report

    def report(agreement):
        return Int8Report(Path("model.int8.onnx"), 1_000, 4_000, 2.0, 1.0, 0.5, 10.0,
                          agreement, 256, 16, 1.0, "QDQ", "model.onnx", [3, 32, 32])

    flagged = report(0.767).lines(backbone=False)
    assert flagged[-1].startswith("warning:") and "23.3% of 256 images" in flagged[-1]
    assert not any("warning" in line for line in report(INT8_AGREEMENT).lines(False))
    assert not any("warning" in line for line in report(None).lines(True))  # a backbone
