"""The analytic cost model against its oracle, fvcore, on the built network."""

import random

import pytest
import torch
from conftest import SPACE_NAMES
from fvcore.nn import FlopCountAnalysis

import nas

REFERENCE = {  # the reference implementation's counts (shared/reference/MIXNET.md)
    "mixnet_s": (251_736_960, 4_134_606),
    "mixnet_m": (355_613_152, 5_014_382),
}


def fvcore_cost(arch):
    model = nas.build_model(arch).eval()
    x = torch.zeros(1, arch.input.channels, arch.input.resolution, arch.input.resolution)
    counter = FlopCountAnalysis(model, x)
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = counter.total()
    return flops, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_mixnet_presets_match_the_reference(spaces, name):
    arch = spaces[name].sample(0)
    cost = nas.count_cost(arch)
    assert (cost.flops, cost.params) == REFERENCE[name]
    assert fvcore_cost(arch) == REFERENCE[name]
    r = spaces[name].cost_range()
    assert (r.flops_min, r.flops_max, r.params_min, r.params_max) == (
        REFERENCE[name][0], REFERENCE[name][0], REFERENCE[name][1], REFERENCE[name][1])


# >= 200 random architectures over all spaces (single-point spaces give one each).
PER_SPACE = {"mixnet_300m": 150, "edge_cases": 60}


def _random_archs():
    for name in SPACE_NAMES:
        for i in range(PER_SPACE.get(name, 1)):
            yield name, i


@pytest.mark.slow
def test_count_cost_equals_fvcore_on_random_archs(spaces):
    cases = list(_random_archs())
    assert len(cases) >= 200
    rng = random.Random(2024)
    mismatches = []
    for name, _ in cases:
        arch = spaces[name].sample(rng)
        cost = nas.count_cost(arch)
        oracle = fvcore_cost(arch)
        if (cost.flops, cost.params) != oracle:
            mismatches.append((name, str(arch), (cost.flops, cost.params), oracle))
    assert not mismatches, mismatches[:3]


def test_count_cost_at_a_proxy_input(spaces):
    arch = spaces["mixnet_s"].sample(0)
    proxy = nas.InputSpec(channels=1, resolution=32, classes=10)
    cost = nas.count_cost(arch, input=proxy)
    model = nas.build_model(arch, num_classes=10, in_chans=1).eval()
    counter = FlopCountAnalysis(model, torch.zeros(1, 1, 32, 32))
    counter.unsupported_ops_warnings(False)
    assert cost.flops == counter.total() < nas.count_cost(arch).flops
    assert cost.params == sum(p.numel() for p in model.parameters())
