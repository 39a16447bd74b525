"""The units a table times: the network's own modules, and every one a space can have.

Oracles: the network itself (chaining its units gives its logits; each unit built alone
has the network's structure) and, for a small space, brute force over all of its
architectures. A few seconds in all.
"""

import itertools
import random

import pytest
import torch

import nas
from nas.latency.units import arch_units, network_units, space_units, unit_keys

# Every kind of coupling the enumeration must follow: a row that keeps its input width
# (SAME) with a repeat choice, a stride, channel splits, SE, grouped 1x1 convs, and two
# stem and two head widths. 2^11 architectures.
SMALL_SPACE = """
input: {channels: 3, resolution: 32, classes: 10}
stem: stem_c8|16
stages:
  - [ds_r1_k3|3.5_se0|0.5]
  - [ir_r1_k3|3.5.7_xequal|exp_a1|2_s2_e1|3_c16|24, ir_r1|2_k3_p1|2_e3]
head: head_c32|64
"""


@pytest.fixture(scope="module")
def small_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "small_units.yaml"
    path.write_text(SMALL_SPACE)
    return nas.load_space(str(path))


def test_every_unit_of_a_space_and_no_other(small_space):
    space = small_space
    seen = set()
    for values in itertools.product(*(d.values for d in space.decisions)):
        arch = space.arch_from_choices(dict(zip((d.name for d in space.decisions), values)))
        seen.update(unit_keys(arch))
    assert set(space_units(space)) == seen


def test_random_architectures_of_every_space_find_their_units(space):
    units = space_units(space)
    rng = random.Random(0)
    for _ in range(200):
        assert set(unit_keys(space.sample(rng))) <= set(units)


def test_a_single_point_space_has_exactly_its_architecture_s_units(spaces):
    space = spaces["mixnet_s"]
    assert set(space_units(space)) == set(unit_keys(space.sample(0)))


@pytest.mark.parametrize("name", ["mixnet_s", "edge_cases"])
def test_units_are_the_network_s_own_modules(spaces, name):
    arch = spaces[name].sample(random.Random(3))
    net = nas.build_model(arch).eval()
    x = torch.randn(1, arch.input.channels, arch.input.resolution, arch.input.resolution)
    units, built = network_units(net), arch_units(arch)
    assert len(units) == len(unit_keys(arch))
    h = x
    with torch.no_grad():
        for key, unit in zip(unit_keys(arch), units):
            shape, make = built[key]
            assert tuple(h.shape) == shape, key
            alone = make()  # built alone, as the table does: the same module
            assert repr(alone) == repr(unit), key
            assert [p.shape for p in alone.parameters()] == [p.shape for p in unit.parameters()]
            h = unit(h)
        assert torch.equal(h, net(x))  # chained, the units are the network


def test_remembered_row_keys_are_the_layers_keys(space):
    """A row's keys are remembered per input width and size: the same keys, in the same
    order, as the architecture's layers give afresh, for rows met once and again."""
    from nas.latency.units import _block_key

    rng = random.Random(4)
    archs = [space.sample(rng) for _ in range(40)]
    for arch in archs + archs:
        blocks = unit_keys(arch)[1:-1]
        assert blocks == [_block_key(layer) for layer in arch.layers()]
