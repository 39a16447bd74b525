"""The search controller: reward, budget constraint, warm start, storage and resume."""

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import nas
from nas.cli import main
from nas.errors import RunError
from nas.estimators import supernet as search_module  # the supernet estimator's evaluate
from nas.latency import measure as latency_module
from nas.search import SearchConfig, pareto_front, reward, run_search, suggest_arch, warm_start
from nas.search.objective import constraints_of
from nas.search.run import prepare_run

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def tiny_config(**kw):
    base = dict(budget=8_000_000, space=TINY, trials=6, supernet_steps=8, val_images=200,
                recalibration_batches=2, latency_repeats=1)
    base.update(kw)
    return SearchConfig(**base)


def test_reward_arithmetic():
    r = reward(0.75, 300_000_000, 20.0, beta=0.02, gamma=0.001)
    assert r == pytest.approx(0.75 - 0.02 * math.log(3e8) - 0.02)
    # what the defaults mean: doubling FLOPs costs beta*ln2, +1 ms costs gamma
    assert reward(0.75, 2 * 300_000_000, 20.0, 0.02, 0.001) == pytest.approx(r - 0.02 * math.log(2))
    assert reward(0.75, 300_000_000, 21.0, 0.02, 0.001) == pytest.approx(r - 0.001)


def test_pareto_front():
    rows = [dict(trial=i, accuracy=a, flops=f, latency_ms=ms) for i, (a, f, ms) in enumerate(
        [(0.8, 300, 10), (0.7, 200, 10), (0.7, 300, 10), (0.9, 400, 5), (0.6, 250, 20)])]
    assert [r["trial"] for r in pareto_front(rows)] == [1, 0, 3]


def test_every_decision_is_one_categorical_parameter(spaces):
    space = spaces["mixnet_300m"]
    study = optuna.create_study()
    trial = study.ask()
    arch = suggest_arch(trial, space)
    assert space.contains(arch)
    assert set(trial.params) == {d.name for d in space.decisions}
    assert all(isinstance(d, optuna.distributions.CategoricalDistribution)
               for d in trial.distributions.values())


def test_warm_start_queues_presets_within_budget(spaces):
    study = optuna.create_study(direction="maximize")
    assert warm_start(study, spaces["mixnet_300m"], 300_000_000) == ["mixnet_s"]  # M is 356M
    trial = study.ask()
    assert suggest_arch(trial, spaces["mixnet_300m"]) == spaces["mixnet_s"].sample(0)
    assert warm_start(optuna.create_study(), spaces["mixnet_300m"], 400_000_000) == \
        ["mixnet_s", "mixnet_m"]
    assert warm_start(optuna.create_study(), spaces["tiny"], 10**12) == []  # not points of tiny


