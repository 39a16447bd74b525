"""Latency lookup table: the fit's arithmetic, files, a full build that never measures
while predicting, a killed build that continues, and the command. About 20 s (torch)."""

import json
import random

import pytest

from nas.cli import main
from nas.latency import LatencyTable, build_table, make_latency_model
from nas.latency.table import FORMAT
from nas.latency.units import space_units, unit_keys


def test_fit_recovers_a_known_scale_and_per_unit_cost():
    rng = random.Random(0)
    sums = [rng.uniform(5, 40) for _ in range(12)]
    counts = [rng.randint(12, 30) for _ in range(12)]
    table = LatencyTable()
    table.fit(sums, counts, [0.8 * s + 0.05 * n for s, n in zip(sums, counts)])
    assert table.scale == pytest.approx(0.8) and table.per_unit == pytest.approx(0.05)
    table.fit([10.0], [20], [8.0])  # one network: the plain ratio, never a negative cost
    assert table.scale > 0 and table.per_unit >= 0
    assert table.scale * 10 + table.per_unit * 20 == pytest.approx(8.0)


def test_save_and_load(tmp_path):
    table = LatencyTable("onnxruntime", {"ds|16|16|16|1|3|16|0|1|1|relu|1|112": 0.5},
                         scale=0.8, per_unit=0.02, threads=2, repeats=7)
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert (back.entries, back.scale, back.per_unit, back.threads, back.repeats) == (
        table.entries, 0.8, 0.02, 2, 7)
    assert back.backend == "onnxruntime" and back.source == "table"
    assert str(tmp_path / "t.json") in back.describe()


def test_a_per_operation_table_of_an_older_nas_says_rebuild(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({
        "format": "nas-latency-lut/2", "threads": 1, "repeats": 5, "weights": {},
        "per_op": 0.0, "entries": {}}))
    with pytest.raises(ValueError, match="old.json.*rebuild it with: nas latency build"):
        LatencyTable.load(tmp_path / "old.json")


@pytest.mark.parametrize("text", [
    "{", '{"format": "x"}', f'{{"format": "{FORMAT}", "entries": {{}}}}',
    f'{{"format": "{FORMAT}", "runtime": "torch", "threads": 1, "repeats": 5, "scale": 1, '
    '"per_unit": 0, "entries": {"a": "fast"}}',
    f'{{"format": "{FORMAT}", "runtime": "torch", "threads": 1, "repeats": 5, "scale": -1, '
    '"per_unit": 0, "entries": {}}',
    f'{{"format": "{FORMAT}", "runtime": "tensorrt", "threads": 1, "repeats": 5, '
    '"scale": 1, "per_unit": 0, "entries": {}}'])
def test_malformed_table_is_a_clear_error(tmp_path, text):
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(ValueError, match="t.json"):
        LatencyTable.load(tmp_path / "t.json")


def test_a_full_table_never_measures_while_predicting(spaces, tmp_path):
    space = spaces["tiny"]
    table = build_table(space, archs=0, calibrate=2, repeats=1, progress=False)
    assert set(table.entries) == set(space_units(space))
    assert all(v > 0 for v in table.entries.values())
    table.misses = 0
    rng = random.Random(9)
    for _ in range(20):
        arch = space.sample(rng)
        keys = unit_keys(arch)
        assert table.predict(arch) == pytest.approx(
            table.scale * sum(table.entries[k] for k in keys) + table.per_unit * len(keys))
    assert table.misses == 0
    table.save(tmp_path / "t.json")
    loaded = make_latency_model(f"lut:{tmp_path / 't.json'}")
    assert loaded.predict(arch) == pytest.approx(table.predict(arch))


def test_a_killed_build_continues_where_it_stopped(spaces, tmp_path, monkeypatch):
    space = spaces["tiny"]
    progress = tmp_path / "t.json.partial"
    build_table(space, archs=0, calibrate=2, repeats=1, progress=False, checkpoint=progress)
    saved = json.loads(progress.read_text())
    lost = sorted(saved["entries"])[:7]  # as if killed before these were timed
    for key in lost:
        del saved["entries"][key]
    progress.write_text(json.dumps(saved))
    timed = []
    real = LatencyTable.measure

    def counting(self, units, **kw):
        timed.extend(k for k in units if k not in self.entries)
        return real(self, units, **kw)

    monkeypatch.setattr(LatencyTable, "measure", counting)
    table = build_table(space, archs=0, calibrate=2, repeats=1, progress=False,
                        checkpoint=progress)
    assert sorted(timed) == lost and set(table.entries) == set(space_units(space))
    timed.clear()  # other settings: the saved units are not theirs, all are timed again
    build_table(space, archs=0, calibrate=2, repeats=2, progress=False, checkpoint=progress)
    assert len(timed) == len(space_units(space))


def test_latency_build_command(tmp_path, capsys, spaces):
    out = tmp_path / "lut.json"
    argv = ["latency", "build", "--space", str(spaces["tiny"].source), "--archs", "1",
            "--calibrate", "2", "--repeats", "1", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "units of tiny timed in torch" in printed and f"--latency lut:{out}" in printed
    assert LatencyTable.load(out).entries and not (tmp_path / "lut.json.partial").exists()
    assert main(argv[:-2] + ["--runtime", "tvm", "-o", str(out)]) == 2
