"""The exported model.py must stand alone: torch + the standard library only."""

import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import SPACE_NAMES
from standalone import NO_NAS

import nas
from nas.errors import ExportError
from nas.export.source import _literal

# Runs in a fresh interpreter where importing nas fails; checks every export given in one
# process (an interpreter and torch start once: ~3 s each for ~25 exports), each model.py
# loaded as its own module from its own folder.
STANDALONE = NO_NAS + textwrap.dedent("""
    import importlib.util
    import json
    import torch
    results = []
    for k, (folder, kwargs) in enumerate(json.loads(sys.argv[1])):
        spec = importlib.util.spec_from_file_location(f"model_{k}", folder + "/model.py")
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        net = model.build_model(**kwargs).eval()
        try:
            net.load_state_dict(torch.load(folder + "/weights.pt", weights_only=True))
        except FileNotFoundError:
            pass
        torch.manual_seed(0)
        shape = (2, kwargs.get("in_chans", model.IN_CHANS), model.RESOLUTION, model.RESOLUTION)
        with torch.no_grad():
            out = net(torch.randn(*shape))
        torch.save(out, folder + "/out.pt")
        results.append({"params": sum(p.numel() for p in net.parameters()),
                         "shape": list(out.shape)})
    print(json.dumps({"results": results,
                      "nas_loaded": any(m == "nas" or m.startswith("nas.") for m in sys.modules)}))
""")


def run_standalone(*jobs):
    """``(folder, build_model kwargs)`` jobs, run in one fresh interpreter without nas:
    ``({"params", "shape"} per job, whether nas got loaded)``."""
    run = subprocess.run([sys.executable, "-c", STANDALONE,
                          json.dumps([(str(folder), kwargs) for folder, kwargs in jobs])],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    return out["results"], out["nas_loaded"]


@pytest.fixture(scope="module")
def standalone(spaces, tmp_path_factory):
    """Every space's sampled architecture exported, and what the exported model.py built
    in a fresh interpreter: ``{name: (arch, folder, result)}`` plus ``nas_loaded``."""
    root = tmp_path_factory.mktemp("standalone")
    archs = {name: spaces[name].sample(random.Random(3)) for name in SPACE_NAMES}
    for name, arch in archs.items():
        nas.export_arch(arch, root / name)
    results, nas_loaded = run_standalone(*((root / name, {}) for name in archs))
    return {name: (arch, root / name, r) for (name, arch), r in zip(archs.items(), results)}, \
        nas_loaded


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_exported_model_stands_alone(standalone, name):
    exports, nas_loaded = standalone
    arch, out, result = exports[name]
    model = nas.build_model(arch)
    assert result["params"] == sum(p.numel() for p in model.parameters())
    assert result["shape"] == [2, arch.input.classes]
    assert nas_loaded is False
    meta = json.loads((out / "arch.json").read_text())
    assert nas.Architecture.parse(meta["arch"]) == arch
    assert nas.Architecture.from_dict(meta["structure"]) == arch
    assert (meta["flops"], meta["params"]) == tuple(vars(nas.count_cost(arch)).values())


def test_exported_model_reproduces_nas_outputs_with_its_weights_and_adapts(spaces, tmp_path):
    arch = spaces["edge_cases"].sample(random.Random(9))
    nas.export_arch(arch, tmp_path / "weights")
    model = nas.build_model(arch).eval()
    torch.save(model.state_dict(), tmp_path / "weights" / "weights.pt")
    nas.export_arch(spaces["mixnet_s"].sample(0), tmp_path / "adapt")
    (_, adapted), _ = run_standalone((tmp_path / "weights", {}),
                                     (tmp_path / "adapt", {"num_classes": 10, "in_chans": 1}))
    assert adapted["shape"] == [2, 10]
    torch.manual_seed(0)
    x = torch.randn(2, arch.input.channels, arch.input.resolution, arch.input.resolution)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.load(tmp_path / "weights" / "out.pt", weights_only=True),
                               expected, rtol=0, atol=1e-6)


def test_export_refuses_to_overwrite(spaces, tmp_path):
    arch = spaces["mixnet_s"].sample(0)
    nas.export_arch(arch, tmp_path)
    with pytest.raises(ExportError, match="already holds an export"):
        nas.export_arch(arch, tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"stale")
    nas.export_arch(spaces["mixnet_m"].sample(0), tmp_path, force=True)
    assert not (tmp_path / "weights.pt").exists()  # weights of another network are not kept


