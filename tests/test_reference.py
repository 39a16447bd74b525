"""nas.reference: the summary (reliability from the seeds complete so far), locked row
appends, and nas predictor fit pooling references."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.reference import summarize


def test_summary_uses_the_complete_seeds_while_another_is_in_progress(tmp_path):
    """Seeds 0 and 2 trained on all 10 architectures, seed 1 on 3: the reliability is
    measured on the 10 with two seeds (a seed in progress must not shrink it to 3), and
    two seeds that rank alike give tau 1 and a ceiling of 1."""
    ids = [f"{i:016x}" for i in range(10)]
    pd.DataFrame({"index": range(10), "id": ids, "flops": 1, "params": 1, "arch": "x"}).to_csv(
        tmp_path / "archs.csv", index=False)
    acc = np.linspace(0.40, 0.50, 10)
    rows = [{"id": i, "seed": s, "val_accuracy": a + 0.001 * s, "steps": 1, "train_images": 1,
             "wall_s": 1.0} for s in (0, 2) for i, a in zip(ids, acc)]
    rows += [{"id": i, "seed": 1, "val_accuracy": 0.5 - a, "steps": 1, "train_images": 1,
              "wall_s": 1.0} for i, a in zip(ids[:3], acc)]
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    summary = summarize(tmp_path)
    assert (summary.archs, summary.seeds) == (10, 2)
    assert summary.pairwise_tau == pytest.approx(1.0)
    assert summary.ceiling_tau == pytest.approx(1.0)
    assert (tmp_path / "summary.json").is_file()


def test_a_one_seed_reference_writes_strict_json(tmp_path):
    """A reference of other architectures trained once (predictor training data) has no
    seed spread: null, not NaN, which strict JSON readers refuse."""
    import json

    ids = [f"{i:016x}" for i in range(4)]
    pd.DataFrame({"index": range(4), "id": ids, "flops": 1, "params": 1, "arch": "x"}).to_csv(
        tmp_path / "archs.csv", index=False)
    pd.DataFrame([{"id": i, "seed": 0, "val_accuracy": 0.4 + 0.01 * n, "steps": 1,
                   "train_images": 1, "wall_s": 1.0} for n, i in enumerate(ids)]).to_csv(
        tmp_path / "rows.csv", index=False)
    assert summarize(tmp_path).mean_seed_std is None
    text = (tmp_path / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def _append_many(path, writer: int, count: int) -> None:
    from nas.files import append_csv_row

    for i in range(count):
        append_csv_row(path, {"writer": writer, "i": i, "text": "a,b \"quoted\""})


def test_rows_appended_by_several_processes_are_all_kept_under_one_header(tmp_path):
    """The reference's shards (and the found-vs-MixNet study's) append to one rows.csv at
    once: every row arrives whole, the header once."""
    import multiprocessing

    path = tmp_path / "rows.csv"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 200)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    table = pd.read_csv(path)
    assert len(table) == 600 and set(table.text) == {"a,b \"quoted\""}
    assert sorted(zip(table.writer, table.i)) == [(w, i) for w in range(3) for i in range(200)]


def test_a_writer_that_waited_for_the_lock_writes_no_second_header(tmp_path):
    """The writer that opens the empty file first but gets the lock second must see the
    other's header (the size is read under the lock, not at open)."""
    import fcntl
    import threading

    from nas.files import append_csv_row, read_csv_rows

    path = tmp_path / "rows.csv"
    path.touch()
    with open(path, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        waiting = threading.Thread(target=append_csv_row, args=(path, {"a": 2, "b": 3}))
        waiting.start()  # opens the empty file, then blocks on the lock
        waiting.join(0.5)
        holder.write("a,b\n1,1\n")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_UN)
    waiting.join(10)
    assert path.read_text() == "a,b\n1,1\n2,3\n"
    assert read_csv_rows(path) == [{"a": "1", "b": "1"}, {"a": "2", "b": "3"}]


