"""Latency lookup table: the fit's arithmetic, files, and a real (small) build."""

import json
import random

import pytest

from nas.latency.table import KINDS, LatencyTable, build_table


def test_fit_recovers_known_per_kind_weights():
    rng = random.Random(0)
    true = dict(zip(KINDS, [1.0, 1.3, 0.7, 1.1, 2.0, 0.9, 1.0]))
    rows = [[rng.uniform(0.1, 5) for _ in KINDS] + [rng.randint(20, 90)] for _ in range(30)]
    targets = [sum(true[k] * v for k, v in zip(KINDS, r)) + 0.01 * r[-1] for r in rows]
    table = LatencyTable()
    table.fit(rows, targets, per_kind=True, ridge=0.0)
    assert table.weights == pytest.approx(true, abs=1e-6)
    assert table.per_op == pytest.approx(0.01, abs=1e-6)
    table.fit(rows, targets, per_kind=False)
    scale = table.weights["dw"]
    table.fit(rows, targets, per_kind=True)  # the default pull toward the shared scale
    for kind, w in table.weights.items():  # shrunk toward the shared scale, not past it
        lo, hi = sorted((scale, true[kind]))
        assert lo - 0.05 <= w <= hi + 0.05, kind
    table.fit(rows, targets, per_kind=False)  # one shared scale
    assert len(set(table.weights.values())) == 1


def test_a_kind_without_signal_keeps_the_shared_scale():
    # se's sum is a fixed fraction of dw's in every network: the data cannot tell them
    # apart, and an unpulled fit would give one of them weight 0
    rng = random.Random(1)
    rows = []
    for _ in range(24):
        dw = rng.uniform(1, 5)
        rows.append([0.2, rng.uniform(1, 4), dw, 1.0, 0.3 * dw, 1.0, 0.1, rng.randint(30, 80)])
    targets = [1.2 * sum(r[:-1]) for r in rows]
    table = LatencyTable()
    table.fit(rows, targets, per_kind=True)
    assert table.weights["se"] == pytest.approx(1.2, rel=0.1)
    assert table.weights["dw"] == pytest.approx(1.2, rel=0.1)


def test_save_load_and_old_format(tmp_path):
    table = LatencyTable({"dw|8|3|1|16": 0.5}, {k: 1.5 for k in KINDS}, per_op=0.02)
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert back.entries == table.entries and back.weights == table.weights
    assert back.per_op == 0.02
    (tmp_path / "old.json").write_text(json.dumps({
        "format": "nas-latency-lut/1", "threads": 1, "repeats": 5, "scale": 1.2,
        "per_op": 0.0, "entries": {}}))
    assert set(LatencyTable.load(tmp_path / "old.json").weights.values()) == {1.2}


@pytest.mark.parametrize("text", ["{", '{"format": "x"}',
                                  '{"format": "nas-latency-lut/2", "entries": {}}',
                                  '{"format": "nas-latency-lut/2", "threads": 1, "repeats": 5, '
                                  '"weights": {"dw": "fast"}, "entries": {}}'])
def test_malformed_table_is_a_clear_error(tmp_path, text):
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(ValueError, match="t.json"):
        LatencyTable.load(tmp_path / "t.json")


def test_build_and_predict_a_small_space(spaces):
    space = spaces["tiny"]
    table = build_table(space, archs=2, calibrate=3, repeats=2, progress=False)
    assert table.entries and all(v > 0 for v in table.entries.values())
    arch = space.sample(random.Random(9))
    predicted = table.predict(arch)
    assert predicted > 0
    f = table.features(arch)
    assert predicted == pytest.approx(
        sum(table.weights[k] * v for k, v in zip(KINDS, f)) + table.per_op * f[-1])
