"""The search controller: reward, budget constraint, warm start, storage and resume."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import nas
from nas import search as search_module
from nas.cli import main
from nas.search import SearchConfig, pareto_front, reward, run_search, suggest_arch, warm_start
from nas.train import RunError

TINY = str(Path(__file__).parent / "spaces" / "tiny.yaml")
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
    rows = [dict(trial=i, accuracy=a, flops=f, latency_ms=l) for i, (a, f, l) in enumerate(
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
    real_eval, real_lat = search_module.evaluate, search_module.arch_latency

    def counting_eval(*a, **k):
        calls["evaluate"] += 1
        return real_eval(*a, **k)

    def counting_latency(arch, **k):
        calls["latency"] += 1
        assert nas.count_cost(arch).flops <= 4_000_000, "an over-budget arch was timed"
        return real_lat(arch, **k)

    monkeypatch.setattr(search_module, "evaluate", counting_eval)
    monkeypatch.setattr(search_module, "arch_latency", counting_latency)
    result = run_search(tiny_config(budget=4_000_000, trials=10), tmp_path / "run",
                        progress=False, log=lambda m: None)
    study = optuna.load_study(study_name="nas-search",
                              storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    infeasible = [t for t in study.trials if t.user_attrs["flops"] > 4_000_000]
    assert infeasible, "the budget should cut some of the tiny space"
    for t in infeasible:
        assert t.system_attrs["constraints:flops"] > 0
        assert "accuracy" not in t.user_attrs and "latency_ms" not in t.user_attrs
    assert calls["evaluate"] == calls["latency"] == result["feasible"] == 10 - len(infeasible)


def test_search_end_to_end_writes_its_files_and_respects_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    result = run_search(tiny_config(), run_dir, progress=False, log=lambda m: None)
    assert result["trials"] == 6 and result["front"]
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
    # a rerun with more trials tops up to the new total; the same total does nothing
    assert run_search(tiny_config(trials=8), run_dir, progress=False,
                      log=lambda m: None)["trials"] == 8
    assert run_search(tiny_config(trials=8), run_dir, progress=False,
                      log=lambda m: None)["trials"] == 8


def test_interrupted_trials_are_failed_and_retried(tmp_path):
    run_dir = tmp_path / "run"
    run_search(tiny_config(trials=3), run_dir, progress=False, log=lambda m: None)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    study = optuna.load_study(study_name="nas-search", storage=storage)
    stale = study.ask()  # what a killed process leaves: a RUNNING trial with its params
    arch = suggest_arch(stale, nas.load_space(TINY))
    result = run_search(tiny_config(trials=5), run_dir, progress=False, log=lambda m: None)
    assert result["retried"] == 1 and result["trials"] == 5
    study = optuna.load_study(study_name="nas-search", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert optuna.trial.TrialState.RUNNING not in states
    retried = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               and t.user_attrs["arch"] == str(arch)]
    assert retried


def test_sigkill_during_search_loses_no_trial(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "search", "--budget", "8M", "--space", TINY, "-o",
           str(run_dir), "--trials", "14", "--supernet-steps", "8", "--val-images", "200",
           "--recalibration-batches", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = 0
    deadline = time.time() + 240
    while time.time() < deadline and seen < 4:
        line = proc.stdout.readline()
        seen += line.startswith("trial ")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen >= 4
    storage = f"sqlite:///{run_dir / 'study.db'}"
    before = {t.number: t.values for t in optuna.load_study(
        study_name="nas-search", storage=storage).trials
        if t.state == optuna.trial.TrialState.COMPLETE}
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="nas-search", storage=storage).trials
    complete = {t.number: t.values for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(complete) == 14
    assert all(complete[n] == v for n, v in before.items())  # nothing lost or redone
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in trials]


def test_pareto_mode_and_no_feasible_trial(tmp_path, capsys):
    result = run_search(tiny_config(objective="pareto", trials=4), tmp_path / "p",
                        progress=False, log=lambda m: None)
    assert result["trials"] == 4
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


def test_a_run_directory_keeps_its_settings(tmp_path):
    run_search(tiny_config(trials=2), tmp_path / "r", progress=False, log=lambda m: None)
    with pytest.raises(RunError, match="other settings"):
        run_search(tiny_config(trials=2, beta=0.5), tmp_path / "r", progress=False,
                   log=lambda m: None)
