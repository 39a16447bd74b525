"""Latency lookup table: the fit's arithmetic, files, and a real (small) build."""

import json
import random

import pytest

import nas
from nas.latency.table import KINDS, LatencyTable, build_table

MIXNET_S = ("3x224x224-1000/stem_k3_c16/ds_r1_k3_c16/ir_r1_k3_a2_p2_s2_e6_c24,"
            "ir_r1_k3_a2_p2_e3_c24/ir_r1_k3.5.7_s2_e6_se0.5_c40_actswish,"
            "ir_r3_k3.5_a2_p2_e6_se0.5_c40_actswish/ir_r1_k3.5.7_p2_s2_e6_se0.25_c80_actswish,"
            "ir_r2_k3.5_p2_e6_se0.25_c80_actswish/ir_r1_k3.5.7_a2_p2_e6_se0.5_c120_actswish,"
            "ir_r2_k3.5.7.9_a2_p2_e3_se0.5_c120_actswish/ir_r1_k3.5.7.9.11_s2_e6_se0.5_c200_"
            "actswish,ir_r2_k3.5.7.9_p2_e6_se0.5_c200_actswish/head_c1536")


def test_fit_recovers_known_per_kind_weights():
    rng = random.Random(0)
    true = dict(zip(KINDS, [1.0, 1.3, 0.7, 1.1, 2.0, 0.9, 1.0, 1.2]))
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
        rows.append([0.2, rng.uniform(1, 4), dw, 1.0, 0.3 * dw, 1.0, 0.1, 0.0,
                     rng.randint(30, 80)])
    targets = [1.2 * sum(r[:-1]) for r in rows]
    table = LatencyTable()
    table.fit(rows, targets, per_kind=True)
    assert table.weights["se"] == pytest.approx(1.2, rel=0.1)
    assert table.weights["dw"] == pytest.approx(1.2, rel=0.1)
    # no network had a whole-timed block: it gets the shared scale, not a free 0
    assert table.weights["block"] == pytest.approx(1.2, rel=1e-6)


def test_save_load_and_old_format(tmp_path):
    table = LatencyTable({"dw|8|3|1|16": 0.5}, {k: 1.5 for k in KINDS}, per_op=0.02)
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert back.entries == table.entries and back.weights == table.weights
    assert back.per_op == 0.02
    (tmp_path / "old.json").write_text(json.dumps({
        "format": "nas-latency-lut/1", "threads": 1, "repeats": 5, "scale": 1.2,
        "per_op": 0.0, "entries": {}}))
    weights = LatencyTable.load(tmp_path / "old.json").weights
    assert weights.pop("block") == 1.0 and set(weights.values()) == {1.2}
    (tmp_path / "v2.json").write_text(json.dumps({
        "format": "nas-latency-lut/2", "threads": 1, "repeats": 5, "per_op": 0.0,
        "weights": {k: 1.5 for k in KINDS if k != "block"}, "entries": {}}))
    assert LatencyTable.load(tmp_path / "v2.json").weights == {**{k: 1.5 for k in KINDS},
                                                               "block": 1.0}


def test_mixnet_keys_are_those_of_format_2_tables(spaces):
    # A table built before whole blocks were timed stays valid for ds and ir blocks.
    arch = nas.Architecture.parse(MIXNET_S)
    keys = [key for key, _, _ in LatencyTable.operations(arch)]
    assert keys[:4] == ["stem|3|3|2|16|relu|224", "dw|16|3|1|112", "bnact|16|relu|112",
                        "pwl|16|16|1|112"]
    assert "se|240|20|swish|28" in keys and keys[-1] == "head|200|1536|relu|1000|7"


def test_timed_operations_hold_every_parameter_of_the_network(space):
    # The oracle: the modules the table times, together, have exactly the parameters of
    # the network (count_cost, itself equal to fvcore's module count): no part of a
    # block of any kind is left unpriced or priced twice.
    arch = space.sample(random.Random(3))
    ops = list(LatencyTable.operations(arch))
    params = sum(p.numel() for _, make, _ in ops for p in make().parameters())
    assert params == nas.count_cost(arch).params
    kinds = {layer.kind for layer in arch.layers()}
    assert {key.split("|")[0] for key, _, _ in ops} <= set(KINDS)
    assert any(key.startswith("block|") for key, _, _ in ops) == bool(kinds - {"ds", "dsa", "ir"})


def test_mobilenetv3_se_and_v1_pointwise_are_their_own_operations():
    arch = nas.Architecture.parse("3x32x32-10/stem_c16/dsa_r1_k3_c16,ds_r1_k3_hse0.25_c16,"
                                  "ds_r1_k3_se0.25_c16/head_c64")
    keys = [key for key, _, _ in LatencyTable.operations(arch)]
    assert "pwl|16|16|1|16|relu" in keys and "pwl|16|16|1|16" in keys  # dsa vs ds
    assert "se|16|8|hard|16" in keys and "se|16|4|relu|16" in keys


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