def test_a_row_goes_under_the_files_header_or_is_refused(tmp_path):
    from nas.errors import RunError
    from nas.files import append_csv_row, read_csv_rows

    path = tmp_path / "rows.csv"
    append_csv_row(path, {"a": 1, "b": 2})
    append_csv_row(path, {"b": 4, "a": 3})  # another key order: the header's order wins
    assert read_csv_rows(path) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    with pytest.raises(RunError, match="rows.csv: its columns are a, b; this row has a, c"):
        append_csv_row(path, {"a": 5, "c": 6})
    assert path.read_text() == "a,b\n1,2\n3,4\n"
    assert read_csv_rows(tmp_path / "absent.csv") == []


def test_a_rows_file_that_cannot_be_written_is_named(tmp_path):
    from nas.files import append_csv_row

    with pytest.raises(OSError, match="missing"):
        append_csv_row(tmp_path / "missing" / "rows.csv", {"a": 1})


def _reference(path, archs, seeds, lr=0.002):
    """A reference directory as nas reference writes it, with made-up accuracies."""
    import json

    from nas.reference import ReferenceConfig

    path.mkdir()
    tiny = str(Path(__file__).parent / "spaces" / "tiny.yaml")
    config = ReferenceConfig(space=tiny, data="fashion-mnist", lr=lr)
    (path / "reference.json").write_text(json.dumps(config.to_dict()))
    pd.DataFrame({"index": range(len(archs)), "id": [a.id for a in archs], "flops": 1,
                  "params": 1, "arch": [str(a) for a in archs]}).to_csv(path / "archs.csv",
                                                                       index=False)
    pd.DataFrame([{"id": a.id, "seed": s, "val_accuracy": 0.3 + 0.01 * n + 0.001 * s,
                   "steps": 1, "train_images": 1, "wall_s": 1.0}
                  for n, a in enumerate(archs) for s in seeds]).to_csv(path / "rows.csv",
                                                                       index=False)
    return str(path)


def test_predictor_fit_pools_references_of_one_recipe(tmp_path, capsys):
    """Two references (one 2-seed, one 1-seed, one architecture in both) make one predictor
    of their union; a reference of another recipe is refused, exit 2."""
    import random

    import nas
    from nas.cli import main
    from nas.estimators import PredictorEstimator

    space = nas.load_space(str(Path(__file__).parent / "spaces" / "tiny.yaml"))
    rng = random.Random(0)
    archs = list({a.id: a for a in (space.sample(rng) for _ in range(30))}.values())[:14]
    a = _reference(tmp_path / "a", archs[:8], seeds=(0, 1))
    b = _reference(tmp_path / "b", archs[7:], seeds=(0,))
    out = tmp_path / "p.json"
    assert main(["predictor", "fit", a, b, "-o", str(out)]) == 0
    assert PredictorEstimator(out).trained_on == 14
    assert "14 architectures of" in capsys.readouterr().out
    assert main(["predictor", "fit", a, b, "--min-seeds", "2", "-o", str(out)]) == 0
    assert PredictorEstimator(out).trained_on == 8
    other = _reference(tmp_path / "c", archs[:6], seeds=(0,), lr=0.01)
    assert main(["predictor", "fit", a, other, "-o", str(tmp_path / "q.json")]) == 2
    err = capsys.readouterr().err
    assert "lr differ" in err and other in err and not (tmp_path / "q.json").exists()


def test_a_shard_with_nothing_to_train_says_so(tmp_path, capsys):
    """``--shard 3/4`` of 3 architectures has none: one line, exit 0, and the sample is
    listed for the shards that have (no summary of rows that do not exist yet)."""
    from nas.cli import main

    tiny = str(Path(__file__).parent / "spaces" / "tiny.yaml")
    out = tmp_path / "ref"
    assert main(["reference", "--space", tiny, "--budget", "8M", "--archs", "3", "--seeds",
                 "0", "--shard", "3/4", "--epochs", "0.01", "-o", str(out)]) == 0
    assert "nothing for --shard 3/4 to train, and no row yet" in capsys.readouterr().out
    assert len(pd.read_csv(out / "archs.csv")) == 3 and not (out / "rows.csv").exists()
