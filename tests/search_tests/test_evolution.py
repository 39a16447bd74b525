"""--sampler evolution: OFA's evolution on a predictor (nas/search/evolution.py).

What it promises: over-budget candidates are never scored, each generation is scored as one
batch, the candidate count is exact, the same seed gives the same evolution (whatever the
hash seed), it beats random search at its own objective, the study records --trials of its
candidates as ordinary trials (report and export read them), a killed run restarts to the
same trials, a latency budget holds through a table, slower features only reach the best few,
and what it cannot do is one line. Every random choice is seeded.
"""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

import nas
from nas.cli import main
from nas.errors import RunError
from nas.estimators import Predictor, PredictorEstimator, save_predictor
from nas.search import SearchConfig, run_search
from nas.search.evolution import Candidate, _nondominated, evolve, pick

TESTS = Path(__file__).parents[1]
TINY = str(TESTS / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def planted(space, weight=1.0):
    """A score that a search can climb: the share of decisions at their last value."""
    last = [d.values[-1] for d in space.decisions]

    def score(archs):
        out = []
        for arch in archs:
            genome = [space.choices_of(arch)[d.name] for d in space.decisions]
            out.append(weight * sum(g == v for g, v in zip(genome, last)) / len(last))
        return out

    return score


def test_over_budget_candidates_are_never_scored_and_every_generation_is_one_batch(spaces):
    space, budget = spaces["mixnet_300m"], 250_000_000
    calls = []
    inner = planted(space)

    def score(archs):
        assert all(nas.count_cost(a).flops <= budget for a in archs), "scored over budget"
        calls.append(len(archs))
        return inner(archs)

    evo = evolve(space, score, budget, population=40, candidates=1000, seed=0)
    assert evo.scored == sum(calls) == 1000  # exact, the last generation cut to fit
    assert len(calls) == evo.generations + 1 and calls[0] == 40 and max(calls[1:]) == 30
    assert evo.over_budget["flops"] > 0  # the budget cut some of what was made
    assert evo.generated == evo.scored + evo.over_budget["flops"]
    assert all(c.flops <= budget for c in evo.population + evo.front)
    assert set(evo.seconds) == {"space", "cost", "latency", "score", "select", "total"}


def test_a_latency_budget_holds_and_latency_enters_the_reward(spaces):
    space = spaces["mixnet_300m"]

    def ms(arch):  # a stand-in for a table: deterministic, grows with the network
        return nas.count_cost(arch).params / 2e5

    limit = 20.0
    inner = planted(space)

    def score(archs):
        assert all(ms(a) <= limit for a in archs), "scored over the latency budget"
        return inner(archs)

    evo = evolve(space, score, 400_000_000, beta=0.02, gamma=0.01, latency=ms,
                 latency_budget_ms=limit, population=30, candidates=600, seed=1)
    assert evo.over_budget["latency"] > 0
    for c in evo.population[:5]:
        assert c.latency_ms == ms(c.arch) <= limit
        assert c.reward == pytest.approx(c.accuracy - 0.02 * math.log(c.flops)
                                         - 0.01 * c.latency_ms)


def test_budgets_nothing_meets_are_one_line_and_rare_ones_still_fill_a_population(spaces):
    space = spaces["mixnet_300m"]
    with pytest.raises(RunError, match=r"nor its smallest one .*, 9.0 ms\): raise the budgets"):
        evolve(space, planted(space), 400_000_000, latency=lambda a: 9.0,
               latency_budget_ms=5.0, population=10, candidates=20)
    # 1% above the smallest architecture: uniform samples almost never fit
    smallest = nas.count_cost(space.extreme_arch(largest=False)).flops
    evo = evolve(space, planted(space), int(smallest * 1.01), population=10, candidates=40)
    assert evo.scored == 40 and all(c.flops <= smallest * 1.01 for c in evo.population)


def test_same_seed_same_evolution_another_seed_another(spaces):
    space = spaces["mixnet_300m"]
    runs = [evolve(space, planted(space), 250_000_000, population=30, candidates=500, seed=s)
            for s in (3, 3, 4)]
    same = [[(str(c.arch), c.reward) for c in r.population] for r in runs]
    assert same[0] == same[1] and same[0] != same[2]
    assert [str(c.arch) for c in runs[0].front] == [str(c.arch) for c in runs[1].front]


def test_the_evolution_does_not_depend_on_the_hash_seed():
    """Nothing it decides follows set or hash order: two processes with other hash seeds
    pick the same architectures."""
    code = ("import nas; from nas.search.evolution import evolve\n"
            "s = nas.load_space('mixnet_300m')\n"
            "f = lambda a: [nas.count_cost(x).params % 1000 / 1000 for x in a]\n"
            "e = evolve(s, f, 250_000_000, population=20, candidates=300, seed=0, keep=10)\n"
            "print([str(c.arch) for c in e.population + e.front + e.pool])\n")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1] and outs[0].startswith("['3x224x224")


