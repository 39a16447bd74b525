"""`nas report` and `nas export RUN`: the front, the HTML page, weights inherited from the
supernet, TorchScript and fused forms, and hostile strings in a study."""

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from standalone import NO_NAS

import nas
from nas.cli import main
from nas.errors import ExportError, RunError
from nas.evaluate import recalibrate
from nas.export import ExportForm, export_trial, model_source
from nas.report import write_report
from nas.search import SearchConfig, open_run, run_search
from nas.train import load_supernet

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Runs in a fresh interpreter where importing nas fails: model.py + weights.pt (or model.ts)
# on the input saved in x.pt, logits saved to out.pt.
STANDALONE = NO_NAS + textwrap.dedent("""
    sys.path.insert(0, sys.argv[1])
    import torch
    x = torch.load(sys.argv[1] + "/x.pt", weights_only=True)
    if sys.argv[2] == "ts":
        net = torch.jit.load(sys.argv[1] + "/model.ts")
    else:
        import model
        net = model.build_model()
        net.load_state_dict(torch.load(sys.argv[1] + "/weights.pt", weights_only=True))
    with torch.no_grad():
        torch.save(net.eval()(x), sys.argv[1] + "/out.pt")
    assert "nas" not in sys.modules
""")


@pytest.fixture()
def run_dir(search_run_dir):
    return search_run_dir


def standalone_logits(directory: Path, x: torch.Tensor, kind: str = "py") -> torch.Tensor:
    """Copy the export to an empty directory and run it where nas is not importable."""
    alone = directory.parent / (directory.name + f"-alone-{kind}")
    shutil.rmtree(alone, ignore_errors=True)
    alone.mkdir()
    for name in ("model.py", "weights.pt", "model.ts"):
        shutil.copy(directory / name, alone / name)
    torch.save(x, alone / "x.pt")
    done = subprocess.run([sys.executable, "-c", STANDALONE, str(alone), kind],
                          capture_output=True, text=True, cwd=alone)
    assert done.returncode == 0, done.stderr
    return torch.load(alone / "out.pt", weights_only=True)


def test_exported_weights_reproduce_the_supernet(run_dir, tmp_path):
    run = open_run(run_dir)
    best = run.best()
    result = export_trial(run_dir, tmp_path / "exp", trial=best["trial"])
    assert result.deltas["model"] <= 1e-5 and result.deltas["torchscript"] <= 1e-5
    sn = load_supernet(run.supernet_path(), device="cpu")
    arch = nas.Architecture.parse(best["arch"])
    torch.manual_seed(0)
    x = torch.randn(3, sn.supernet.in_chans, 28, 28)
    with torch.no_grad():
        reference = sn.supernet(x.contiguous(memory_format=torch.channels_last), arch)
    for kind in ("py", "ts"):
        logits = standalone_logits(tmp_path / "exp", x, kind)
        assert logits.shape == reference.shape == (3, 10)
        assert (logits - reference).abs().max().item() <= 1e-5, kind
    meta = json.loads((tmp_path / "exp" / "arch.json").read_text())
    assert meta["trial"] == best["trial"] and meta["target"]["arch"] == best["arch"]
    # the network written: Fashion-MNIST's channel and classes at its 28 px (issue 16)
    assert meta["arch"] == "1x28x28-10/" + best["arch"].split("/", 1)[1]
    assert meta["weights"]["in_chans"] == 1 and meta["weights"]["num_classes"] == 10
    assert len(meta["weights"]["mean"]) == 1


def test_export_recalibrates_like_the_search(run_dir, tmp_path):
    """With BN recalibration the export carries the recalibrated statistics."""
    run = open_run(run_dir)
    row = dict(run.best())
    sn = load_supernet(run.supernet_path(), device="cpu")
    calib, _ = sn.loaders(device=torch.device("cpu"))
    arch = nas.Architecture.parse(row["arch"])
    recal = recalibrate(sn.supernet, arch, calib, 2).to(memory_format=torch.contiguous_format)
    form = ExportForm(num_classes=10, in_chans=1)
    x = torch.randn(2, 1, 28, 28)
    paths, deltas = nas.export.export_network(recal, arch, tmp_path / "r", x, form)
    logits = standalone_logits(tmp_path / "r", x)
    with torch.no_grad():
        assert (logits - recal(x)).abs().max().item() <= 1e-5
        plain = sn.supernet.extract(arch).eval().to(memory_format=torch.contiguous_format)
        assert (plain(x) - recal(x)).abs().max().item() > 1e-4  # statistics really differ


