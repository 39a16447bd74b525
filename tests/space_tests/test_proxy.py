"""Which decisions a small proxy input cannot see: the arithmetic against the supernet."""

import random

import pytest
import torch

import nas
from nas.space.proxy import blind_decisions, effective_kernels, sighted_resolution


def test_effective_kernels():
    assert effective_kernels(96, (3, 5, 7), "equal", 2) == ((96, 3),)  # 2x2: all act as 3x3
    assert effective_kernels(96, (3, 5, 7), "equal", 3) == ((32, 3), (64, 5))
    assert effective_kernels(96, (3, 5, 7), "equal", 1) == ((96, 1),)
    assert effective_kernels(96, (3, 5, 7), "exp", 8) == ((48, 3), (24, 5), (24, 7))


def test_the_default_proxy_hides_the_late_kernel_decisions():
    space = nas.load_space("mixnet_300m")
    blind = {b.decision: b for b in blind_decisions(space, 28)}
    assert "s5.b1.k" in blind and blind["s5.b1.k"].invisible
    assert "s0.b0.k" not in blind and "s1.b0.k" not in blind  # 14x14 and 7x7 maps see them
    assert not blind_decisions(space, 224)  # the target input sees everything
    seen = sighted_resolution(space)
    assert seen is not None and not blind_decisions(space, seen) and blind_decisions(space,
                                                                                     seen - 1)


@pytest.mark.parametrize("resolution", [28, 64])
def test_the_supernet_agrees_with_the_arithmetic(resolution):
    """Every single change of a kernel-set or split decision either changes the supernet's
    output or is one the analysis reports as blind (always, or in some architectures); and
    what it reports as always blind never changes the output."""
    space = nas.load_space("mixnet_300m")
    torch.manual_seed(0)
    supernet = nas.Supernet(space, num_classes=10, in_chans=1).eval()
    x = torch.randn(1, 1, resolution, resolution)
    report = {b.decision: b for b in blind_decisions(space, resolution)}
    rng = random.Random(0)
    checked = unchanged = 0
    for _ in range(2):
        arch = space.sample(rng)
        choices = space.choices_of(arch)
        with torch.no_grad():
            base = supernet(x, arch)
        for d in space.decisions:
            if d.field not in ("kernels", "split"):
                continue
            label = d.labels[d.values.index(choices[d.name])]
            for value, other in zip(d.values, d.labels):
                if other == label:
                    continue
                changed = space.arch_from_choices({**choices, d.name: value})
                if changed == arch:  # the same network at any size (exp = equal over 2)
                    continue
                with torch.no_grad():  # relative: logits at initialisation are ~1e-7
                    delta = (supernet(x, changed) - base).abs().max() / base.abs().max()
                same = bool(delta < 1e-4)
                pair = tuple(sorted((label, other), key=d.labels.index))
                b = report.get(d.name)
                listed_always = b is not None and any(label in g and other in g
                                                      for g in b.groups)
                listed = listed_always or (b is not None and pair in b.partly)
                checked += 1
                unchanged += same
                if same:
                    assert listed, (d.name, label, other)
                if listed_always:
                    assert same, (d.name, label, other)
    assert checked > 50 and unchanged > 0


def test_every_space_can_be_analysed(space):
    # Registry-driven: uir rows without a middle depthwise conv (k0), optional rows, patch
    # stems and ADown's implicit stride must not break the analysis (nas search runs it
    # before any trial); rows other than ds/dsa/ir are not analysed.
    for blind in blind_decisions(space, 28):
        assert blind.decision.rsplit(".", 1)[0] in {
            f"s{s}.b{r}" for s, rows in enumerate(space.stages) for r, row in enumerate(rows)
            if row.kind in ("ds", "dsa", "ir")}
