"""nas search --estimator predictor: a reference of the task, the predictor fitted on it, the
search on it and the re-ranking, in one command; a rerun continues the stage that was cut,
a reference is reused by the runs and budgets beside it, bad settings cost seconds."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from photos import photo_folder
from processes import kill_after_file

import nas
from nas.cli import main
from nas.runs import ReferenceDir, SearchDir
from nas.search import SearchConfig
from nas.search.pipeline import plan_reference, reference_key

TINY = str(Path(__file__).parent.parent / "spaces" / "tiny.yaml")
# 5 architectures (the fewest a predictor takes), trained for a step or two each; an
# evolution of 400 candidates; one architecture re-ranked for 2 steps
FAST = ["--space", TINY, "--estimator", "predictor", "--reference-archs", "5",
        "--evolution-candidates", "400", "--evolution-population", "100", "--trials", "3",
        "--gamma", "0", "--rerank-steps", "2", "--rerank-seeds", "1"]


def _band(run, budget, data="fashion-mnist", **settings) -> ReferenceDir:
    config = SearchConfig(budget=budget, space=TINY, data=data, estimator="predictor",
                          **settings).validate().resolved()
    return SearchDir(run).reference_cache(reference_key(config)).band(budget)


def _photos(tmp_path) -> str:
    """160 small images of 2 classes: one training step an epoch at batch 128, and a
    validation carve of 16 (Fashion-MNIST's 6,000 would take most of these tests' time)."""
    return str(photo_folder(tmp_path / "photos", per_class=80, size=(32, 32)))


def test_one_command_builds_a_reference_fits_searches_and_reranks(tmp_path, capsys):
    """The plan first (every stage with its cost), then 5 reference architectures trained
    in the cache beside the run, the predictor fitted on them, the evolution on it and the
    best re-ranked; a rerun finds every stage done and trains nothing."""
    data = _photos(tmp_path)
    run = tmp_path / "runs" / "a"
    command = ["search", "--budget", "8M", *FAST, "--data", data, "--rerank", "1", "-o",
               str(run)]
    assert main(command) == 0
    out = capsys.readouterr().out
    plan = out[out.index("plan (--estimator predictor"):out.index("4. re-rank")]
    assert "0 trained in the band, 5 to train" in plan
    assert re.search(r"1 steps of [0-9.]+ s and the validation, timed here on c", plan)
    assert "2. fit:" in plan and "evolution of 400 candidates" in plan
    assert out.index("4. re-rank:   the 1 best") < out.index("[1/5] seed 0")
    band = _band(run, 8_000_000, data=data)
    assert band.path.parent.parent == tmp_path / "runs" / "references"
    assert len(pd.read_csv(band.rows)) == 5
    assert json.loads((run / "config.json").read_text())["estimator"] == "predictor"
    fitted = json.loads(SearchDir(run).predictor.read_text())
    assert len(fitted["archs"]) == 5 and fitted["settings"]["reference"] == [str(band)]
    assert "accuracy estimator: predictor" in out and "re-ranking winner: trial" in out
    assert SearchDir(run).rerank_json.exists()

    assert main(command) == 0
    out = capsys.readouterr().out
    assert "1. reference: done" in out and "4. re-rank:   done" in out
    assert "seed 0 arch" not in out and len(pd.read_csv(band.rows)) == 5


def _reference_rows(band: ReferenceDir, archs) -> None:
    """Rows of a finished one-seed reference of ``archs`` in ``band`` (made-up accuracies)."""
    from nas.cost import count_cost

    pd.DataFrame({"index": range(len(archs)), "id": [a.id for a in archs],
                  "flops": [count_cost(a).flops for a in archs], "params": 1,
                  "arch": [str(a) for a in archs]}).to_csv(band.archs, index=False)
    pd.DataFrame([{"id": a.id, "seed": 0, "val_accuracy": 0.5 + 0.01 * i, "steps": 1,
                   "train_images": 1, "wall_s": 12.0} for i, a in enumerate(archs)]
                 ).to_csv(band.rows, index=False)


def test_a_reference_is_reused_by_other_runs_and_budgets(tmp_path):
    """A reference trained for one run serves every run beside it at that budget, and a
    run at another budget trains only what its band lacks; the fit pools them all, and the
    plan's time per architecture is the one measured."""
    from nas.reference import ReferenceConfig
    from nas.search.pipeline import reference_settings
    from nas.space import load_space, sample_band

    runs = tmp_path / "runs"
    first = SearchConfig(budget=8_000_000, space=TINY, estimator="predictor",
                         reference_archs=6).validate().resolved()
    band = _band(runs / "a", 8_000_000, reference_archs=6)
    band.path.mkdir(parents=True)
    settings: ReferenceConfig = reference_settings(first, 6)
    (band.settings).write_text(json.dumps(settings.to_dict()))
    archs = sample_band(load_space(TINY), 6, 6_400_000, 8_000_000, 0)
    _reference_rows(band, archs)

    again = plan_reference(first, SearchDir(runs / "b"))  # another run, the same budget
    assert (again.have, again.todo, again.pooled) == (6, 0, [band])
    assert again.seconds_per_arch == 12.0

    lower = SearchConfig(budget=7_000_000, space=TINY, estimator="predictor",
                         reference_archs=6).validate().resolved()
    inside = sum(5_600_000 <= c <= 7_000_000
                 for c in pd.read_csv(band.archs).flops)
    plan = plan_reference(lower, SearchDir(runs / "c"))
    assert 0 < inside < 6
    assert plan.band == _band(runs / "c", 7_000_000) and plan.band.path.parent == band.path.parent
    assert plan.have == inside and plan.todo >= 6 - inside
    # what the new band's sample shares with the first is skipped, not trained twice (the
    # next test has a sample that does share some)
    first_ids = set(pd.read_csv(band.archs).id)
    sample = {nas.Architecture.parse(a).id for a in plan.archs}
    assert plan.skip == sample & first_ids
    assert plan.todo == len(sample - first_ids)
    assert plan.pooled == [band, plan.band]


