"""Latency lookup table: the fit's arithmetic, files, a full build that never measures
while predicting, a killed build that continues, and the command. About 20 s (torch)."""

import json
import random
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.latency import LatencyTable, build_table, make_latency_model
from nas.latency.table import FORMAT
from nas.latency.units import arch_units, space_units, unit_keys

MIXNET_S = ("3x224x224-1000/stem_k3_c16/ds_r1_k3_c16/ir_r1_k3_a2_p2_s2_e6_c24,"
            "ir_r1_k3_a2_p2_e3_c24/ir_r1_k3.5.7_s2_e6_se0.5_c40_actswish,"
            "ir_r3_k3.5_a2_p2_e6_se0.5_c40_actswish/ir_r1_k3.5.7_p2_s2_e6_se0.25_c80_actswish,"
            "ir_r2_k3.5_p2_e6_se0.25_c80_actswish/ir_r1_k3.5.7_a2_p2_e6_se0.5_c120_actswish,"
            "ir_r2_k3.5.7.9_a2_p2_e3_se0.5_c120_actswish/ir_r1_k3.5.7.9.11_s2_e6_se0.5_c200_"
            "actswish,ir_r2_k3.5.7.9_p2_e6_se0.5_c200_actswish/head_c1536")


def test_the_scale_is_the_median_ratio_so_one_disturbed_network_does_not_pull_it():
    sums = [10.0, 20.0, 30.0, 40.0, 50.0]
    measured = [8.0, 16.0, 24.0, 32.0, 200.0]  # the last measured during a burst of load
    table = LatencyTable()
    table.fit(sums, measured)
    assert table.scale == pytest.approx(0.8)


def test_save_and_load(tmp_path):
    table = LatencyTable("onnxruntime", {"ds|16|16|16|1|3|16|0|1|1|relu|1|112": 0.5},
                         scale=0.8, threads=2, repeats=7)
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert (back.entries, back.scale, back.threads, back.repeats) == (table.entries, 0.8, 2, 7)
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
    '"entries": {"a": "fast"}}',
    f'{{"format": "{FORMAT}", "runtime": "torch", "threads": 1, "repeats": 5, "scale": -1, '
    '"entries": {}}',
    f'{{"format": "{FORMAT}", "runtime": "tensorrt", "threads": 1, "repeats": 5, '
    '"scale": 1, "entries": {}}'])
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
            table.scale * sum(table.entries[k] for k in keys))
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


def test_calibration_networks_are_measured_between_the_groups(spaces, monkeypatch):
    from nas.latency.runtime import Runtime

    sizes = []  # calls per timing: a group of units, or one whole network
    real = Runtime.time

    def recording(self, calls, *args, **kw):
        sizes.append(len(calls))
        return real(self, calls, *args, **kw)

    monkeypatch.setattr(Runtime, "time", recording)
    build_table(spaces["tiny"], archs=0, calibrate=2, repeats=1, progress=False)
    # 150 units in groups of 48: a network after the second group and after the last
    assert sizes == [48, 48, 1, 48, 6, 1]


@pytest.mark.parametrize("name", ["operators", "patch"])
def test_units_hold_every_parameter_of_the_network(name):
    # The oracle: the units the table times, together, have exactly the parameters of the
    # network (count_cost, itself equal to fvcore's module count), for every block kind,
    # the patch stem and both post-pooling heads: nothing unpriced or priced twice.
    space = nas.load_space(str(Path(__file__).parents[1] / "spaces" / f"{name}.yaml"))
    for arch in (space.extreme_arch(largest=True), space.sample(random.Random(3))):
        units = arch_units(arch)
        per_block = {key: sum(p.numel() for p in make().parameters())
                     for key, (_, make) in units.items()}
        # repeated identical blocks share one key: count them as often as they occur
        params = sum(per_block[key] for key in unit_keys(arch))
        assert params == nas.count_cost(arch).params
        assert set(unit_keys(arch)) <= set(space_units(space)), name