@pytest.mark.parametrize("value", ['relu"); import os; ("', "__import__('os')", "a\nb", "relu\n",
                                   "Relu", 1.5, None, (1, "2"), [1, 2]])
def test_literal_writer_refuses_anything_unvalidated(value):
    with pytest.raises(ExportError):
        _literal(value)


def test_generated_code_is_only_the_table_and_the_library(spaces):
    source = nas.model_source(spaces["mixnet_300m"].sample(1))
    compile(source, "model.py", "exec")
    imports = {line.strip() for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports == {"import torch", "from torch import nn",
                       "from typing import Dict, List, Optional, Sequence"}


def _expected_levels(arch, height, width):
    """Per reduction level ``(channels, H, W)``, from each layer's size arithmetic."""
    from nas.arch import out_size_of
    from nas.channels import conv_out_size

    stem = arch.stem
    h, w = (conv_out_size(n, stem.kernel, stem.stride, 0 if stem.patch else None)
            for n in (height, width))
    levels = [(stem.out, h, w)]
    for layer in arch.layers():
        h, w = out_size_of(layer.kind, h, layer.stride), out_size_of(layer.kind, w, layer.stride)
        if layer.stride > 1:
            levels.append((layer.out_ch, h, w))
        else:
            levels[-1] = (layer.out_ch, h, w)
    return levels


# Found networks (random points of the new spaces) and presets, as detection backbones.
BACKBONES = [("mobilenetv4_uib", 1), ("mobilenetv3_mixconv", 2), ("convmixer_mix", 0),
             ("mobilenetv4_conv_small", 0), ("mobilenetv3_large_100", 0), ("mixnet_s", 0)]


@pytest.mark.parametrize("name, seed", BACKBONES)
def test_backbone_returns_the_advertised_levels(spaces, name, seed):
    arch = spaces[name].sample(seed)
    net = nas.build_model(arch, features_only=True).eval()
    reductions = net.feature_info.reduction()
    if name != "convmixer_mix":  # ConvMixer has one level (its patch size)
        assert reductions == [8, 16, 32]
    for height, width in ((224, 224), (256, 320)):
        levels = _expected_levels(arch, height, width)
        with torch.no_grad():
            out = net(torch.randn(1, 3, height, width))
        assert [tuple(t.shape[1:]) for t in out] == [levels[i] for i in net.out_indices]
        assert net.feature_info.channels() == [t.shape[1] for t in out]
        if name != "convmixer_mix":
            assert [height // r for r in reductions] == [t.shape[2] for t in out]


def test_backbone_export_and_its_onnx(tmp_path):
    """nas export --backbone: model.py's feature maps equal nas's, and so do ONNX's (at
    the target size and at another, non-square one), though the export's example is a
    28x28 proxy image and an SE sits at stride 32 (a 1x1 map there, which torch.export
    would specialise)."""
    ort = pytest.importorskip("onnxruntime")
    arch = nas.Architecture.parse(
        "3x64x64-10/stem_c16/ds_r1_k3.5_c16/ir_r1_k3_s2_e3_c24/ir_r1_k3.5_s2_e3_hse0.25_c32/"
        "uir_r1_a3_k0_s2_e2_c40/adown_c48,ir_r1_k3_e2_se0.25_c48/head_f64")
    torch.manual_seed(0)
    model = nas.build_model(arch).eval()
    from nas.export import ExportForm, export_network, load_exported

    form = ExportForm(backbone=True, out_indices=(2, 3, 4))
    paths, deltas = export_network(model, arch, tmp_path, torch.randn(2, 3, 28, 28), form)
    assert deltas == {"model": 0.0, "torchscript": 0.0}
    meta = json.loads((tmp_path / "arch.json").read_text())
    assert meta["out_indices"] == [2, 3, 4]
    assert [f["reduction"] for f in meta["features"]] == [2, 4, 8, 16, 32]
    assert [f["shape"] for f in meta["features"]][2:] == [[32, 8, 8], [40, 4, 4], [48, 2, 2]]
    exported = load_exported(tmp_path, "backbone_model").build_model()
    exported.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    exported.eval()
    pytest.importorskip("onnxscript")  # torch's ONNX exporter
    assert tmp_path / "model.onnx" in paths
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["stride8", "stride16", "stride32"]
    for shape in ((1, 3, 64, 64), (2, 3, 96, 128)):
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = exported(x)
        got = session.run(None, {"input": x.numpy()})
        for e, g in zip(expected, got):
            assert tuple(g.shape) == tuple(e.shape)
            torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-4, atol=1e-4)