def test_over_budget_trials_are_infeasible_and_never_evaluated(tmp_path, monkeypatch):
    calls = {"evaluate": 0, "latency": 0}
    real_eval, real_lat = search_module.evaluate, latency_module.arch_latency

    def counting_eval(*a, **k):
        calls["evaluate"] += 1
        return real_eval(*a, **k)

    def counting_latency(arch, **k):
        calls["latency"] += 1
        assert nas.count_cost(arch).flops <= 4_000_000, "an over-budget arch was timed"
        return real_lat(arch, **k)

    monkeypatch.setattr(search_module, "evaluate", counting_eval)
    monkeypatch.setattr(latency_module, "arch_latency", counting_latency)
    result = run_search(tiny_config(budget=4_000_000, trials=10), tmp_path / "run",
                        progress=False, log=lambda m: None)
    study = optuna.load_study(study_name="nas-search",
                              storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    infeasible = [t for t in study.trials if t.user_attrs["flops"] > 4_000_000]
    assert infeasible, "the budget should cut some of the tiny space"
    for t in infeasible:
        # Optuna 5 keeps trial.set_constraint's value; on Optuna 4 nas stores it itself
        over = t.system_attrs.get("constraints:flops", constraints_of(t)[0])
        assert over > 0
        assert "accuracy" not in t.user_attrs and "latency_ms" not in t.user_attrs
    assert calls["evaluate"] == calls["latency"] == result.feasible == 10 - len(infeasible)


def test_search_end_to_end_writes_its_files_and_respects_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    result = run_search(tiny_config(), run_dir, progress=False, log=lambda m: None)
    assert result.trials == 6 and result.front
    for name in ("study.db", "trials.csv", "config.json", "supernet/supernet.pt"):
        assert (run_dir / name).exists(), name
    frame = pd.read_csv(run_dir / "trials.csv")
    assert len(frame) == 6
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["budget"] == 8_000_000 and cfg["space"] == TINY
    for row in frame[frame.feasible].itertuples():
        arch = nas.Architecture.parse(row.arch)
        model = nas.build_model(arch).eval()
        counter = FlopCountAnalysis(model, torch.zeros(1, 3, 64, 64))
        counter.unsupported_ops_warnings(False)
        assert counter.total() == row.flops <= 8_000_000
        assert 0 <= row.accuracy <= 1 and row.latency_ms > 0 and row.bn_batches == 2
    # every trial stores what the issue lists
    study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{run_dir / 'study.db'}")
    feasible = [t for t in study.trials if t.user_attrs.get("feasible")]
    assert {"arch", "flops", "params", "proxy_flops", "latency_ms", "accuracy", "reward",
            "bn_batches"} <= set(feasible[0].user_attrs)
    # ... and which backend measured its latency, as the run does
    assert {(t.user_attrs["latency_backend"], t.user_attrs["latency_source"])
            for t in feasible} == {("torch", "measured")}
    assert study.user_attrs["latency"].startswith("measured, torch, 1 thread")
    assert set(frame.latency_backend[frame.feasible]) == {"torch"}
    # a rerun with more trials tops up to the new total; the same total does nothing
    assert run_search(tiny_config(trials=8), run_dir, progress=False,
                      log=lambda m: None).trials == 8
    assert run_search(tiny_config(trials=8), run_dir, progress=False,
                      log=lambda m: None).trials == 8


def test_interrupted_trials_are_failed_and_retried(tmp_path):
    run_dir = tmp_path / "run"
    run_search(tiny_config(trials=3), run_dir, progress=False, log=lambda m: None)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    study = optuna.load_study(study_name="nas-search", storage=storage)
    stale = study.ask()  # what a killed process leaves: a RUNNING trial with its params
    arch = suggest_arch(stale, nas.load_space(TINY))
    result = run_search(tiny_config(trials=5), run_dir, progress=False, log=lambda m: None)
    assert result.retried == 1 and result.trials == 5
    study = optuna.load_study(study_name="nas-search", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert optuna.trial.TrialState.RUNNING not in states
    retried = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               and t.user_attrs["arch"] == str(arch)]
    assert retried


def test_pareto_mode_and_no_feasible_trial(tmp_path, capsys):
    result = run_search(tiny_config(objective="pareto", trials=4), tmp_path / "p",
                        progress=False, log=lambda m: None)
    assert result.trials == 4
    code = main(["search", "--budget", "3M", "--space", TINY, "-o", str(tmp_path / "none"),
                 "--trials", "3", "--supernet-steps", "4", "--val-images", "100"])
    out = capsys.readouterr().out
    assert code == 0
    assert "No trial is feasible" in out or "within budget" in out


@pytest.mark.parametrize("budget, fragment", [
    ("3OOM", "bad budget '3OOM'"), ("-1", "bad budget"), ("0", "bad budget"),
    ("1M", "smallest architecture of tiny: 2,936,320"),
])
def test_bad_budgets_exit_2_and_write_nothing(tmp_path, capsys, budget, fragment):
    out = tmp_path / "run"
    assert main(["search", "--budget", budget, "--space", TINY, "-o", str(out)]) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a database server hung, or
    behind a firewall that lets the handshake through)."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


BAD_SETTINGS = {  # name: (flags, a fragment of the one-line error)
    "missing table": (["--latency", "lut:{tmp}/none.json"], "not a latency table"),
    "table of another space": (["--latency", "lut:{tmp}/other.json"], "is not a table of tiny"),
    "refused database": (["--storage", "postgresql://nobody@127.0.0.1:1/x"],
                         "cannot reach the study's database"),
    "silent database": (["--storage", "postgresql://nobody@127.0.0.1:{port}/x"],
                        "connect timeout 2 s): connection timeout expired"),
    "journal under a file": (["--storage", "journal:{tmp}/a-file/s.journal"],
                             "a-file is a file, not a directory"),
    "missing predictor": (["--estimator", "predictor:{tmp}/none.json"],
                          "no such predictor file"),
    "no cuda": (["--device", "cuda"], "torch sees no CUDA device"),
    "missing data": (["--data", "{tmp}/no-data"], "no dataset"),
    "empty data folder": (["--data", "{tmp}/empty"], "expected train/ and test/ folders"),
    "missing supernet": (["--supernet", "{tmp}/none.pt"], "no such checkpoint"),
}