def test_it_beats_random_search_at_its_own_objective(spaces):
    space, budget, n = spaces["mixnet_300m"], 250_000_000, 2000
    score = planted(space)
    evo = evolve(space, score, budget, population=100, candidates=n, seed=0)
    rng, drawn = random.Random(0), []
    while len(drawn) < n:
        arch = space.sample(rng)
        if nas.count_cost(arch).flops <= budget:
            drawn.append(arch)
    assert evo.population[0].reward > max(score(drawn)) + 0.05
    # elitism: the best of the last generation is the best of all it scored
    assert evo.history == sorted(evo.history) and evo.history[-1] == evo.population[0].reward


def test_the_front_is_nondominated_and_holds_the_most_accurate(spaces):
    space = spaces["mixnet_300m"]
    evo = evolve(space, planted(space), 300_000_000, population=30, candidates=600, seed=2,
                 keep=50)
    front = evo.front
    assert _nondominated(np.array([c.accuracy for c in front]),
                         np.array([c.flops for c in front], dtype=float),
                         np.array([c.latency_ms for c in front])).all()
    best = evo.population[0]  # beta = gamma = 0: the reward is the accuracy
    assert best.arch in {c.arch for c in front}
    assert len({c.arch for c in evo.pool}) == len(evo.pool) == 50
    assert [c.reward for c in evo.pool] == sorted((c.reward for c in evo.pool), reverse=True)


def test_pick_takes_the_best_then_the_front_spread_then_the_rest(spaces):
    archs = [spaces["mixnet_300m"].sample(i) for i in range(12)]
    # a front of 8 along FLOPs (more FLOPs, more accuracy), 4 dominated ones
    cands = [Candidate(a, 100 + 10 * i, 0.0, 0.1 * i, 0.1 * i) for i, a in enumerate(archs[:8])]
    cands += [Candidate(a, 200 + i, 0.0, 0.05 + 0.1 * i, 0.05 + 0.1 * i)
              for i, a in enumerate(archs[8:])]
    got = pick(cands, 6)
    assert [role for role, _ in got] == ["best", "front", "front", "front", "population",
                                         "population"]
    assert got[0][1] is cands[7]  # the best reward
    flops = [c.flops for role, c in got if role == "front"]
    assert flops[0] == 100 and flops == sorted(flops)  # spread from the lightest on
    assert len({c.arch for _, c in got}) == 6
    assert pick(cands, 1) == [("best", cands[7])] and pick([], 3) == []


# ------------------------------------------------------------------ nas search --sampler evolution
def tiny_predictor(path, extra=False, n=24):
    space = nas.load_space(TINY)
    rng = random.Random(5)
    archs = list({a.id: a for a in (space.sample(rng) for _ in range(n))}.values())
    targets = [0.3 + 0.02 * math.log(nas.count_cost(a).params) for a in archs]
    scores = {"naswot": [float(i % 7) for i in range(len(archs))]} if extra else {}
    settings = {"naswot_images": 16, "naswot_seed": 0} if extra else {}
    save_predictor(path, archs, targets, "ridge", "summary", None, scores,
                   settings=settings)
    return str(path)


def evo_config(predictor, **kw):
    base = dict(budget=8_000_000, space=TINY, trials=6, sampler="evolution", gamma=0.0,
                estimator=f"predictor:{predictor}", evolution_population=20,
                evolution_candidates=300, latency_repeats=1, val_images=200)
    base.update(kw)
    return SearchConfig(**base)


def study_of(run_dir):
    return optuna.load_study(study_name="nas-search", storage=f"sqlite:///{run_dir / 'study.db'}")


