"""Supernet weight sharing against its oracle: the extracted static network."""

import random

import pytest
import torch

import nas
from nas.supernet import Supernet, SupernetMismatch


def _warm_bn(supernet, space, rng, res, in_chans):
    """Give every BN non-trivial statistics (and affine params) so eval mode is a real test."""
    supernet.train()
    with torch.no_grad():
        for _ in range(3):
            supernet(torch.randn(8, in_chans, res, res) * 2 + 0.5, space.sample(rng))
        for m in supernet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    supernet.eval()


@pytest.mark.parametrize("in_chans, classes", [(1, 10)])
def test_extract_reproduces_the_supernet(space, in_chans, classes):
    torch.manual_seed(0)
    rng = random.Random(0)
    supernet = Supernet(space, num_classes=classes, in_chans=in_chans)
    res = 32
    _warm_bn(supernet, space, rng, res, in_chans)
    archs = [space.sample(rng) for _ in range(20 if space.decisions else 1)]
    x = torch.randn(2, in_chans, res, res)
    with torch.no_grad():
        for arch in archs:
            static = supernet.extract(arch)
            assert not static.training
            expected = supernet(x, arch)
            torch.testing.assert_close(static(x), expected, rtol=0, atol=1e-5)


def test_extracted_structure_is_build_model(spaces):
    space = spaces["mixnet_300m"]
    supernet = Supernet(space)
    arch = space.sample(3)
    static = supernet.extract(arch)
    fresh = nas.build_model(arch)
    assert [(k, v.shape) for k, v in static.state_dict().items()] == \
           [(k, v.shape) for k, v in fresh.state_dict().items()]


def test_extract_copies(spaces):
    space = spaces["tiny"]
    supernet = Supernet(space, num_classes=10, in_chans=3)
    arch = space.sample(0)
    static = supernet.extract(arch)
    with torch.no_grad():
        for p in static.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    supernet.extract(arch)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def _used_mask(supernet, arch):
    """Oracle of what arch owns: number every shared weight, extract, see which numbers come out."""
    probe = Supernet(supernet.space, supernet.num_classes, supernet.in_chans)
    offset = 0
    ids = {}
    with torch.no_grad():
        for name, p in probe.named_parameters():
            p.copy_(torch.arange(offset, offset + p.numel(), dtype=torch.float64)
                    .reshape(p.shape).float())
            ids[name] = (offset, p.numel())
            offset += p.numel()
    assert offset < 2**24  # float32 holds these integers exactly
    used = torch.zeros(offset, dtype=torch.bool)
    for name, tensor in probe.active_state(arch).items():
        if tensor.is_floating_point() and not name.endswith(("running_mean", "running_var")):
            used[tensor.detach().flatten().long()] = True
    return {name: used[o:o + n].reshape(dict(probe.named_parameters())[name].shape)
            for name, (o, n) in ids.items()}


def test_one_training_step_changes_exactly_the_archs_weights(spaces):
    space = spaces["tiny"]
    torch.manual_seed(1)
    supernet = Supernet(space, num_classes=10, in_chans=3).train()
    rng = random.Random(4)
    for _ in range(5):
        arch = space.sample(rng)
        before = {n: p.detach().clone() for n, p in supernet.named_parameters()}
        optimizer = torch.optim.SGD(supernet.parameters(), lr=0.5)
        loss = torch.nn.functional.cross_entropy(supernet(torch.randn(8, 3, 32, 32), arch),
                                                 torch.randint(0, 10, (8,)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        used = _used_mask(supernet, arch)
        n_used = n_changed = 0
        for name, p in supernet.named_parameters():
            changed = p.detach() != before[name]
            assert not (changed & ~used[name]).any(), f"{name}: an unused weight changed"
            n_used += int(used[name].sum())
            n_changed += int(changed.sum())
        # a used weight stays put only where its gradient is exactly zero (dead ReLUs)
        assert n_changed >= 0.95 * n_used


def test_bn_statistics_update_only_the_archs_channels(spaces):
    space = spaces["tiny"]
    supernet = Supernet(space, num_classes=10, in_chans=3).train()
    arch = space.extreme_arch(largest=False)
    head_bn = supernet.head_bn
    before = head_bn.running_mean.clone()
    with torch.no_grad():
        supernet(torch.randn(4, 3, 32, 32), arch)
    c = arch.head.out
    assert not torch.equal(head_bn.running_mean[:c], before[:c])
    assert torch.equal(head_bn.running_mean[c:], before[c:])


def test_forward_rejects_archs_of_other_spaces(spaces):
    supernet = Supernet(spaces["tiny"], num_classes=10, in_chans=3)
    with pytest.raises(SupernetMismatch):
        supernet(torch.randn(1, 3, 32, 32), spaces["mixnet_s"].sample(0))


def test_supernet_holds_no_arch_state(spaces):
    space = spaces["tiny"]
    supernet = Supernet(space, num_classes=10, in_chans=3).eval()
    a, b = space.extreme_arch(True), space.extreme_arch(False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ya = supernet(x, a)
        supernet(x, b)
        torch.testing.assert_close(supernet(x, a), ya, rtol=0, atol=0)


def test_extract_in_channels_last_layout(spaces):
    """Training runs NHWC: the extracted network must still match, and keep the layout."""
    space = spaces["mixnet_300m"]
    torch.manual_seed(2)
    rng = random.Random(2)
    supernet = Supernet(space, num_classes=10, in_chans=3).use_memory_format(
        torch.channels_last)
    _warm_bn(supernet, space, rng, 32, 3)
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(10):
            arch = space.sample(rng)
            static = supernet.extract(arch)
            # a 3-channel 3x3 stem weight is NHWC-strided only if really converted
            assert static.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
            assert not static.stem[0].weight.is_contiguous()
            torch.testing.assert_close(static(x), supernet(x, arch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_take_regions_gradient_equals_plain_indexing(layout):
    weight = torch.randn(12, 1, 7, 7).contiguous(memory_format=layout).requires_grad_()
    regions = [(slice(0, 5), slice(None), slice(2, 5), slice(2, 5)),
               (slice(5, 9), slice(None), slice(1, 6), slice(1, 6)),
               (slice(9, 11), slice(None), slice(0, 7), slice(0, 7))]
    check_take_regions(weight, regions, layout)
    # the blocks of a grouped 1x1 conv; one region; regions not consecutive (plain indexing)
    weight = torch.randn(12, 8, 1, 1).contiguous(memory_format=layout).requires_grad_()
    check_take_regions(weight, [(slice(0, 4), slice(0, 3)), (slice(4, 8), slice(3, 6))], layout)
    check_take_regions(weight, [(slice(0, 10), slice(0, 5))], layout)
    check_take_regions(weight, [(slice(6, 9), slice(0, 5)), (slice(0, 2), slice(1, 8))], layout)
    check_take_regions(weight, [(slice(0, 2), slice(0, 20))], layout)  # stop clamped, as indexing


def check_take_regions(weight, regions, layout):
    from nas.ops.dynamic import take_regions

    upstream = [torch.randn(weight[r].shape) for r in regions]
    for block, r in zip(take_regions(weight, regions), regions):
        assert torch.equal(block, weight[r])
    sum((b * u).sum() for b, u in zip(take_regions(weight, regions), upstream)).backward()
    ours, weight.grad = weight.grad, None
    sum((weight[r] * u).sum() for r, u in zip(regions, upstream)).backward()
    assert torch.equal(ours, weight.grad)
    assert ours.is_contiguous(memory_format=layout)
    weight.grad = None
