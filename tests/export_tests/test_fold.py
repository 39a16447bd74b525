"""BatchNorm folding (``nas export --fold-bn``) against its oracle: the unfolded network in
eval mode, and fvcore's counts. 46 s at load 7 on 2 cores (17 spaces at 40x40,
two fvcore traces, one export)."""

import json
import random

import pytest
import torch
from conftest import SPACE_NAMES
from torch import nn

import nas
from nas.cli import main
from nas.errors import RunError
from nas.export import ExportForm, export_network, fold_state_dict, fuse_state_dict, load_exported
from nas.model import layer_table
from nas.ops.static import ConvMixerLayer, MixNet, PatchStem
from nas.train.standalone import arch_from_export

# |folded - unfolded| allowed, relative to the largest |logit| (float32 rounding of the
# folded weights and of another summation order, through every layer).
TOLERANCE = 1e-5


def with_statistics(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine maps: with fresh ones (mean 0, var 1, gamma 1,
    beta 0) folding would be close to the identity and prove little."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def folded_twin(model: MixNet, arch, fused: bool) -> MixNet:
    stem, blocks, head = layer_table(arch)
    twin = MixNet(stem, blocks, head, arch.input.classes, arch.input.channels, fused=fused,
                  fold_bn=True).eval()
    state = fold_state_dict(model)
    # strict: the constructors' folded layout (biases, identities) is FOLDS's
    twin.load_state_dict(fuse_state_dict(model, state) if fused else state)
    return twin


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_folded_network_computes_the_unfolded_one(spaces, name):
    arch = spaces[name].sample(random.Random(5))
    model = with_statistics(nas.build_model(arch), 0)
    torch.manual_seed(0)
    x = torch.randn(1, arch.input.channels, 40, 40)  # small: enough for every level
    with torch.no_grad():
        expected = model(x)
    # only BatchNorms after an activation stay (ConvMixer's layers and patch stem)
    after_act = sum(isinstance(m, nn.BatchNorm2d) for parent in model.modules()
                    if isinstance(parent, (ConvMixerLayer, PatchStem)) for m in parent.children())
    for fused in (False, True):
        folded = folded_twin(model, arch, fused)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == after_act
        with torch.no_grad():
            got = folded(x)
        assert (got - expected).abs().max().item() <= TOLERANCE * expected.abs().max().item()


def test_fold_equals_torchs_own_on_a_plain_conv():
    """One conv + BN: the folded tensors are torch.nn.utils.fuse_conv_bn_eval's."""
    from nas.ops.static import ConvBNAct

    block = with_statistics(ConvBNAct(8, 16, 3, groups=2, act="relu"), 3)
    state = fold_state_dict(block)
    oracle = torch.nn.utils.fuse_conv_bn_eval(block[0], block[1])
    assert set(state) == {"0.weight", "0.bias"}
    torch.testing.assert_close(state["0.weight"], oracle.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(state["0.bias"], oracle.bias, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["mixnet_s", "mobilenetv4_uib"])
def test_folding_removes_exactly_the_batchnorms_flops(spaces, name):
    """fvcore: the folded network's FLOPs are the unfolded one's less those of the folded
    BatchNorms (fvcore does not count a conv's bias), nothing else changes."""
    from fvcore.nn import FlopCountAnalysis

    arch = spaces[name].sample(random.Random(1))
    model = with_statistics(nas.build_model(arch), 1)
    folded = folded_twin(model, arch, fused=False)
    x = torch.zeros(1, arch.input.channels, 64, 64)
    full = FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
    per_module = full.by_module()
    folded_modules = dict(folded.named_modules())
    removed = sum(per_module[n] for n, m in model.named_modules()
                  if isinstance(m, nn.BatchNorm2d) and isinstance(folded_modules[n], nn.Identity))
    assert removed > 0
    after = FlopCountAnalysis(folded, x).unsupported_ops_warnings(False).total()
    assert after == full.total() - removed


def test_fold_bn_export(spaces, tmp_path, capsys):
    """nas export --fold-bn writes the folded form; with weights it reproduces the split
    network it was given; nas train refuses to train it."""
    arch = spaces["mixnet_s"].sample(0)
    out = tmp_path / "cli"
    assert main(["export", "--arch", str(arch), "--fold-bn", "--fused", "-o", str(out)]) == 0
    source = (out / "model.py").read_text()
    assert "FOLD_BN = True" in source and "BatchNorm folded" in source
    assert json.loads((out / "arch.json").read_text())["form"]["fold_bn"] is True
    net = load_exported(out, "fold_cli").build_model()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())

    small = nas.Architecture.parse(
        "3x32x32-10/stem_c16/ds_r1_k3.5_c16/ir_r1_k3.5.7_a2_p2_s2_e3_se0.25_c24/head_c64")
    model = with_statistics(nas.build_model(small), 2)
    x = torch.randn(4, 3, 32, 32)
    form = ExportForm(fused=True, channels_last=True, fold_bn=True)
    _, deltas = export_network(model, small, tmp_path / "w", x, form, onnx=False)
    with torch.no_grad():
        scale = model(x).abs().max().item()
    assert 0 < deltas["model"] <= TOLERANCE * scale  # folded weights: rounding, not zero
    assert deltas["torchscript"] <= TOLERANCE * scale
    state = torch.load(tmp_path / "w" / "weights.pt", weights_only=True)
    assert not any("running_mean" in k for k in state)
    with pytest.raises(RunError, match="--fold-bn export"):
        arch_from_export(tmp_path / "w")


# every block kind (operators), the patch stem and ConvMixer's BN after an activation
# (patch), UIB's optional depthwise convs, split MixConvs (tiny)
@pytest.mark.parametrize("name", ["operators", "patch", "mobilenetv4_uib", "tiny"])
def test_fold_batchnorm_is_the_folded_network_built_by_its_constructor(spaces, name):
    """nas.model.fold_batchnorm (what int8 quantisation folds with) turns any network into
    the fold_bn=True network with fold_state_dict's weights, and leaves its input alone."""
    from nas.model import fold_batchnorm

    arch = spaces[name].sample(random.Random(7))
    model = with_statistics(nas.build_model(arch), 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    twin = folded_twin(model, arch, fused=False)
    assert folded.state_dict().keys() == twin.state_dict().keys()
    for key, value in twin.state_dict().items():
        assert torch.equal(folded.state_dict()[key], value), key
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original keeps its
    x = torch.randn(1, arch.input.channels, 40, 40)
    with torch.no_grad():
        assert torch.equal(folded(x), twin(x))


def test_fold_batchnorm_folds_a_block_alone_and_an_exported_network(spaces, tmp_path):
    """A latency table's unit (one block, no network around it) and model.py's own classes
    (copies of nas.ops.static's) fold too: what the int8 runtime and nas export --int8 see."""
    from nas.latency.units import arch_units
    from nas.model import fold_batchnorm

    arch = spaces["mixnet_s"].sample(0)
    shape, make = list(arch_units(arch).values())[5]
    block = with_statistics(make(), 4)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = block(x)
        got = fold_batchnorm(block)(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(block).modules())
    assert (got - expected).abs().max().item() <= TOLERANCE * expected.abs().max().item()

    nas.export.export_arch(arch, tmp_path / "e")
    exported = with_statistics(load_exported(tmp_path / "e").build_model(), 5)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = exported(x)
        got = fold_batchnorm(exported)(x)
    assert (got - expected).abs().max().item() <= TOLERANCE * expected.abs().max().item()
