"""Users' own runs (issue 16): storage errors, printed commands, run directories used from
elsewhere, one input size, true summaries, numbers that describe the network written.

Everything runs on a small image folder of the user's kind (two colour classes, 16x16
PNGs) and the tiny test space, so each search takes seconds.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from PIL import Image

import nas
import nas.export
import nas.search
from nas.cli import main

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
SEARCH = ["--budget", "8M", "--space", TINY, "--val-images", "50", "--latency-repeats", "1"]


def colour_folder(root: Path, n_train: int = 60, n_test: int = 10) -> Path:
    """Red and blue 16x16 PNGs with some noise: separable by colour alone."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for name, rgb in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(n):
                noise = torch.randint(-20, 21, (16, 16, 3), generator=gen)
                pixels = (torch.tensor(rgb) + noise).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(pixels, "RGB").save(folder / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The user's data and a supernet trained on it at --resolution 20 (not its native
    16 px), with a private cache directory."""
    root = tmp_path_factory.mktemp("user")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_CACHE_DIR", str(root / "cache"))
        data = colour_folder(root / "my data")
        assert main(["supernet", "train", "--space", TINY, "--data", str(data), "--steps", "2",
                     "--batch-size", "32", "--resolution", "20", "--no-eval",
                     "-o", str(root / "sn")]) == 0
        yield {"root": root, "data": str(data), "sn": str(root / "sn" / "supernet.pt"),
               "cache": str(root / "cache")}


@pytest.fixture
def cache(user, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", user["cache"])


def commands(out: str, word: str):
    """The shell commands after ``word`` in ``out`` (e.g. the lines ``report: nas ...``)."""
    return [line.split(word, 1)[1].strip() for line in out.splitlines() if word in line]


# --------------------------------------------------------------------- printed commands
def test_printed_commands_survive_a_paste_with_spaces(user, cache, tmp_path, capsys):
    """Bullet 7: every command nas prints round-trips through the shell's word splitting
    and runs, with spaces and quotes in the run directory. ~15 s."""
    out = tmp_path / "my runs" / "it's run 1"
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--trials", "3",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    (report,) = [c for c in commands(printed, "report:") if c.startswith("nas ")]
    (export,) = [c for c in commands(printed, "export it:") if c.startswith("nas ")]
    assert shlex.split(report) == ["nas", "report", str(out)]
    assert shlex.split(export) == ["nas", "export", str(out), "--best", "-o",
                                   str(out / "export")]
    within = int(re.search(r"(\d+) within budget", printed).group(1))
    checks = commands(printed, "check it:")  # when there is more than one to compare
    assert len(checks) == (within > 1)
    assert all(shlex.split(c) == ["nas", "rerank", str(out), "--top", "3"] for c in checks)
    assert main(shlex.split(report)[1:]) == 0
    (again,) = [c for c in commands(capsys.readouterr().out, "export:") if c.startswith("nas ")]
    assert again == export  # nas report prints the same command
    assert main(shlex.split(export)[1:]) == 0
    assert (out / "export" / "model.py").is_file()
    # --json: the finished study again, as one JSON object and nothing else
    capsys.readouterr()
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--trials", "3", "-o", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trials"] == 3 and result["best"]["trial"] in {r["trial"] for r in
                                                                 result["front"]}


# --------------------------------------------------------------------- run directories
def test_a_run_directory_works_from_anywhere_and_after_a_move(user, cache, tmp_path,
                                                              monkeypatch, capsys):
    """Bullet 8: relative --data, --space and --storage; then report, export and diagnose
    from another directory, and after the run directory is moved. ~40 s."""
    home = tmp_path / "project"
    shutil.copytree(user["data"], home / "data")
    shutil.copy(TINY, home / "space.yaml")
    monkeypatch.chdir(home)
    assert main(["search", "--budget", "8M", "--space", "space.yaml", "--data", "data",
                 "--storage", "journal:runs/r/s.journal", "-o", "runs/r", "--trials", "3",
                 "--supernet-steps", "2", "--val-images", "50", "--latency-repeats", "1"]) == 0
    out = capsys.readouterr().out
    # bullet 10: the summary names the study that exists, not RUN/study.db
    (study,) = [line.split("study:")[1].strip() for line in out.splitlines() if "study:" in line]
    assert study == f"journal:{home / 'runs' / 'r' / 's.journal'}"
    assert not (home / "runs" / "r" / "study.db").exists()
    saved = json.loads((home / "runs" / "r" / "config.json").read_text())
    assert saved["data"] == str(home / "data") and saved["space"] == str(home / "space.yaml")
    assert saved["storage"] == "journal:s.journal"  # inside the run: relative to it

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = home / "runs" / "r"
    assert main(["report", str(run)]) == 0
    code = main(["diagnose", str(run), "--archs", "3", "--steps", "2", "--batch-size", "16",
                 "--band-low", "0.3", "-o", "diag"])
    # 2 training steps may leave every standalone net at one accuracy, which diagnose
    # refuses to correlate; what matters here is that all three were scored and trained
    assert code == 0 or "no rank correlation" in capsys.readouterr().err
    assert len((elsewhere / "diag" / "diagnose.csv").read_text().splitlines()) == 4
    assert not list(elsewhere.glob("*.journal")) and not (elsewhere / "runs").exists()
    moved = tmp_path / "moved"
    shutil.move(str(run), str(moved))
    capsys.readouterr()
    assert main(["report", str(moved), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 1
    assert main(["export", str(moved), "--best", "-o", "e"]) == 0
    assert json.loads((elsewhere / "e" / "arch.json").read_text())["weights"]["data"] == \
        str(home / "data")
    # the data moved too: the export says whose data it needs and why, in one line
    shutil.move(str(home / "data"), str(tmp_path / "data-moved"))
    capsys.readouterr()
    assert main(["export", str(moved), "--best", "-o", "e2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the export recalibrates BatchNorm on its training images" in \
        err[0], err


# --------------------------------------------------------------------- one input size
def test_one_input_size_for_calibration_scoring_cost_and_export(user, cache, tmp_path,
                                                                capsys):
    """Bullet 9: a supernet trained at 20 px is searched, scored and exported at 20 px;
    asking for 40 px is refused before anything is written. ~15 s."""
    bad = tmp_path / "at40"
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--resolution", "40",
                 "-o", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained at 20x20 px" in err[0] and "--resolution" in err[0]
    assert not bad.exists()

    run_dir = tmp_path / "at20"
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--trials", "4",
                 "--recalibration-batches", "9", "-o", str(run_dir)]) == 0
    run = nas.search.open_run(run_dir)
    sn = nas.train.load_supernet(user["sn"], device="cpu")
    calib, valid = sn.loaders(device=torch.device("cpu"))
    assert next(iter(calib.epoch(0)))[0].shape[-1] == 20
    proxy = nas.arch.InputSpec(3, 20, 2)
    for row in run.feasible:
        arch = nas.Architecture.parse(row["arch"])
        assert row["resolution"] == 20
        assert row["proxy_flops"] == nas.count_cost(arch, proxy).flops
        # the stored accuracy is what a consistent evaluation at 20 px gives
        assert row["bn_batches"] == len(calib) < 9  # what was really averaged over
        model = nas.evaluate.recalibrate(sn.supernet, arch, calib, row["bn_batches"])
        scored = valid.derive(data=valid.data.subset(torch.arange(row["val_images"])),
                              recipe=sn.recipe.with_resolution(20))
        assert nas.evaluate.accuracy(model, scored) == row["accuracy"]
    nas.export.export_trial(run_dir, tmp_path / "e", onnx=False)
    meta = json.loads((tmp_path / "e" / "arch.json").read_text())
    assert meta["weights"]["resolution"] == meta["input"]["resolution"] == 20


def test_too_few_validation_images_for_the_classes_is_refused(user, cache, tmp_path, capsys):
    """Bullet 4: --val-images 1 cannot hold one image of each of 2 classes. ~5 s."""
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--val-images", "1",
                 "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "1 image(s) for 2 classes" in err and "--val-images" in err
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_a_given_supernet_searches_on_its_own_data_and_the_run_says_so(user, cache, tmp_path,
                                                                       capsys):
    """The trials are scored on the supernet's validation split: the run and its export
    name that data, not the default --data (an export said fashion-mnist beside a user's
    photo classes), and another --data is refused in one line. ~10 s."""
    run = tmp_path / "r"
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--trials", "2",
                 "-o", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["data"]
    assert os.path.realpath(run / saved) == os.path.realpath(user["data"])
    assert main(["export", str(run), "--best", "-o", str(tmp_path / "e")]) == 0
    weights = json.loads((tmp_path / "e" / "arch.json").read_text())["weights"]
    assert os.path.realpath(weights["data"]) == os.path.realpath(user["data"])
    # a run of an earlier version recorded the default data: it continues, corrected
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": "fashion-mnist"}))
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--trials", "3",
                 "-o", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["data"]
    assert os.path.realpath(run / saved) == os.path.realpath(user["data"])
    capsys.readouterr()
    other = colour_folder(tmp_path / "other data")
    assert main(["search", *SEARCH, "--supernet", user["sn"], "--data", str(other),
                 "-o", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was trained on" in err[0] and "give --data" in err[0], err
    assert not (tmp_path / "r2").exists()


# --------------------------------------------------------------------- summaries
def test_summaries_name_the_budget_a_trial_broke(user, cache, tmp_path, capsys):
    """Bullet 10: trials over a latency budget are reported as such everywhere. ~10 s."""
    run_dir = tmp_path / "late"
    assert main(["search", "--budget", "50M", "--space", TINY, "--supernet", user["sn"],
                 "--latency-budget", "0.001ms", "--trials", "3", "--latency-repeats", "1",
                 "-o", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("over the latency budget (") == 3 and "M FLOPs)" not in out
    assert "0 within budget (3 over the latency budget)" in out
    assert main(["report", str(run_dir)]) == 0
    assert "0 within budget (50M FLOPs and 0.001 ms)" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--trial", "0", "-o", str(tmp_path / "e")]) == 2
    assert "is over the latency budget" in capsys.readouterr().err


# --------------------------------------------------------------------- numbers
def test_export_describes_the_network_it_wrote(user, cache, tmp_path):
    """Bullet 6: arch.json's arch, FLOPs and params are those of model.py's default network
    with weights.pt (2 classes, 3 channels, 20 px); the searched form is under target. ~10 s."""
    run_dir = tmp_path / "r"
    nas.search.run_search(nas.search.SearchConfig(
        budget=8_000_000, space=TINY, supernet=user["sn"], trials=3, val_images=50,
        latency_repeats=1), run_dir, progress=False, log=lambda m: None)
    result = nas.export.export_trial(run_dir, tmp_path / "e", onnx=False)
    meta = json.loads((tmp_path / "e" / "arch.json").read_text())
    net = nas.export.load_exported(tmp_path / "e").build_model()
    net.load_state_dict(torch.load(tmp_path / "e" / "weights.pt", weights_only=True))
    assert meta["params"] == sum(p.numel() for p in net.parameters())
    assert meta["input"] == {"channels": 3, "resolution": 20, "classes": 2}
    assert meta["arch"].startswith("3x20x20-2/")
    counter = FlopCountAnalysis(net.eval(), torch.zeros(1, 3, 20, 20))
    counter.unsupported_ops_warnings(False)
    assert meta["flops"] == counter.total()
    assert meta["target"]["arch"] == result.row["arch"] and \
        meta["target"]["flops"] == result.row["flops"]
    # how a deployer makes its input: the 16 px PNGs resized to the 20 px it was trained at
    assert meta["weights"]["eval_transform"] == {"resize": [20, 20]}
    assert "resized to 20px" in meta["weights"]["recipe"]


# --------------------------------------------------------------------- storage errors
DRIVER = textwrap.dedent("""
    # Each command of argv-lists in sys.argv[1] runs with its own file size limit (what
    # `ulimit -f` sets), its stderr kept; prints one JSON result per command.
    import contextlib, io, json, resource, sys
    from nas.cli import main
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    for limit_kb, argv in json.loads(sys.argv[1]):
        if argv[0] == "trials":  # the complete trials of a study, as they are now
            import optuna
            from nas.search import open_storage
            study = optuna.load_study(study_name="nas-search", storage=open_storage(argv[1]))
            print(json.dumps({"argv": argv, "trials": [
                [t.number, t.params, t.values] for t in study.trials
                if t.state == optuna.trial.TrialState.COMPLETE]}), flush=True)
            continue
        err = io.StringIO()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024 if limit_kb else soft, hard))
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        print(json.dumps({"argv": argv, "code": code, "err": err.getvalue()}), flush=True)
""")


def test_a_full_disk_is_one_line_for_every_command_and_searches_resume(user, tmp_path):
    """Bullet 5: every command that writes, under a file size limit: exit 2, one line that
    names the file or the study, no half-written export; the searches' completed trials
    stay and a rerun without the limit completes the study. One subprocess, ~60 s."""
    d, sn, t = user["data"], user["sn"], tmp_path
    arch = str(nas.load_space(TINY).sample(0))
    search = [*SEARCH, "--supernet", sn, "--trials", "6"]
    sqlite, journal = t / "sqlite", t / "journal"
    stores = [f"sqlite:///{sqlite / 'study.db'}", f"journal:{journal}.journal"]
    plan = [
        (150, ["supernet", "train", "--space", TINY, "--data", d, "--steps", "2",
               "--batch-size", "32", "-o", str(t / "sn")]),
        (1000, ["search", *search, "-o", str(sqlite)]),
        (0, ["trials", stores[0]]),
        (0, ["search", *search, "-o", str(sqlite)]),
        (0, ["trials", stores[0]]),
        (20, ["search", *search, "--storage", stores[1], "-o", str(journal)]),
        (0, ["trials", stores[1]]),
        (0, ["search", *search, "--storage", stores[1], "-o", str(journal)]),
        (0, ["trials", stores[1]]),
        (20, ["report", str(sqlite)]),
        (100, ["export", str(sqlite), "--best", "-o", str(t / "e")]),
        (4, ["export", "--arch", arch, "-o", str(t / "a")]),
        (150, ["train", "--arch", arch, "--data", d, "--steps", "2", "--batch-size", "16",
               "-o", str(t / "train")]),
        (150, ["diagnose", str(sqlite), "--archs", "3", "--steps", "2", "--batch-size", "16",
               "--band-low", "0.3", "-o", str(t / "diag")]),
        (150, ["reference", "--space", TINY, "--data", d, "--budget", "8M", "--band-low", "0.3",
               "--archs", "3", "--seeds", "0", "--batch-size", "16", "-o", str(t / "ref")]),
    ]
    env = {**os.environ, "NAS_CACHE_DIR": user["cache"]}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(plan)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(plan)
    for (limit, argv), r in zip(plan, results):
        if "trials" in r:
            continue
        lines = [x for x in r["err"].splitlines() if not x.startswith("nas: note:")]
        if not limit:
            assert r["code"] == 0, (argv, r["err"][-2000:])
            continue
        assert r["code"] == 2 and len(lines) == 1, (argv, r["err"][-2000:])
        assert lines[0].startswith("nas: error: ") and "Traceback" not in r["err"]
        assert str(t) in lines[0] or "study" in lines[0], lines[0]  # names what it could not write
    names = {r["argv"][0] + ("-arch" if "--arch" in r["argv"] else ""): r for r in results if
             r.get("code") == 2}
    assert "cannot write the study" in names["search"]["err"]
    assert "exceeding max length" not in names["search"]["err"]
    for export in (t / "e", t / "a"):  # nothing half-written
        assert not export.exists() or not any(export.iterdir())
    # the interrupted studies kept their completed trials and were completed by the rerun
    snapshots = [r["trials"] for r in results if "trials" in r]
    for before, after in (snapshots[0:2], snapshots[2:4]):
        assert 1 <= len(before) < 6 and len(after) == 6
        assert all(trial in after for trial in before)


def test_supernet_names_a_checkpoint_its_directory_or_the_search_that_trained_it(tmp_path):
    """``--supernet runs/r1`` (a search run) was 'runs/r1/supernet.pt: no such checkpoint'
    although its help promised a run directory: the search's own supernet/ is taken."""
    from nas.runs import SearchDir, SupernetDir, supernet_checkpoint

    run = SearchDir(tmp_path / "run")
    run.supernet.path.mkdir(parents=True)
    run.supernet.checkpoint.write_bytes(b"")
    assert supernet_checkpoint(run.path) == run.supernet.checkpoint
    assert supernet_checkpoint(run.supernet.path) == run.supernet.checkpoint
    assert supernet_checkpoint(run.supernet.checkpoint) == run.supernet.checkpoint
    alone = SupernetDir(tmp_path / "sn")
    alone.path.mkdir()  # nothing in it yet: the error names its own supernet.pt
    assert supernet_checkpoint(alone.path) == alone.checkpoint


def test_a_space_file_edited_since_the_supernet_is_named_as_such(user, cache, tmp_path, capsys):
    """It said 'the supernet was trained on space tiny, not on tiny'. ~3 s."""
    edited = tmp_path / "tiny.yaml"
    edited.write_text(Path(TINY).read_text().replace("k3|", "k5|", 1))
    assert edited.read_text() != Path(TINY).read_text()
    argv = ["search", "--budget", "8M", "--space", str(edited), "--supernet", user["sn"],
            "-o", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another version of space tiny (its file has changed" in err[0], err
