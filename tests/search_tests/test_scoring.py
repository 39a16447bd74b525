"""The search's accuracy estimators, its re-ranking stage, and what the proxy cannot see."""

import json
from pathlib import Path

import optuna
import pytest

import nas
from nas.cli import main
from nas.search import SearchConfig, run_search

TINY = str(Path(__file__).parents[1] / "spaces" / "tiny.yaml")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(**kw):
    base = dict(budget=8_000_000, space=TINY, trials=5, supernet_steps=6, val_images=100,
                recalibration_batches=1, latency_repeats=1)
    base.update(kw)
    return SearchConfig(**base)


def test_naswot_search_trains_no_supernet(tmp_path, capsys):
    lines = []
    result = run_search(_config(estimator="naswot", objective="pareto"), tmp_path / "r",
                        progress=False, log=lines.append)
    assert result.trials == 5 and not (tmp_path / "r" / "supernet").exists()
    assert any("accuracy estimator: NASWOT" in line for line in lines)
    study = optuna.load_study(study_name="nas-search",
                              storage=f"sqlite:///{tmp_path / 'r' / 'study.db'}")
    feasible = [t for t in study.trials if t.user_attrs.get("feasible")]
    assert feasible and all(t.user_attrs["estimator"] == "naswot" for t in feasible)
    # the reward adds accuracies to costs: a NASWOT score is no accuracy
    assert main(["search", "--budget", "8M", "--space", TINY, "--estimator", "naswot",
                 "-o", str(tmp_path / "x")]) == 2
    assert "--objective pareto" in capsys.readouterr().err


def test_a_predictor_search_warns_where_the_predictor_extrapolates(tmp_path):
    import random

    from nas.estimators import save_predictor

    space = nas.load_space(TINY)
    rng = random.Random(0)
    archs = sorted({a.id: a for a in (space.sample(rng) for _ in range(30))}.values(),
                   key=lambda a: nas.count_cost(a).flops)
    middle = archs[len(archs) // 2 - 2: len(archs) // 2 + 2]  # a narrow FLOPs band
    save_predictor(tmp_path / "p.json", middle, [0.4, 0.5, 0.6, 0.7], "ridge", "summary", 28,
                   {})
    lines = []
    run_search(_config(estimator=f"predictor:{tmp_path / 'p.json'}", trials=8), tmp_path / "r",
               progress=False, log=lines.append)
    study = optuna.load_study(study_name="nas-search",
                              storage=f"sqlite:///{tmp_path / 'r' / 'study.db'}")
    flagged = [t for t in study.trials if t.user_attrs.get("caveat")]
    assert flagged and all("extrapolated" in t.user_attrs["caveat"] for t in flagged)
    assert sum("warning: trial" in line and "outside the" in line for line in lines) == 1
    assert any(f"warning: {len(flagged)} of " in line for line in lines)
    first = next(line for line in lines if "warning: trial" in line)
    assert f"trial {min(t.number for t in flagged)}:" in first  # the number trials.csv shows
    import pandas as pd

    table = pd.read_csv(tmp_path / "r" / "trials.csv")
    assert table["caveat"].notna().sum() == len(flagged)
    # the report marks a flagged member of the front (text table and page)
    from nas.report import front_json, front_table, write_report
    from nas.search import open_run

    run = open_run(tmp_path / "r")
    front = run.front()
    page = write_report(run).html.read_text()
    text = front_table(front)
    assert any(r.get("caveat") for r in front)  # this band is narrow: the front leaves it
    assert "(*) the estimator flagged" in text and "caveat: " in page
    assert any(r["caveat"] for r in json.loads(front_json(front)))
    assert text.count("(*)") == 1 + sum(bool(r.get("caveat")) for r in front)


def test_rerank_trains_the_best_and_export_best_means_the_winner(tmp_path, capsys):
    run = tmp_path / "r"
    searched = run_search(_config(trials=6, rerank=2, rerank_steps=4, rerank_seeds=2), run,
                          progress=False, log=lambda m: None)
    result = json.loads((run / "rerank.json").read_text())
    # the search's pick is the re-ranking's winner, with its standalone accuracy
    assert searched.best["trial"] == result["winner"]
    assert searched.best["standalone_accuracy"] == result["table"][0]["val_accuracy"]
    assert len(result["table"]) == 2 and result["winner"] == result["table"][0]["trial"]
    assert len((run / "rerank.csv").read_text().splitlines()) == 1 + 2 * 2
    rewards = [r["reward"] for r in result["table"]]
    assert rewards == sorted(rewards, reverse=True)
    # each trained network also scored in int8 (on the images of its float accuracy:
    # heldout_batches, tests/train_tests/test_calibration.py), the table their seed mean
    import pandas as pd

    rows = pd.read_csv(run / "rerank.csv")
    assert rows.int8_val_accuracy.between(0, 1).all()
    assert all(r["int8_val_accuracy"] == pytest.approx(
        rows[rows.trial == r["trial"]].int8_val_accuracy.mean()) for r in result["table"])
    assert main(["export", str(run), "--best", "--int8", "-o", str(tmp_path / "e")]) == 0
    meta = json.loads((tmp_path / "e" / "arch.json").read_text())
    assert meta["trial"] == result["winner"] and meta["weights"]["source"] == "rerank"
    assert meta["int8"]["calibration"]["data"] == "fashion-mnist"
    printed = capsys.readouterr().out
    assert "max |logits" in printed and "int8: " in printed
    # a second re-ranking of the same run trains nothing new; a row from before int8
    # accuracies gets its own, the same again (quantisation is deterministic)
    old = rows.copy()
    old.loc[0, "int8_val_accuracy"] = float("nan")
    old.to_csv(run / "rerank.csv", index=False)
    assert main(["rerank", str(run), "--top", "2", "--steps", "4", "--seeds", "2"]) == 0
    again = pd.read_csv(run / "rerank.csv")
    assert len(again) == 2 * 2
    assert again.int8_val_accuracy.tolist() == rows.int8_val_accuracy.tolist()
    assert "int8" in capsys.readouterr().out


def test_a_small_proxy_says_what_it_cannot_see():
    from nas.search.scoring import proxy_warning

    note = proxy_warning(nas.load_space("mixnet_300m"), 28)
    assert "s5.b1.k" in note and "--resolution 161" in note
    assert proxy_warning(nas.load_space(TINY), 28) is None
    # nothing wholly unseen: the note once read "cannot see some alternatives and some
    # alternatives of 1 more (s5.b1.k)"
    assert ("cannot see some alternatives of 1 decision(s) (s5.b1.k); the search decides"
            in proxy_warning(nas.load_space("mixnet_300m"), 100))


def test_space_show_proxy(capsys):
    assert main(["space", "show", "mixnet_300m", "--proxy", "32", "--json"]) == 0
    proxy = json.loads(capsys.readouterr().out)["proxy"]
    assert "s5.b1.k" in proxy["blind"] and proxy["sighted_resolution"] == 161


@pytest.mark.parametrize("spec", ["zen", "predictor:"])
def test_bad_estimator_is_a_clear_error(tmp_path, capsys, spec):
    assert main(["search", "--budget", "8M", "--space", TINY, "--estimator", spec,
                 "-o", str(tmp_path / "x")]) == 2
    assert "--estimator must be" in capsys.readouterr().err