def test_the_study_records_trials_like_every_sampler_s_and_report_and_export_read_them(
        tmp_path, capsys):
    predictor = tiny_predictor(tmp_path / "p.json")
    run_dir, lines = tmp_path / "run", []
    result = run_search(evo_config(predictor), run_dir, progress=False, log=lines.append)
    study = study_of(run_dir)
    trials = study.trials
    assert result.trials == len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    space = nas.load_space(TINY)
    for t in trials:  # the parameters and attributes TPE's trials carry
        assert set(t.params) == {d.name for d in space.decisions}
        assert space.arch_from_choices(t.params) == nas.Architecture.parse(t.user_attrs["arch"])
        assert {"arch", "flops", "params", "proxy_flops", "latency_ms", "latency_backend",
                "latency_source", "accuracy", "reward", "estimator", "feasible"} <= set(
            t.user_attrs)
        assert t.user_attrs["flops"] <= 8_000_000 and t.value == t.user_attrs["reward"]
    assert len({t.user_attrs["arch"] for t in trials}) == 6
    assert [t.user_attrs["evolution"] for t in trials][0] == "best"
    assert trials[0].value == max(t.value for t in trials)
    summary = study.user_attrs["evolution"]
    assert summary["scored"] == 300 and summary["latency"].startswith("not searched")
    # the history ends at the best recorded trial (the reward is the accuracy here)
    history = summary["best_reward_per_generation"]
    assert len(history) == summary["generations"] + 1 and history == sorted(history)
    assert history[-1] == pytest.approx(trials[0].value, abs=1e-6)
    # the front's members: no recorded trial is at least as accurate with fewer FLOPs
    front = [t for t in trials if t.user_attrs["evolution"] == "front"]
    assert front and {t.user_attrs["evolution"] for t in trials} <= {"best", "front",
                                                                    "population"}
    for t in front:
        acc, flops = t.user_attrs["accuracy"], t.user_attrs["flops"]
        assert not any(o.user_attrs["accuracy"] >= acc and o.user_attrs["flops"] < flops
                       or o.user_attrs["accuracy"] > acc and o.user_attrs["flops"] <= flops
                       for o in trials), t.number
    assert any(line.startswith("evolution: 300 candidates scored") for line in lines)
    # the report and the export read the run unchanged
    assert main(["report", str(run_dir), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported and all(r["flops"] <= 8_000_000 for r in reported)
    assert main(["export", str(run_dir), "--best", "-o", str(tmp_path / "best")]) == 0
    exported = json.loads((tmp_path / "best" / "arch.json").read_text())
    assert exported["trial"] == trials[0].number == 0
    assert main(["export", str(run_dir), "--trial", "3", "-o", str(tmp_path / "t3")]) == 0
    # a rerun with the same total does nothing (no evolution); a larger one tops up
    lines.clear()
    run_search(evo_config(predictor), run_dir, progress=False, log=lines.append)
    assert len(study_of(run_dir).trials) == 6 and not any("evolution" in m for m in lines)
    run_search(evo_config(predictor, trials=9), run_dir, progress=False, log=lambda m: None)
    again = study_of(run_dir).trials
    assert len(again) == 9 and len({t.user_attrs["arch"] for t in again}) == 9
    assert [t.user_attrs["arch"] for t in again[:6]] == [t.user_attrs["arch"] for t in trials]


def test_a_killed_evolution_restarts_to_the_same_trials(tmp_path, monkeypatch):
    from nas.search import objective as objective_module

    predictor = tiny_predictor(tmp_path / "p.json")
    whole = tmp_path / "whole"
    run_search(evo_config(predictor), whole, progress=False, log=lambda m: None)
    real, calls = objective_module.Objective.evaluate, []

    def killed_at_the_fourth(self, trial, arch):
        calls.append(arch)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, trial, arch)

    monkeypatch.setattr(objective_module.Objective, "evaluate", killed_at_the_fourth)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_search(evo_config(predictor), cut, progress=False, log=lambda m: None)
    monkeypatch.setattr(objective_module.Objective, "evaluate", real)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study_of(cut).trials) == 3
    run_search(evo_config(predictor), cut, progress=False, log=lambda m: None)
    done = [t for t in study_of(cut).trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    assert ({t.user_attrs["arch"] for t in done}
            == {t.user_attrs["arch"] for t in study_of(whole).trials})


def test_a_latency_budget_through_a_table(tmp_path, monkeypatch):
    from nas.latency import LatencyTable
    from nas.latency.units import space_units

    space = nas.load_space(TINY)
    # a table of the whole space with made-up entries (no measuring): 1 ms per unit, plus
    # the unit's key length as a stand-in for its size
    entries = {key: 1.0 + len(key) / 100 for key in space_units(space)}
    LatencyTable("torch", entries, scale=0.5).save(tmp_path / "lut.json")
    table = LatencyTable.load(tmp_path / "lut.json")
    latencies = sorted(table.predict(space.sample(i)) for i in range(200))
    limit = round(latencies[len(latencies) // 3], 2)  # cuts about two thirds
    config = evo_config(tiny_predictor(tmp_path / "p.json"), latency=f"lut:{tmp_path}/lut.json",
                        latency_budget_ms=limit, gamma=0.001)
    real, scored = PredictorEstimator.score, []

    def priced_first(self, archs):  # every architecture the predictor sees
        scored.extend(archs)
        return real(self, archs)

    monkeypatch.setattr(PredictorEstimator, "score", priced_first)
    run_search(config, tmp_path / "run", progress=False, log=lambda m: None)
    study = study_of(tmp_path / "run")
    summary = study.user_attrs["evolution"]
    assert summary["over_budget"]["latency"] > 0 and "latency" not in summary
    assert len(scored) >= summary["scored"] == 300
    assert max(table.predict(a) for a in scored) <= limit  # checked before scoring
    for t in study.trials:
        assert t.user_attrs["latency_source"] == "table"
        assert t.user_attrs["latency_ms"] == pytest.approx(
            table.predict(nas.Architecture.parse(t.user_attrs["arch"])))
        assert t.user_attrs["latency_ms"] <= limit and t.user_attrs["feasible"]
        # the latency entered the reward the evolution ranked by
        assert t.value == pytest.approx(t.user_attrs["accuracy"] - 0.001 * t.user_attrs[
            "latency_ms"] - config.beta * math.log(t.user_attrs["flops"]))


def test_slower_features_score_only_the_best_few(tmp_path, monkeypatch):
    """A predictor that takes NASWOT: the evolution runs on its architecture-only refit;
    NASWOT is computed for the best --evolution-rescore, the front and the trials only."""
    from nas.estimators import naswot as naswot_module

    path = tiny_predictor(tmp_path / "p.json", extra=True)
    data = json.loads(Path(path).read_text())
    archs = [nas.Architecture.parse(a) for a in data["archs"]]
    alone = PredictorEstimator(path, architecture_only=True)
    refit = Predictor("ridge", "summary").fit(archs, data["targets"])
    assert alone.score(archs[:4]) == pytest.approx(refit.predict(archs[:4]))
    seen = []
    real = naswot_module.NaswotEstimator.score

    def counted(self, batch):
        seen.extend(batch)
        return real(self, batch)

    monkeypatch.setattr(naswot_module.NaswotEstimator, "score", counted)
    run_dir = tmp_path / "run"
    run_search(evo_config(path, evolution_rescore=10), run_dir, progress=False,
               log=lambda m: None)
    summary = study_of(run_dir).user_attrs["evolution"]
    assert summary["scored"] == 300
    assert 10 <= summary["rescored"] < 40  # the 10 best and the front
    assert len(seen) == summary["rescored"] + 6  # and each recorded trial again


def test_nas_search_sampler_evolution_on_the_command_line(tmp_path, capsys, monkeypatch):
    """The command as a user types it: exit 0, the evolution's line, --trials trials, and
    not one architecture over the FLOPs budget reaches the predictor."""
    predictor = tiny_predictor(tmp_path / "p.json")
    real, scored = PredictorEstimator.score, []

    def counted(self, archs):
        scored.extend(archs)
        return real(self, archs)

    monkeypatch.setattr(PredictorEstimator, "score", counted)
    out = tmp_path / "run"
    assert main(["search", "--budget", "6M", "--space", TINY, "--sampler", "evolution",
                 "--estimator", f"predictor:{predictor}", "--gamma", "0", "--trials", "4",
                 "--evolution-population", "12", "--evolution-candidates", "120",
                 "--latency-repeats", "1", "--val-images", "200", "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "evolution: 120 candidates scored" in printed.out + printed.err
    summary = study_of(out).user_attrs["evolution"]
    assert summary["scored"] == 120 and summary["over_budget"]["flops"] > 0
    assert len(scored) >= 120 and max(nas.count_cost(a).flops for a in scored) <= 6_000_000
    trials = study_of(out).trials
    assert len(trials) == 4 and all(t.user_attrs["flops"] <= 6_000_000 for t in trials)


@pytest.mark.parametrize("flags, words", [
    (["--estimator", "naswot", "--objective", "pareto"], "needs a fast estimator"),
    (["--objective", "pareto"], "maximises the reward"),
    ([], "cannot measure each one's latency (--latency torch)"),
    (["--gamma", "0", "--latency-budget", "20ms"], "--latency lut:FILE"),
    (["--gamma", "0", "--workers", "2", "--storage", "journal:j"], "leave out --workers"),
    (["--gamma", "0", "--evolution-population", "50", "--evolution-candidates", "10"],
     "at least --evolution-population"),
])
def test_what_it_cannot_do_is_one_line(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    args = ["search", "--budget", "8M", "--space", TINY, "--sampler", "evolution",
            "--estimator", "predictor:p.json", "-o", str(out), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas: error: ") and words in err and len(err.splitlines()) == 1
    assert not out.exists()