@pytest.mark.parametrize("bad", list(BAD_SETTINGS))
def test_every_bad_setting_is_refused_in_seconds_before_any_training(
        bad, tmp_path, capsys, monkeypatch, silent_server):
    """Each setting that can only fail is refused in seconds, with one line and exit 2,
    before the supernet trains and before anything is written: a bad --latency table or
    --storage used to start the 200-step supernet training (~5 min) first."""
    import time

    from nas.latency import LatencyTable
    from nas.search import storage

    if bad == "no cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    trained = []
    import nas.train

    monkeypatch.setattr(nas.train, "train_supernet", lambda *a, **k: trained.append(a))
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_S", 2)
    LatencyTable("torch", {"unit of another space": 1.0}).save(tmp_path / "other.json")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "empty").mkdir()
    flags, fragment = BAD_SETTINGS[bad]
    flags = [f.format(tmp=tmp_path, port=silent_server) for f in flags]
    out = tmp_path / "run"
    started = time.monotonic()
    code = main(["search", "--budget", "8M", "--space", TINY, "-o", str(out), *flags])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("nas: error:"), err
    assert fragment in err[0]
    assert seconds < 30  # ~0.1-3 s here; the supernet's training alone takes minutes
    assert not trained and not out.exists()


def test_a_latency_table_serves_the_space_it_was_built_for_only(spaces):
    from nas.errors import CheckpointError
    from nas.latency import LatencyTable
    from nas.latency.units import unit_keys

    tiny = spaces["tiny"]
    # what every build of tiny times, a partial one too: its smallest and largest networks
    keys = {k for largest in (False, True) for k in unit_keys(tiny.extreme_arch(largest))}
    LatencyTable("torch", dict.fromkeys(keys, 1.0)).check(tiny)
    with pytest.raises(CheckpointError, match="not a table of mixnet_300m: it lacks"):
        LatencyTable("torch", dict.fromkeys(keys, 1.0)).check(spaces["mixnet_300m"])
    with pytest.raises(CheckpointError, match="not a table of tiny: it lacks 1 of"):
        LatencyTable("torch", dict.fromkeys(sorted(keys)[1:], 1.0)).check(tiny)


def test_a_space_too_deep_for_the_training_resolution_exits_2_and_writes_nothing(
        tmp_path, capsys):
    # At its 64x64 target the last ADown is fed 2x2; on Fashion-MNIST's 28x28 it would be
    # fed 1x1 (torch: "Output size is too small") after the supernet run had begun.
    space = tmp_path / "deep.yaml"
    space.write_text("input: {channels: 3, resolution: 64, classes: 10}\nstem: stem_c16\n"
                     "stages:\n  - [ir_r1_k3_s2_e2_c24, adown_c32, adown_c48|64, adown_c64]\n"
                     "head: head\n")
    out = tmp_path / "run"
    args = ["search", "--budget", "1G", "--space", str(space), "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nas: error: deep cannot train at 28x28: s0.b3: ADown needs a feature map "
                   "of at least 2x2 (its 2x2 average pool), it is fed 1x1; train at a larger "
                   "--resolution"]
    assert not out.exists()
    # at a proxy resolution of 32 it is fed 2x2: accepted
    prepare_run(SearchConfig(budget=10**9, space=str(space), resolution=32), out)


def test_a_run_directory_keeps_its_settings(tmp_path):
    run_search(tiny_config(trials=2), tmp_path / "r", progress=False, log=lambda m: None)
    with pytest.raises(RunError, match="other settings"):
        run_search(tiny_config(trials=2, beta=0.5), tmp_path / "r", progress=False,
                   log=lambda m: None)


def test_a_rerun_does_not_replay_the_first_runs_suggestions(tmp_path):
    run_dir = tmp_path / "run"
    run_search(tiny_config(trials=3), run_dir, progress=False, log=lambda m: None)
    run_search(tiny_config(trials=6), run_dir, progress=False, log=lambda m: None)
    study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{run_dir / 'study.db'}")
    archs = [t.user_attrs["arch"] for t in study.trials]
    assert archs[3:] != archs[:3]


def test_one_search_per_run_directory(tmp_path):
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with (run_dir / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunError, match="another nas search is running"):
            run_search(tiny_config(), run_dir, progress=False, log=lambda m: None)