def test_a_band_beside_another_trains_only_new_architectures(tmp_path, capfd):
    """A search at a lower budget whose band overlaps a trained one (7.55M beside 8M: the
    lower band's sample of 3 holds 2 of the first's): those are not trained again, only
    enough new ones for the 5 asked, and the fit pools 5 distinct architectures or more.
    Two worker processes: the second's share (the sample's second architecture) is all
    skipped, and it stops without a row to summarise."""
    from nas.search.pipeline import reference_settings
    from nas.space import load_space, sample_band

    data = _photos(tmp_path)
    runs = tmp_path / "runs"
    first = SearchConfig(budget=8_000_000, space=TINY, data=data, estimator="predictor",
                         reference_archs=5).validate().resolved()
    high = _band(runs / "a", 8_000_000, data=data)
    high.path.mkdir(parents=True)
    high.settings.write_text(json.dumps(reference_settings(first, 5).to_dict()))
    _reference_rows(high, sample_band(load_space(TINY), 5, 6_400_000, 8_000_000, 0))
    assert main(["search", "--budget", "7.55M", *FAST, "--data", data, "--rerank", "0",
                 "--evolution-candidates", "100", "--workers", "2", "-o", str(runs / "b")]) == 0
    out = capfd.readouterr().out
    low = _band(runs / "b", 7_550_000, data=data)
    high_ids = set(pd.read_csv(high.rows).id)
    shared = high_ids & set(pd.read_csv(low.archs).id)
    assert len(shared) == 2  # the case at stake: the samples overlap
    trained = pd.read_csv(low.rows)
    assert not set(trained.id) & high_ids and len(trained) == 1
    have, todo = map(int, re.search(r"(\d+) trained in the band, (\d+) to train", out).groups())
    assert (have, todo) == (4, 1) and "reference 0/2: [1/1] seed 0" in out
    assert "reference 1/2: [" not in out
    fitted = json.loads(SearchDir(runs / "b").predictor.read_text())
    assert len(fitted["archs"]) == 6  # 5 of the first band's and the new one


