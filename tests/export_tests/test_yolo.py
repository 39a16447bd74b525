"""nas export --yolo: the backbone as an ultralytics plugin and a detector YAML, trained one
epoch on a tiny synthetic detection set, reloaded in a fresh process, used to predict and
exported to ONNX, all offline (~40 s here).

ultralytics reaches out by default (pip installs, usage events, a font from GitHub): every
process here runs with YOLO_OFFLINE=1, YOLO_AUTOINSTALL=false, a temporary YOLO_CONFIG_DIR
holding a font, plots off, and tests/offline/sitecustomize.py, which refuses and records
any network use: the test asserts that there was none.
"""

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from standalone import moved_statistics

import nas
from nas.cli import main
from nas.export import ExportForm, export_network

if importlib.util.find_spec("ultralytics") is None:  # a dev dependency: `make test` runs this
    pytest.skip("ultralytics is not installed: pip install 'nas[yolo]'", allow_module_level=True)

TESTS = Path(__file__).parents[1]
ARCH = ("3x64x64-10/stem_c16/ds_r1_k3.5_c16/ir_r1_k3_s2_e3_c24/ir_r1_k3.5_s2_e3_hse0.25_c32/"
        "uir_r1_a3_k0_s2_e2_c40/adown_c48,ir_r1_k3_e2_se0.25_c48/head_f64")


def _synthetic_set(root: Path, n: int = 8, size: int = 64) -> Path:
    """``n`` images of one box each on a plain background, YOLO labels; val = train."""
    rng = random.Random(0)
    from PIL import Image

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            img = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
            w, h = rng.randint(12, 30), rng.randint(12, 30)
            x, y = rng.randint(0, size - w), rng.randint(0, size - h)
            img.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + w, y + h))
            img.save(root / "images" / split / f"{i}.jpg")
            (root / "labels" / split / f"{i}.txt").write_text(
                f"0 {(x + w / 2) / size} {(y + h / 2) / size} {w / size} {h / size}\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: box\n")
    return data


def _offline_env(tmp: Path, export: Path) -> dict:
    config = tmp / "yolo-config"
    (config / "Ultralytics").mkdir(parents=True, exist_ok=True)
    # ultralytics' dataset check asks GitHub for Arial.ttf (a font for its plots) unless
    # its settings folder, YOLO_CONFIG_DIR/Ultralytics, has one
    import matplotlib

    shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf",
                config / "Ultralytics" / "Arial.ttf")
    env = dict(os.environ, YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1",
               YOLO_AUTOINSTALL="false", PIP_NO_INDEX="1",
               NAS_NETWORK_LOG=str(tmp / "network.log"),
               PYTHONPATH=os.pathsep.join([str(TESTS / "offline"), str(export)]))
    return env


def _run(code: str, env: dict, cwd: Path, args=()) -> str:
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                         cwd=cwd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def yolo_export(tmp_path_factory):
    """An export with weights (random, BN statistics moved) and its YOLO plugin."""
    arch = nas.Architecture.parse(ARCH)
    torch.manual_seed(0)
    model = moved_statistics(nas.build_model(arch))
    out = tmp_path_factory.mktemp("yolo") / "det"
    export_network(model.eval(), arch, out, torch.randn(2, 3, 64, 64),
                   ExportForm(backbone=True), onnx=False)
    from nas.export import Deploy, write_deploy

    write_deploy(out, arch, ExportForm(backbone=True), [], Deploy(yolo=True))
    return arch, out


# Run in a process of its own, as every use of ultralytics here: importing it changes the
# importing process for good (OMP_NUM_THREADS=1 for later subprocesses, a patched
# PIL.Image.open), which broke other tests of the suite when this file imported it.
PLUGIN_CHECK = """
    import json, sys
    import torch
    import nas.export
    import ultralytics.nn.tasks

    out, ident, rgb_in = sys.argv[1], sys.argv[2], int(sys.argv[3])
    plugin = __import__("nas_yolo_" + ident)
    cls = getattr(ultralytics.nn.tasks, "NasBackbone_" + ident)
    assert cls is getattr(plugin, plugin.BACKBONE)
    reference = nas.export.load_exported(out, "reference_model").build_model().eval()
    reference.load_state_dict(torch.load(out + "/weights.pt", weights_only=True))
    assert reference.feature_info.channels() == list(plugin.LEVEL_CHANNELS)
    torch.manual_seed(0)
    checks = {}
    with torch.no_grad():
        if rgb_in == 3:  # the weights' own channels: identical feature maps
            x = torch.randn(1, 3, 96, 64)
            got, want = cls().eval()(x), reference(x)
            checks["shapes"] = [list(t.shape) for t in got]
            checks["same"] = max((g - w).abs().max().item() for g, w in zip(got, want))
        # other input channels, timm's rule: an image whose channels are all equal gives
        # what the one-channel image gives through the other stem
        other = 1 if rgb_in == 3 else 3
        gray = torch.rand(1, 1, 64, 64)
        net = cls(in_chans=other).eval()
        a = net(gray.expand(1, other, 64, 64))
        b = reference(gray.expand(1, rgb_in, 64, 64))
        checks["adapted"] = max((g - w).abs().max().item() for g, w in zip(a, b))
    print(json.dumps(checks))
"""


