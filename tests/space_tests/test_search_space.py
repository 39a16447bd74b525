import itertools
import random

import pytest

import nas
from nas.grammar import SAME


def test_sampling_is_deterministic_and_in_space(space):
    rng_a, rng_b = random.Random(7), random.Random(7)
    for _ in range(20):
        a, b = space.sample(rng_a), space.sample(rng_b)
        assert a == b
        assert space.contains(a)


def test_choices_round_trip(space):
    rng = random.Random(1)
    for _ in range(20):
        arch = space.sample(rng)
        choices = space.choices_of(arch)
        assert set(choices) == {d.name for d in space.decisions}
        assert space.arch_from_choices(choices) == arch
        labels = {d.name: d.labels[d.values.index(choices[d.name])] for d in space.decisions}
        assert space.arch_from_choices(labels) == arch


def test_presets_are_points_of_the_default_space(spaces):
    big = spaces["mixnet_300m"]
    for preset in ("mixnet_s", "mixnet_m"):
        arch = spaces[preset].sample(0)
        assert big.contains(arch)
        assert spaces[preset].contains(arch)
    assert not spaces["mixnet_s"].contains(spaces["mixnet_m"].sample(0))


def test_default_space_brackets_the_default_budget(spaces):
    r = spaces["mixnet_300m"].cost_range()
    assert r.flops_min < 150e6 and r.flops_max > 600e6


def test_contains_rejects_out_of_space_values(spaces):
    big = spaces["mixnet_300m"]
    arch = spaces["mixnet_s"].sample(0)
    head = nas.Head(out=1024, act="relu")
    assert not big.contains(nas.Architecture(arch.input, arch.stem, arch.stages, head))
    other_input = nas.InputSpec(3, 192, 1000)
    assert not big.contains(nas.Architecture(other_input, arch.stem, arch.stages, arch.head))


def test_tied_width_rows_follow_the_row_before(spaces):
    big = spaces["mixnet_300m"]
    rng = random.Random(3)
    for _ in range(50):
        arch = big.sample(rng)
        for rows in arch.stages[1:]:
            assert len({b.out for b in rows}) == 1
    assert all(d.field != "out" or ".b0." in d.name or d.name.startswith(("stem", "head"))
               for d in big.decisions)


def test_arch_from_choices_errors(spaces):
    big = spaces["mixnet_300m"]
    choices = big.choices_of(big.sample(0))
    with pytest.raises(KeyError, match="unknown decisions"):
        big.arch_from_choices({**choices, "nope": 1})
    name = next(iter(choices))
    with pytest.raises(ValueError, match="is not one of"):
        big.arch_from_choices({**choices, name: "999"})


def _brute_force(space):
    decisions = space.decisions
    costs = [nas.count_cost(space.arch_from_choices(dict(zip([d.name for d in decisions], vs))))
             for vs in itertools.product(*(d.values for d in decisions))]
    return (min(c.flops for c in costs), max(c.flops for c in costs),
            min(c.params for c in costs), max(c.params for c in costs))


def test_cost_range_matches_brute_force():
    # Small enough to enumerate (4096 points), with widths coupling rows, tied widths,
    # depth, expansion and all the separable decision groups.
    space = nas.load_space(
        "input: {channels: 3, resolution: 64, classes: 10}\n"
        "stem: stem_c8|16\n"
        "stages:\n"
        "  - [ds_r1_k3|3.5_se0|0.5_c16]\n"
        "  - [ir_r1_k3.5|3.5.7_xequal|exp_a1|2_s2_e3|6_c24|32,\n"
        "     ir_r1|2_k3|5.7_p1|2_e2]\n"
        "head: head_c64|128\n"
    )
    assert space.size == 4096
    r = space.cost_range()
    assert (r.flops_min, r.flops_max, r.params_min, r.params_max) == _brute_force(space)


def test_size_counts_decisions(spaces):
    assert spaces["mixnet_s"].size == 1 and spaces["mixnet_s"].is_single_point
    big = spaces["mixnet_300m"]
    assert big.size > 10**20
    assert all(len(d.values) > 1 for d in big.decisions)
    assert all(SAME not in d.values for d in big.decisions)


def test_extreme_archs_reach_the_exact_range(space):
    r = space.cost_range()
    largest, smallest = space.extreme_arch(True), space.extreme_arch(False)
    assert space.contains(largest) and space.contains(smallest)
    assert nas.count_cost(largest).flops == r.flops_max
    assert nas.count_cost(smallest).flops == r.flops_min


def test_contains_compares_block_kinds(spaces):
    big = spaces["mixnet_300m"]
    arch = spaces["mixnet_s"].sample(0)
    ds = arch.stages[0][0]
    as_ir = nas.Block(kind="ir", repeats=1, kernels=ds.kernels, split="equal", exp_groups=1,
                      proj_groups=1, stride=1, expansion=1.0, se=0.0, out=ds.out, act=ds.act,
                      skip=True)
    swapped = nas.Architecture(arch.input, arch.stem, ((as_ir,),) + arch.stages[1:], arch.head)
    assert not big.contains(swapped)
    ir = arch.stages[1][1]
    as_ds = nas.Block(kind="ds", repeats=1, kernels=ir.kernels, split="equal", exp_groups=1,
                      proj_groups=1, stride=1, expansion=1.0, se=0.0, out=ir.out, act=ir.act,
                      skip=True)
    other = nas.Architecture(arch.input, arch.stem,
                             (arch.stages[0], (arch.stages[1][0], as_ds)) + arch.stages[2:],
                             arch.head)
    assert not big.contains(other)


def test_normalised_splits_map_back_to_decisions():
    space = nas.load_space(
        "input: {channels: 3, resolution: 32, classes: 10}\nstem: stem_c16\n"
        "stages:\n  - [ir_r1_k3|3.5.7_xexp|2:1:1_e6_c16]\nhead: head_c64\n")
    for seed in range(10):
        arch = space.sample(seed)
        assert space.contains(arch)
        assert space.arch_from_choices(space.choices_of(arch)) == arch