def test_a_killed_reference_continues_where_it_was_cut(tmp_path):
    """SIGKILL once the reference's first architecture is in: the rerun's plan counts it,
    trains only the others (no architecture twice) and the run completes."""
    data = _photos(tmp_path)
    run = tmp_path / "runs" / "a"
    flags = ["search", "--budget", "8M", *FAST, "--data", data, "--rerank", "1", "-o",
             str(run)]
    band = _band(run, 8_000_000, data=data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    kill_after_file([sys.executable, "-m", "nas", *flags], band.rows, env=env)
    done = len(pd.read_csv(band.rows))
    assert 1 <= done < 5 and not SearchDir(run).predictor.exists()
    proc = subprocess.run([sys.executable, "-m", "nas", *flags], env=env,
                                        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{done} trained in the band, {5 - done} to train" in proc.stdout
    rows = pd.read_csv(band.rows)
    assert len(rows) == 5 and rows.id.is_unique
    assert SearchDir(run).predictor.exists() and SearchDir(run).rerank_json.exists()


def test_workers_split_the_reference_and_the_evolution_runs_in_one_process(tmp_path,
                                                                           capsys):
    """--workers 2 with the evolution: two processes train the reference's two shards
    (each architecture once), no shared storage needed; then the one process searches."""
    data = _photos(tmp_path)
    run = tmp_path / "runs" / "a"
    assert main(["search", "--budget", "8M", *FAST, "--data", data, "--rerank", "0",
                 "--workers", "2", "-o", str(run)]) == 0
    out = capsys.readouterr().out
    assert "5 to train over 2 processes" in out and "reference: 2 processes, pids" in out
    rows = pd.read_csv(_band(run, 8_000_000, data=data).rows)
    assert len(rows) == 5 and rows.id.is_unique
    assert "3 trials, 3 within budget" in out


def test_torchrun_ranks_share_the_reference_and_rank_0_does_the_rest(tmp_path):
    """Two processes as torchrun starts them (RANK, WORLD_SIZE): each trains its shard of
    the reference; rank 1 then stops without a word, rank 0 waits for its rows, fits,
    searches and reports."""
    data = _photos(tmp_path)
    run = tmp_path / "runs" / "a"
    command = [sys.executable, "-m", "nas", "search", "--budget", "8M", *FAST, "--data", data,
               "--rerank", "0", "-o", str(run)]
    env = {**os.environ, "WORLD_SIZE": "2", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen(command, env={**env, "RANK": str(rank)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in (0, 1)]
    (out0, err0), (out1, err1) = (p.communicate(timeout=600) for p in procs)
    assert [p.returncode for p in procs] == [0, 0], err0 + err1
    assert "plan (--estimator predictor" in out0 and "3 trials, 3 within budget" in out0
    assert "plan" not in out1 and "within budget" not in out1 and "seed 0 arch" in out1
    rows = pd.read_csv(_band(run, 8_000_000, data=data).rows)
    assert len(rows) == 5 and rows.id.is_unique


BAD = {
    "no such reference": (["--reference", "{tmp}/none"], "not a reference directory"),
    "reference of another space": (["--reference", "{tmp}/other"], "a reference of space"),
    "reference of other data": (["--reference", "{tmp}/cifar"], "a reference of the data"),
    "reference without the predictor": (["--estimator", "supernet", "--reference",
                                         "{tmp}/other"], "--reference is what"),
    "too small a reference": (["--reference-archs", "4"], "--reference-archs must be >= 5"),
    "evolution that cannot price latency": (["--sampler", "evolution", "--gamma", "0.001"],
                                            "cannot measure each one's latency"),
    "search workers on SQLite": (["--sampler", "tpe", "--workers", "2"],
                                 "--workers needs a storage"),
    # at the tiny space's smallest FLOPs the band holds 1 architecture: refused before a
    # config.json would tie the run directory to this budget (a rerun at another failed)
    "a band the space cannot fill": (["--budget", "2936320"], "found only 1 architectures"),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_bad_settings_are_refused_in_seconds_before_any_training(bad, tmp_path, capsys):
    from nas.reference import ReferenceConfig

    other = tmp_path / "other"
    other.mkdir()
    (other / "reference.json").write_text(json.dumps(ReferenceConfig().to_dict()))
    cifar = tmp_path / "cifar"  # its data path saved where the data no longer is
    cifar.mkdir()
    (cifar / "reference.json").write_text(json.dumps(ReferenceConfig(
        space=TINY, data="/gone/cifar10-jpg.tar.gz").to_dict()))
    flags, fragment = BAD[bad]
    flags = [f.format(tmp=tmp_path) for f in flags]
    run = tmp_path / "runs" / "a"
    started = time.monotonic()
    code = main(["search", "--budget", "8M", *FAST, *flags, "-o", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert time.monotonic() - started < 30
    assert not (tmp_path / "runs").exists()


def test_the_default_search_is_unchanged():
    """The supernet stays the default estimator, with TPE and no re-ranking; the
    predictor's own run evolves when it can price every candidate and re-ranks 3."""
    default = SearchConfig(budget=1).validate()
    assert (default.estimator, default.sampler_kind, default.rerank_top) == ("supernet",
                                                                             "tpe", 0)
    built = SearchConfig(budget=1, estimator="predictor", gamma=0).validate()
    assert (built.sampler_kind, built.rerank_top, built.search_workers) == ("evolution", 3, 1)
    measured = SearchConfig(budget=1, estimator="predictor").validate()
    assert measured.sampler_kind == "tpe"