def _plugin_check(out: Path, ident: str, in_chans: int, tmp: Path) -> dict:
    stdout = _run(PLUGIN_CHECK, _offline_env(tmp, out), tmp,
                  args=[str(out), ident, str(in_chans)])
    return json.loads(stdout.strip().splitlines()[-1])


def test_the_plugin_builds_the_exported_backbone_with_its_weights(yolo_export, tmp_path):
    arch, out = yolo_export
    checks = _plugin_check(out, arch.id, 3, tmp_path)
    assert checks["shapes"] == [[1, 32, 12, 8], [1, 40, 6, 4], [1, 48, 3, 2]]
    assert checks["same"] == 0
    assert checks["adapted"] < 1e-5
    yaml_text = (out / "yolo.yaml").read_text()
    assert f"[-1, 1, NasBackbone_{arch.id}, []]" in yaml_text
    assert "[0, 1, Index, [32, 0]]" in yaml_text and "[0, 1, Index, [48, 2]]" in yaml_text
    assert not (tmp_path / "network.log").exists()


def test_train_reload_in_a_fresh_process_predict_and_export_to_onnx(yolo_export, tmp_path):
    arch, out = yolo_export
    data = _synthetic_set(tmp_path / "data")
    env = _offline_env(tmp_path, out)
    _run(f"""
        import nas_yolo_{arch.id}
        from ultralytics import YOLO
        YOLO({str(out / 'yolo.yaml')!r}).train(
            data={str(data)!r}, epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
            plots=False, amp=False, project={str(tmp_path / 'runs')!r}, name="train",
            exist_ok=True, verbose=False)
    """, env, tmp_path)
    best = tmp_path / "runs" / "train" / "weights" / "best.pt"
    assert best.exists()
    # a fresh process: the checkpoint names the plugin module, found on PYTHONPATH
    result = _run(f"""
        import json
        import numpy as np
        import onnxruntime
        from ultralytics import YOLO
        model = YOLO({str(best)!r})
        backbone = type(model.model.model[0])
        boxes = model.predict({str(data.parent / 'images' / 'val' / '0.jpg')!r}, imgsz=64,
                              device="cpu", verbose=False)[0].boxes
        onnx_path = model.export(format="onnx", imgsz=64, simplify=False, device="cpu")
        session = onnxruntime.InferenceSession(onnx_path)
        outputs = session.run(None, {{session.get_inputs()[0].name:
                                      np.zeros((1, 3, 64, 64), np.float32)}})
        print(json.dumps({{"module": backbone.__module__, "name": backbone.__name__,
                          "box_columns": int(boxes.xyxy.shape[1]),
                          "onnx": [list(o.shape) for o in outputs]}}))
    """, env, tmp_path)
    got = json.loads(result.strip().splitlines()[-1])
    assert got["module"] == f"nas_yolo_{arch.id}" and got["name"] == f"NasBackbone_{arch.id}"
    assert got["box_columns"] == 4
    # one class: 4 box coordinates + 1 score, over 8x8 + 4x4 + 2x2 anchors at 64 px
    assert got["onnx"] == [[1, 5, 84]]
    log = tmp_path / "network.log"
    assert not log.exists(), log.read_text()[:2000]


def test_yolo_needs_three_levels_at_doubling_strides(tmp_path, capsys):
    code = main(["export", "--arch", ARCH, "--yolo", "--out-indices", "3", "4",
                 "-o", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--yolo needs three feature levels" in err and "got reductions 16, 32" in err
    assert not (tmp_path / "x").exists()
    assert main(["export", "--arch", ARCH, "--yolo", "--fold-bn", "-o", str(tmp_path / "y")]) == 2
    assert "drop --fused and --fold-bn" in capsys.readouterr().err


def test_a_search_runs_pick_as_a_backbone_plugin_and_ncnn(search_run_dir, tmp_path, capsys):
    """The user's path: nas export RUN --best --yolo --format ncnn. The run's weights are
    Fashion-MNIST's (one channel); the plugin feeds RGB: a gray image replicated over
    three channels gives what the one-channel network gives."""
    pytest.importorskip("pnnx")
    out = tmp_path / "det"
    # the tiny space reduces to stride 8 only: its levels at strides 2, 4, 8
    assert main(["export", str(search_run_dir), "--best", "--yolo", "--out-indices", "0", "1",
                 "2", "--format", "ncnn", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ncnn: converted in" in text and "max |Δ| vs torch" in text
    assert "fresh weights" not in text
    plugin = next(out.glob("nas_yolo_*.py"))
    assert f"python {plugin.name} train data=" in text
    # the run's weights are one-channel (Fashion-MNIST); the plugin is fed RGB
    assert _plugin_check(out, plugin.stem[len("nas_yolo_"):], 1, tmp_path)["adapted"] < 1e-5


def test_the_test_process_never_imports_ultralytics():
    """Importing ultralytics sets OMP_NUM_THREADS=1 for every later subprocess and patches
    PIL.Image.open; in the test process that changed other tests' results."""
    assert "ultralytics" not in sys.modules
