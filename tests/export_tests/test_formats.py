"""nas export --format: each mobile format converted in a process of its own, with a time
limit, and checked against torch on the same inputs where its runtime runs on Linux.

NCNN, MNN and Core ML run in `make test` (their extras are dev dependencies; ~40 s here);
TFLite is opt-in (litert-torch pulls JAX and transformers: pip install 'nas[tflite]').
"""

import json

import pytest
import torch
from standalone import moved_statistics

import nas
from nas.cli import main
from nas.errors import ExportError
from nas.export import ExportForm, convert_export, export_arch, export_network

# Small, but with every kind of layer a converter must map: MixConv split and concat, SE,
# hard-swish SE, UIR, ADown's average pool, grouped 1x1 convs, a residual add.
ARCH = ("3x64x64-10/stem_c16/ds_r1_k3.5_c16/ir_r1_k3_a2_p2_s2_e3_c24/"
        "ir_r1_k3.5_s2_e3_hse0.25_c32/uir_r1_a3_k0_s2_e2_c40/adown_c48,"
        "ir_r1_k3_e2_se0.25_c48/head_f64")


def _inputs(n=2, size=64):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, size, size, generator=g) for _ in range(n)]


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    """An export with weights whose BatchNorm statistics are not the identity (so a
    converter that dropped or misplaced one would show)."""
    arch = nas.Architecture.parse(ARCH)
    torch.manual_seed(0)
    model = moved_statistics(nas.build_model(arch))
    out = tmp_path_factory.mktemp("export")
    export_network(model.eval(), arch, out, torch.randn(2, 3, 64, 64), ExportForm(), onnx=False)
    return out


@pytest.mark.parametrize("fmt", ["ncnn", "mnn"])
def test_a_format_with_a_linux_runtime_matches_torch(trained_export, fmt):
    pytest.importorskip({"ncnn": "pnnx", "mnn": "MNN"}[fmt])
    got = convert_export(trained_export, [fmt], _inputs())[fmt]
    assert got.delta is not None and got.delta < 1e-4
    assert got.runtime and got.seconds > 0
    assert all(p.is_file() and p.stat().st_size > 0 for p in got.paths)
    assert got.paths[0].parent == trained_export


def test_tflite_matches_torch(trained_export):
    """Opt-in: needs pip install 'nas[tflite]' (litert-torch, ai-edge-litert)."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    got = convert_export(trained_export, ["tflite"], _inputs())["tflite"]
    assert got.delta < 1e-4 and (trained_export / "model.tflite").stat().st_size > 0


def test_a_backbone_is_checked_level_by_level(tmp_path):
    """Several outputs: each feature map compared with its own (the runtime's outputs
    come back in the backbone's order), and without weights.pt the fresh seeded weights."""
    pytest.importorskip("pnnx")
    arch = nas.Architecture.parse(ARCH)
    export_arch(arch, tmp_path, form=ExportForm(backbone=True))
    got = convert_export(tmp_path, ["ncnn"], _inputs(1))["ncnn"]
    assert got.delta < 1e-4
    param = (tmp_path / "model.ncnn.param").read_text()
    assert all(f" out{i}" in param for i in range(3))


def test_a_converter_past_its_time_limit_is_stopped(trained_export):
    pytest.importorskip("MNN")
    # the worker's start alone (torch, nas) takes longer than this
    with pytest.raises(ExportError, match="ran past 0.2 s and was stopped"):
        convert_export(trained_export, ["mnn"], _inputs(1), timeout=0.2)


def test_a_missing_extra_is_one_line_naming_the_pip_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    # both of the extra's modules missing, whether or not this machine has them (CI has not)
    missing = {"litert_torch", "ai_edge_litert"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else real(name, *a))
    code = main(["export", "--arch", ARCH, "--format", "tflite", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == ("nas: error: --format tflite needs litert_torch, ai_edge_litert: "
                           "pip install 'nas[tflite]'")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_the_mnn_worker_never_imports_the_usage_logger():
    """MNN's converter module imports a logger that pip-installs a logging SDK and sends
    usage data; the worker makes it unimportable before the converter is imported."""
    import subprocess
    import sys

    pytest.importorskip("MNN")
    code = ("import sys\n"
            "from nas.export.convert import _block_mnn_telemetry\n"
            "_block_mnn_telemetry()\n"
            "from MNN.tools.mnnconvert import convert, mnn_logger\n"
            "print('RESULT', mnn_logger is None, 'aliyun' in sys.modules, "
            "sys.modules['MNN.tools.utils.log'] is None, flush=True)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PIP_NO_INDEX": "1", "PATH": "/nonexistent"})
    assert run.returncode == 0, run.stderr
    # MNN prints its CPU's features on the same stream
    result = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    assert result.split()[1:] == ["True", "False", "True"]


def test_the_command_prints_each_check_and_force_replaces_a_core_ml_folder(tmp_path, capsys):
    """Core ML is converted, not run (no delta); an overwrite removes its folder."""
    pytest.importorskip("pnnx")
    pytest.importorskip("coremltools")
    out = tmp_path / "net"
    assert main(["export", "--arch", ARCH, "--format", "ncnn", "coreml", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ncnn: converted in" in text and "max |Δ| vs torch" in text
    assert "coreml: converted in" in text and "converted only" in text  # macOS predicts
    assert (out / "model.mlpackage").is_dir() and (out / "model.ncnn.param").is_file()
    stale = out / "model.mlpackage" / "stale"
    stale.write_text("from the earlier export")
    assert main(["export", "--arch", ARCH, "-o", str(out), "--force"]) == 0
    assert not (out / "model.mlpackage").exists() and not (out / "model.ncnn.bin").exists()
    assert json.loads((out / "arch.json").read_text())["arch"] == str(nas.Architecture.parse(ARCH))