@pytest.mark.parametrize("bad", [{"budget": "300M"}, {"latency": 5}, {"supernet": 5},
                                 {"trials": True}, {"budget": 0}])
def test_edited_config_json_is_a_clear_error(tmp_path, bad, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"budget": 8_000_000, "space": TINY, **bad}
    (run_dir / "config.json").write_text(json.dumps(config))
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas: error:") and "Traceback" not in err


@pytest.mark.parametrize("objective, sampler, expected", [
    ("reward", "auto", "TPESampler"), ("pareto", "auto", "NSGAIISampler"),
    ("reward", "random", "RandomSampler"), ("pareto", "tpe", "TPESampler"),
    ("reward", "nsga2", "NSGAIISampler")])
def test_sampler_choice(objective, sampler, expected):
    from nas.search import make_sampler as _sampler

    config = SearchConfig(budget=300_000_000, objective=objective, sampler=sampler).validate()
    assert type(_sampler(config, 0)).__name__ == expected


def test_latency_settings_and_the_old_name_of_torch(tmp_path):
    assert SearchConfig(budget=1, latency="onnxruntime").validate().latency == "onnxruntime"
    # "measure" was torch eager's name: a run directory started with it continues
    old = SearchConfig.from_dict({"budget": 8_000_000, "space": TINY, "latency": "measure"})
    assert old.latency == "torch"
    assert not SearchConfig(budget=8_000_000, space=TINY).validate().differences(old)
    assert SearchConfig(budget=1, latency="onnxruntime-int8").validate().latency == \
        "onnxruntime-int8"
    with pytest.raises(RunError, match="--latency must be torch, onnxruntime, "
                                       "onnxruntime-int8 or lut:PATH"):
        SearchConfig(budget=1, latency="tvm").validate()


def test_an_int8_search_says_which_runtime_measured_and_calibrates_on_its_data(tmp_path):
    """--latency onnxruntime-int8: every feasible trial is quantised, calibrated on the
    supernet's training images at the space's target input, and the trials, trials.csv,
    the study and the report say so."""
    pytest.importorskip("onnxruntime")
    from nas.report import write_report
    from nas.search import open_run
    from nas.search.trials import latency_calibration
    from nas.train import load_supernet

    run_dir = tmp_path / "run"
    lines = []
    result = run_search(tiny_config(trials=3, latency="onnxruntime-int8"), run_dir,
                        progress=False, log=lines.append)
    assert result.feasible
    study = optuna.load_study(study_name="nas-search", storage=f"sqlite:///{run_dir / 'study.db'}")
    feasible = [t for t in study.trials if t.user_attrs.get("feasible")]
    assert {(t.user_attrs["latency_backend"], t.user_attrs["latency_source"])
            for t in feasible} == {("onnxruntime-int8", "measured")}
    assert all(t.user_attrs["latency_quantise_s"] > 0 for t in feasible)
    described = study.user_attrs["latency"]
    assert "onnxruntime-int8" in described and "calibrated on 16 training images" in described
    assert any(line.startswith("latency: measured, onnxruntime-int8") for line in lines)
    frame = pd.read_csv(run_dir / "trials.csv")
    assert set(frame.latency_backend[frame.feasible]) == {"onnxruntime-int8"}
    page = write_report(open_run(run_dir)).html.read_text()
    assert "measured in onnxruntime-int8" in page
    # what it calibrated on: the supernet's training images, at the target input (3x64x64)
    sn = load_supernet(run_dir / "supernet" / "supernet.pt", "cpu")
    images = latency_calibration(tiny_config(latency="onnxruntime-int8"), nas.load_space(TINY),
                                 sn)
    assert images.shape == (16, 3, 64, 64)
    assert latency_calibration(tiny_config(), nas.load_space(TINY), sn) is None


def test_unknown_sampler_is_an_error():
    with pytest.raises(RunError, match="--sampler must be one of"):
        SearchConfig(budget=300_000_000, sampler="grid").validate()


def test_hypervolume_is_exact():
    """Against inclusion-exclusion over the boxes each point dominates."""
    import itertools

    import numpy as np

    from nas.search.results import hypervolume

    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 8):
        points = rng.uniform(0, 1.2, (n, 3))  # some beyond the reference: they add nothing
        ref = np.ones(3)
        inside = points[np.all(points < ref, axis=1)]
        exact = 0.0
        for k in range(1, len(inside) + 1):
            for subset in itertools.combinations(inside, k):
                corner = np.max(subset, axis=0)  # the intersection of the boxes
                exact += (-1) ** (k + 1) * np.prod(ref - corner)
        assert hypervolume(points, ref) == pytest.approx(exact, abs=1e-12)
    assert hypervolume(np.empty((0, 3)), np.ones(3)) == 0.0


