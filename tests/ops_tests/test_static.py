"""The static layers against nn.Conv2d oracles, and forward passes of every space."""

import random

import pytest
import torch
from torch import nn

import nas
from nas.channels import split_channels
from nas.ops.static import MixConv


@pytest.mark.parametrize("channels, kernels, rule, stride", [
    (16, (3,), "equal", 1), (24, (3, 5, 7), "equal", 2), (40, (3, 5, 7, 9), "exp", 1),
    (26, (3, 5, 7, 9, 11), "equal", 2), (32, (5, 9), (3, 1), 1),
])
def test_mixconv_equals_one_zero_padded_depthwise_conv(channels, kernels, rule, stride):
    torch.manual_seed(0)
    splits = split_channels(channels, len(kernels), rule)
    mix = MixConv(splits, kernels, stride)
    kmax = max(kernels)
    oracle = nn.Conv2d(channels, channels, kmax, stride, kmax // 2, groups=channels, bias=False)
    with torch.no_grad():
        oracle.weight.zero_()
        start = 0
        for conv, c, k in zip(mix.convs, splits, kernels):
            pad = (kmax - k) // 2
            oracle.weight[start:start + c, :, pad:pad + k, pad:pad + k] = conv.weight
            start += c
    x = torch.randn(2, channels, 15, 15)
    torch.testing.assert_close(mix(x), oracle(x), rtol=1e-5, atol=1e-5)


def test_split_rules():
    assert split_channels(26, 5, "equal") == (6, 5, 5, 5, 5)  # remainder to the first group
    assert split_channels(40, 4, "exp") == (20, 10, 5, 5)
    assert split_channels(32, 2, (3, 1)) == (24, 8)
    assert split_channels(8, 5, "exp") == (4, 2, 1, 0, 1)  # the loader rejects this one


def test_build_model_forward_every_space(space):
    arch = space.sample(random.Random(5))
    model = nas.build_model(arch).eval()
    r = arch.input.resolution
    with torch.no_grad():
        out = model(torch.randn(2, arch.input.channels, r, r))
    assert out.shape == (2, arch.input.classes)
    assert torch.isfinite(out).all()


def test_build_model_adapts_to_the_dataset(spaces):
    arch = spaces["mixnet_300m"].sample(0)
    model = nas.build_model(arch, num_classes=10, in_chans=1)
    assert model.stem[0].in_channels == 1 and model.classifier.out_features == 10
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_module_structure_mirrors_layers(spaces):
    arch = spaces["mixnet_s"].sample(0)
    model = nas.build_model(arch)
    layers = list(arch.layers())
    assert len(model.blocks) == len(layers)
    for block, layer in zip(model.blocks, layers):
        assert block.residual == layer.residual
        assert block.conv_dw.kernels == list(layer.kernels)
        assert block.conv_dw.splits == list(layer.dw_splits)


@pytest.mark.parametrize("size", range(1, 10))
def test_adown_size_arithmetic_equals_torch(size):
    # ultralytics' ADown refuses a 1x1 map (its 2x2 average pool has no output): the
    # architecture refuses it too, and every other size is what torch computes.
    from nas.channels import adown_out_size
    from nas.ops.static import ADown

    x = torch.randn(1, 16, size, size)
    if size == 1:
        with pytest.raises(RuntimeError):
            ADown(16, 16, "relu").eval()(x)
        with pytest.raises(nas.ArchError, match="ADown needs a feature map of at least 2x2"):
            nas.Architecture.parse("3x4x4-10/stem_c16/adown_c16,adown_c16/head")
    else:
        assert ADown(16, 16, "relu").eval()(x).shape[-1] == adown_out_size(size)
