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


def test_unfinished_trials_keep_numbers_aligned_and_are_not_lost(tmp_path):
    """Two unfinished trials (one queued, one RUNNING): their FAIL copies and retries keep
    in-memory and SQLite numbers equal, a queued trial keeps its fixed parameters, and a
    run that stops before reaching a retry leaves it for the next run."""
    from nas.study_store import BufferedStudy

    space = nas.load_space(TINY)
    url = f"sqlite:///{tmp_path / 's.db'}"
    durable = optuna.create_study(storage=url, study_name="s", direction="maximize")
    t = durable.ask()
    suggest_arch(t, space)
    durable.tell(t, 0.5)
    fixed = {d.name: d.labels[-1] for d in space.decisions}
    durable.enqueue_trial(fixed, user_attrs={"preset": "mixnet_s"})  # WAITING
    stale = durable.ask()  # pops the queued one: RUNNING with the fixed parameters...
    durable.enqueue_trial(fixed)  # ...and a second queued one
    durable.ask(fixed_distributions=None)
    running = durable.ask()  # a third unfinished trial, RUNNING with sampled parameters
    suggest_arch(running, space)

    def objective(trial):
        suggest_arch(trial, space)
        return 0.1

    study = BufferedStudy(durable, optuna.samplers.RandomSampler(0))
    assert study.retried >= 1
    study.optimize(objective, n_trials=0)  # stops before any retry
    again = BufferedStudy(optuna.load_study(study_name="s", storage=url),
                          optuna.samplers.RandomSampler(1))
    assert again.retried == study.retried  # nothing was lost
    again.optimize(objective, n_trials=6)
    final = optuna.load_study(study_name="s", storage=url).trials
    memory = again.memory.trials
    assert [t.number for t in final] == [t.number for t in memory]
    assert all(a.params == b.params for a, b in zip(final, memory))
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in final]
    assert optuna.trial.TrialState.WAITING not in [t.state for t in final]
    retries = [t for t in final if "retry_of" in t.user_attrs]
    assert {t.user_attrs["retry_of"] for t in retries} == {stale.number, 2, running.number}
    by_origin = {t.user_attrs["retry_of"]: t for t in retries}
    assert by_origin[stale.number].params == fixed  # not a random architecture
    assert by_origin[running.number].params == running.params


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
    ("reward", "auto", "StaticSpaceTPESampler"), ("pareto", "auto", "NSGAIISampler"),
    ("reward", "random", "RandomSampler"), ("pareto", "tpe", "StaticSpaceTPESampler"),
    ("reward", "nsga2", "NSGAIISampler")])
def test_sampler_choice(objective, sampler, expected):
    from nas.search import _sampler

    config = SearchConfig(budget=300_000_000, objective=objective, sampler=sampler).validate()
    assert type(_sampler(config, 0)).__name__ == expected


def test_unknown_sampler_is_an_error():
    with pytest.raises(RunError, match="--sampler must be one of"):
        SearchConfig(budget=300_000_000, sampler="grid").validate()