def test_one_trial_number_in_the_live_lines_the_files_and_the_commands(tmp_path, tiny_supernet,
                                                                      capsys):
    """Every trial is named by Optuna's number everywhere: the live lines (with the count of
    complete trials beside it), trials.csv, the summary, nas report and nas export --trial,
    with two workers and a trial retried after its worker died (a RUNNING trial of a
    process that is gone, left in the study before the search starts). The live lines
    printed the count alone ("trial 37/50"), which is another trial's number. ~45 s of CPU."""
    import re
    import socket
    import subprocess
    import sys

    from nas.search import labels_of, open_storage

    space = nas.load_space(TINY)
    url = f"journal:{tmp_path / 'study.journal'}"
    study = optuna.create_study(storage=open_storage(url, create=True), study_name="nas-search",
                                direction="maximize")
    study.enqueue_trial(labels_of(space, space.extreme_arch(False)))  # feasible: the smallest
    dead = study.ask()
    dead_arch = str(suggest_arch(dead, space))
    dead.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # its process is gone
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY,
         "--storage", url, "--supernet", tiny_supernet, "--trials", "6", "--workers", "2",
         "--val-images", "100", "--recalibration-batches", "1", "--latency-repeats", "1",
         "-o", str(run)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(run / "trials.csv").set_index("trial")
    assert len(frame) == 6 and dead.number not in frame.index  # it failed; its retry counts

    live = re.findall(r"\[worker \d\] trial (\d+) \((\d+)/6 done(?:, retry of trial (\d+))?\): "
                      r"(.*)", done.stdout)
    numbers = [int(n) for n, *_ in live]
    assert sorted(numbers) == sorted(frame.index)  # each complete trial once, by its number
    assert max(int(count) for _, count, *_ in live) == 6
    (retry,) = [int(n) for n, _, of, _ in live if of]
    assert [int(of) for *_, of, _ in live if of] == [dead.number]
    assert frame.loc[retry, "arch"] == dead_arch and frame.loc[retry, "feasible"]
    for n, _, _, what in live:
        row = frame.loc[int(n)]
        if row.feasible:  # the line's numbers are that trial's
            assert what.split()[:4] == [f"{row.flops / 1e6:.1f}M", "FLOPs", "acc",
                                        f"{row.accuracy:.2%}"], what

    best = frame[frame.feasible].reward.idxmax()
    (summary,) = re.findall(r"best reward: trial (\d+) \(([\d.]+%), ([\d.]+)M FLOPs", done.stdout)
    assert summary == (str(best), f"{frame.loc[best, 'accuracy']:.2%}",
                       f"{frame.loc[best, 'flops'] / 1e6:.1f}")

    assert main(["report", str(run), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front and all(frame.loc[r["trial"], "arch"] == r["arch"]
                         and frame.loc[r["trial"], "flops"] == r["flops"] for r in front)

    assert main(["export", str(run), "--trial", str(retry), "-o", str(tmp_path / "e")]) == 0
    assert f"exported trial {retry} " in capsys.readouterr().out
    target = json.loads((tmp_path / "e" / "arch.json").read_text())["target"]
    assert (target["arch"], target["flops"]) == (dead_arch, frame.loc[retry, "flops"])


def test_output_piped_into_head_stops_the_search_quietly(tiny_supernet, tmp_path):
    """``nas search ... | head -1``: the closed pipe is not the study's storage (it was
    reported as "cannot write the study ...: Broken pipe (a full disk ...?)", exit 2); the
    search stops without a word, and the rerun continues it. ~5 s."""
    import subprocess
    import sys

    run = tmp_path / "r"
    argv = [sys.executable, "-m", "nas.cli", "search", "--budget", "8M", "--space", TINY,
            "--supernet", tiny_supernet, "--trials", "20", "--val-images", "50",
            "--latency-repeats", "1", "-o", str(run)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # what head does after its line
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Broken pipe" not in err and "Traceback" not in err, err
    assert main(["search", "--budget", "8M", "--space", TINY, "--supernet", tiny_supernet,
                 "--trials", "20", "--val-images", "50", "--latency-repeats", "1",
                 "-o", str(run)]) == 0
    assert len(pd.read_csv(run / "trials.csv")) == 20
