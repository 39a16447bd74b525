"""`nas diagnose`: rank correlation arithmetic, the band, and a small resumable study."""

import json

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.diagnose import rank_correlation
from nas.errors import RunError
from nas.space import sample_band


def test_rank_correlation_against_hand_counts():
    x = [1, 2, 3, 4, 5]
    assert rank_correlation(x, x)["kendall"] == pytest.approx(1.0)
    assert rank_correlation(x, x[::-1])["spearman"] == pytest.approx(-1.0)
    # one discordant pair of 10: tau = (9 - 1) / 10
    r = rank_correlation(x, [1, 2, 3, 5, 4], resamples=500)
    assert r["kendall"] == pytest.approx(0.8)
    assert r["kendall_ci"][0] <= r["kendall"] <= r["kendall_ci"][1]
    noise = np.random.default_rng(0).random(40)
    assert abs(rank_correlation(noise, np.random.default_rng(1).random(40))["kendall"]) < 0.3


def test_band_sampling(spaces):
    space = spaces["mixnet_300m"]
    archs = sample_band(space, 5, 240_000_000, 300_000_000, seed=0)
    from nas import count_cost
    assert len({a.id for a in archs}) == 5
    assert all(240_000_000 <= count_cost(a).flops <= 300_000_000 for a in archs)
    with pytest.raises(RunError, match="its range is"):
        sample_band(space, 3, 1, 2, seed=0)


def test_small_diagnosis_resumes(search_run_dir, tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["diagnose", str(search_run_dir), "-o", str(out), "--archs", "4", "--band-low",
            "0.3", "--steps", "6", "--batch-size", "32", "--train-subset", "512"]
    assert main(argv) == 0
    assert "Kendall tau" in capsys.readouterr().out
    frame = pd.read_csv(out / "diagnose.csv")
    assert len(frame) == 4 and frame.supernet_acc.between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and -1 <= summary["kendall"] <= 1
    # a rerun with the same settings reuses every finished architecture
    first = frame.standalone_acc.tolist()
    assert main(argv) == 0
    assert pd.read_csv(out / "diagnose.csv").standalone_acc.tolist() == first
    assert main([*argv[:-2], "--train-subset", "256"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err


def test_diagnosis_refuses_another_supernet(search_run_dir, tmp_path, capsys):
    """Scores in OUT/diagnose.csv belong to one supernet: another run's must not mix in."""
    import shutil

    out = tmp_path / "d"
    argv = ["--archs", "3", "--band-low", "0.3", "--steps", "2", "--batch-size", "16",
            "--train-subset", "64"]
    assert main(["diagnose", str(search_run_dir), "-o", str(out), *argv]) == 0
    other = tmp_path / "other-run"
    shutil.copytree(search_run_dir, other)
    with (other / "supernet" / "supernet.pt").open("ab") as f:
        f.write(b"another supernet")  # any other bytes: refused before it is loaded
    capsys.readouterr()
    assert main(["diagnose", str(other), "-o", str(out), *argv]) == 2
    assert "another supernet" in capsys.readouterr().err


def test_a_supernet_given_as_a_directory_is_found(search_run_dir, tmp_path):
    """`nas search --supernet RUN` (a directory) is accepted: diagnose must find its file."""
    import shutil

    from nas.search import open_run

    run = tmp_path / "run"
    shutil.copytree(search_run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["supernet"] = str(search_run_dir / "supernet")
    (run / "config.json").write_text(json.dumps(config))
    assert open_run(run).supernet_path() == search_run_dir / "supernet" / "supernet.pt"