def test_onnx_export_matches(run_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    result = export_trial(run_dir, tmp_path / "o")
    assert tmp_path / "o" / "model.onnx" in result.paths
    graph = onnx.load(tmp_path / "o" / "model.onnx")
    onnx.checker.check_model(graph)
    x = torch.randn(3, 1, 28, 28)  # another batch size than the export's example
    with np.errstate(over="ignore"):  # the reference sigmoid overflows harmlessly
        out = ReferenceEvaluator(graph).run(None, {graph.graph.input[0].name: x.numpy()})[0]
    logits = standalone_logits(tmp_path / "o", x)
    assert np.abs(out - logits.numpy()).max() < 1e-4


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_form_matches_split_form(run_dir, tmp_path, channels_last):
    # ONNX only where it is the deployed form's (an export each costs seconds; the split
    # form's is test_onnx_export_matches')
    export_trial(run_dir, tmp_path / "split", onnx=False)
    result = export_trial(run_dir, tmp_path / "fused", fused=True, channels_last=channels_last,
                          onnx=channels_last)
    assert result.deltas["model"] <= 1e-5
    x = torch.randn(2, 1, 28, 28)
    split = standalone_logits(tmp_path / "split", x)
    fused = standalone_logits(tmp_path / "fused", x)
    assert (split - fused).abs().max().item() <= 1e-5
    source = (tmp_path / "fused" / "model.py").read_text()
    assert "FUSED = True" in source and f"CHANNELS_LAST = {channels_last}" in source
    state = torch.load(tmp_path / "fused" / "weights.pt", weights_only=True)
    assert not any(".convs." in k for k in state)  # one conv per MixConv
    if channels_last:  # the deployed form's ONNX runs and gives its logits
        ort = pytest.importorskip("onnxruntime")
        assert tmp_path / "fused" / "model.onnx" in result.paths
        session = ort.InferenceSession(str(tmp_path / "fused" / "model.onnx"))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(got - fused.numpy()).max() < 1e-4


def test_folded_form_matches_split_form(run_dir, tmp_path):
    """nas export --fold-bn on a trial (supernet weights, recalibrated BN): the deployed form
    gives the split form's logits up to float32 rounding (1e-5 of the largest logit)."""
    export_trial(run_dir, tmp_path / "split", onnx=False)
    result = export_trial(run_dir, tmp_path / "folded", fused=True, channels_last=True,
                          fold_bn=True, onnx=False)
    x = torch.randn(2, 1, 28, 28)
    split = standalone_logits(tmp_path / "split", x)
    folded = standalone_logits(tmp_path / "folded", x)
    tolerance = 1e-5 * split.abs().max().item()
    assert result.deltas["model"] <= tolerance
    assert (split - folded).abs().max().item() <= tolerance
    assert "FOLD_BN = True" in (tmp_path / "folded" / "model.py").read_text()


def test_report_table_html_png_and_json(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "report.html" in out
    page = (run_dir / "report.html").read_text()
    assert "<svg" in page and "budget 8M FLOPs" in page.replace("\u00a0", " ")
    assert (run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(run_dir), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    run = open_run(run_dir)
    assert [r["trial"] for r in front] == [r["trial"] for r in run.front()]
    assert all(r["flops"] <= 8_000_000 for r in front)


def test_report_and_export_on_a_running_study(run_dir, tmp_path, capsys):
    """A trial still RUNNING (another process searching) is left out, not an error."""
    copy = tmp_path / "running"
    shutil.copytree(run_dir, copy)
    study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{copy / 'study.db'}")
    study.ask()  # RUNNING, no attributes yet
    assert main(["report", str(copy), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 1
    assert main(["export", str(copy), "--best", "-o", str(tmp_path / "e")]) == 0


def test_backbone_export_from_the_command_line(run_dir, tmp_path, capsys):
    from nas.export import load_exported

    out = tmp_path / "backbone"
    argv = ["export", str(run_dir), "--best", "--backbone", "--out-indices", "1", "2", "-o"]
    assert main(argv + [str(out)]) == 0
    assert "max |features - exported network's source| = 0.00e+00" in capsys.readouterr().out
    meta = json.loads((out / "arch.json").read_text())
    assert meta["out_indices"] == [1, 2]
    assert [f["reduction"] for f in meta["features"]] == [2, 4, 8]  # tiny.yaml at 64x64
    net = load_exported(out, "cli_backbone").build_model()
    net.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    # arch.json describes the network written: Fashion-MNIST's 1 channel at its 28x28
    side = meta["weights"]["resolution"]
    assert side == 28
    with torch.no_grad():
        maps = net.eval()(torch.randn(1, 1, side, side))
    assert [list(m.shape[1:]) for m in maps] == [meta["features"][i]["shape"] for i in (1, 2)]
    if importlib.util.find_spec("onnxscript"):  # the proxy data's 28x28 example is enlarged
        assert (out / "model.onnx").exists()
    assert main(argv[:-3] + ["7", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out_indices must be feature levels 0 to 2" in err[0]
    assert not (tmp_path / "bad").exists()


def test_export_errors_exit_2(run_dir, tmp_path, capsys):
    over = [r["trial"] for r in open_run(run_dir).rows if not r["feasible"]]
    cases = [["export", str(run_dir), "--trial", "999", "-o", str(tmp_path / "a")],
             ["export", "--best", "-o", str(tmp_path / "b")],
             ["export", str(tmp_path), "--best", "-o", str(tmp_path / "c")],
             ["report", str(tmp_path / "nothing")]]
    if over:
        cases.append(["export", str(run_dir), "--trial", str(over[0]), "-o", str(tmp_path / "d")])
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nas: error:") and "Traceback" not in err


HOSTILE = [
    '"); __import__("os").system("touch /tmp/nas-pwned") #',
    "<script>alert(1)</script>",
    "x\n<img src=http://evil.example/a.png>",
    "mixnet_s' onload='alert(1)",
]


def _tamper(run_dir: Path, dest: Path, value: str) -> Path:
    shutil.copytree(run_dir, dest)
    con = sqlite3.connect(dest / "study.db")
    con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'arch'",
                (json.dumps(value),))
    con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'preset'",
                (json.dumps(value),))
    con.commit()
    con.close()
    config = json.loads((dest / "config.json").read_text())
    config["data"] = value  # a hostile setting is shown, never interpreted
    (dest / "config.json").write_text(json.dumps(config))
    return dest


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_study_strings_are_escaped_and_never_become_code(run_dir, tmp_path, value):
    tampered = _tamper(run_dir, tmp_path / "t", value)
    run = open_run(tampered)
    page = write_report(run).html.read_text()
    assert page.count("<script") == 1  # the report's own, last in the page
    body = page.rsplit("<script>", 1)[0]
    for bad in ("<script", "<img", "onload='", "__import__(\"os\")"):
        assert bad not in body
    assert "&lt;script&gt;" in page or "script" not in value
    with pytest.raises(RunError, match="malformed architecture"):
        export_trial(tampered, tmp_path / "x", trial=run.best()["trial"])
    assert not (tmp_path / "x" / "model.py").exists()
    assert not Path("/tmp/nas-pwned").exists()


def test_model_source_refuses_unvalidated_text():
    arch = nas.load_space("mixnet_s").sample(0)
    with pytest.raises(ExportError):
        model_source(arch, ExportForm(), 'weights """; import os #')
    with pytest.raises(ExportError):
        model_source(arch, ExportForm(), "line\nbreak")
    source = model_source(arch, ExportForm(num_classes=10, in_chans=1), "weights.pt: 10 classes")
    compile(source, "model.py", "exec")


def test_export_with_recalibration_reproduces_the_search_accuracy(tmp_path):
    """The exported network scores the accuracy the search stored for its trial."""
    from nas.evaluate import accuracy

    run_dir = tmp_path / "run"
    run_search(SearchConfig(budget=8_000_000, space=TINY, trials=4, supernet_steps=8,
                            val_images=300, recalibration_batches=2, latency_repeats=1),
               run_dir, progress=False, log=lambda m: None)
    row = open_run(run_dir).best()
    export_trial(run_dir, tmp_path / "e", trial=row["trial"])
    sn = load_supernet(run_dir / "supernet" / "supernet.pt", device="cpu")
    _, valid = sn.loaders(device=torch.device("cpu"))
    valid = valid.derive(data=valid.data.subset(torch.arange(300)))
    net = nas.export.load_exported(tmp_path / "e", "recal_model").build_model()
    net.load_state_dict(torch.load(tmp_path / "e" / "weights.pt", weights_only=True))
    assert accuracy(net.eval(), valid) == pytest.approx(row["accuracy"], abs=1e-9)


def test_hostile_config_with_a_valid_arch_never_reaches_model_py(run_dir, tmp_path):
    dest = tmp_path / "h"
    shutil.copytree(run_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    config["data"] = HOSTILE[0]
    (dest / "config.json").write_text(json.dumps(config))
    result = export_trial(dest, tmp_path / "x")  # the supernet is found by path, not data
    source = (tmp_path / "x" / "model.py").read_text()
    assert "__import__" not in source and "pwned" not in source
    x = torch.randn(1, 1, 28, 28)
    standalone_logits(tmp_path / "x", x)  # runs model.py: it must not run the string
    assert not Path("/tmp/nas-pwned").exists()
    # arch.json names the data the supernet trained its weights on, not the edited config's
    assert json.loads((tmp_path / "x" / "arch.json").read_text())["weights"]["data"] == \
        "fashion-mnist"
    assert result.deltas["supernet"] <= 1e-5


def test_malformed_results_are_shown_but_never_ranked_or_exported(run_dir, tmp_path, capsys):
    dest = tmp_path / "m"
    shutil.copytree(run_dir, dest)
    best = open_run(dest).best()["trial"]
    con = sqlite3.connect(dest / "study.db")
    con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'accuracy' AND "
                "trial_id = (SELECT trial_id FROM trials WHERE number = ?)",
                (json.dumps("\x1b[31mNaN"), best))
    con.commit()
    con.close()
    assert main(["report", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert main(["report", str(dest), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert best not in [r["trial"] for r in front]
    assert main(["export", str(dest), "--trial", str(best), "-o", str(tmp_path / "e")]) == 2
    assert "malformed" in capsys.readouterr().err


def test_the_table_summary_names_each_row_as_the_grammar_does():
    """A UIB row without a middle depthwise conv reads k0 (it printed a bare 'k'), ADown
    shows no kernel set or expansion, MobileNetV3's SE reads +hse."""
    from nas.report.table import arch_summary
    arch = nas.Architecture.parse(
        "3x64x64-10/stem_c16/ds_r1_k3.5_c16/ir_r1_k3_s2_e3_c24/ir_r1_k3.5_s2_e3_hse0.25_c32/"
        "uir_r1_a3_k0_s2_e2_c40/adown_c48,ir_r1_k3_e2_se0.25_c48/head_f64")
    assert arch_summary(arch) == ("1x k3.5 | 1x k3 e3 | 1x k3.5 e3+hse | 1x uir a3 k0 e2 | "
                                  "1x adown, 1x k3 e2+se")
    space = nas.load_space("mobilenetv3_mixconv")  # optional rows: absent ones read "0x ir"
    absent = [b.kind for s in space.extreme_arch(False).stages for b in s if not b.repeats]
    assert absent and arch_summary(space.extreme_arch(False)).count("0x ") == len(absent)


def test_the_latency_note_names_the_runtime_that_measured():
    from nas.report import latency_note

    int8 = {"latency_backend": "onnxruntime-int8", "latency_source": "measured"}
    table = {"latency_backend": "onnxruntime", "latency_source": "table"}
    assert latency_note([int8, int8]).endswith("measured in onnxruntime-int8")
    mixed = latency_note([int8, table, int8])
    assert "measured in onnxruntime-int8 (2 trials)" in mixed
    assert "predicted by a table for onnxruntime (1 trials)" in mixed
    assert latency_note([{}]).endswith("from unrecorded")  # a study from before the record
    assert latency_note([]) == ""
    hostile = latency_note([{"latency_backend": "x\n<script>", "latency_source": "measured"}])
    assert "\n" not in hostile  # one printable line; the page escapes it


def test_a_supernet_directory_or_a_broken_config_is_named_once(run_dir, tmp_path, capsys):
    """`nas report runs/r1/supernet` listed 20 unknown settings in one line; a broken
    config.json said 'not a valid search configuration (... not a valid search
    configuration (...))'."""
    sn = tmp_path / "sn"
    sn.mkdir()
    (sn / "config.json").write_text(json.dumps({"steps": 2}))
    (sn / "supernet.pt").write_bytes(b"")
    assert main(["report", str(sn)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a supernet's directory, not a search run" in err[0], err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    assert main(["report", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("not a valid search configuration") == 1, err
    # a search run that keeps its --supernet's file beside it is still a search run
    kept = tmp_path / "kept"
    shutil.copytree(run_dir, kept)
    shutil.copy(run_dir / "supernet" / "supernet.pt", kept / "supernet.pt")
    assert main(["report", str(kept), "--json"]) == 0
