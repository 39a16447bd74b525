"""The table of block kinds (issue 26): every kind complete and exercised, and a kind added
by the table alone, ShuffleNetV2's unit, against torchvision's network as the oracle."""

import math

import pytest
import torch
from conftest import SPACE_NAMES

import nas
from nas.blocks import BLOCK_KINDS, ROW_KINDS
from nas.grammar import FIELDS
from nas.ops.dynamic import DYNAMIC_BLOCKS
from nas.ops.static import BLOCKS


@pytest.mark.parametrize("name", ROW_KINDS)
def test_every_row_kind_is_complete(name):
    kind = BLOCK_KINDS[name]
    assert kind.static in BLOCKS and kind.dynamic in DYNAMIC_BLOCKS
    assert kind.cost is not None and kind.args is not None and kind.doc
    assert {t.field for t in kind.tokens} <= {f.id for f in FIELDS}
    assert kind.mid in ("in", "out", "half", "expand")


def test_every_row_kind_is_in_some_space_of_the_registry(spaces):
    # so the registry-driven tests (fvcore, extraction, export, JSON) cover every kind
    used = {row.kind for name in SPACE_NAMES for stage in spaces[name].stages for row in stage}
    assert set(ROW_KINDS) <= used, sorted(set(ROW_KINDS) - used)


def _torchvision_shufflenet():
    torchvision = pytest.importorskip("torchvision")
    return torchvision.models.shufflenet_v2_x1_0()


def _fvcore(model, mean_counted: bool):
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

    counter = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, 224, 224))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    if mean_counted:  # a global average pool written as mean: 1 per input element
        counter.set_op_handle("aten::mean", lambda inputs, outputs: math.prod(
            get_shape(inputs[0])))
    return counter.total()


def test_shufflenet_v2_preset_is_torchvisions_network():
    theirs = _torchvision_shufflenet().eval()
    arch = nas.load_space("shufflenet_v2_x1_0").sample(0)
    ours = nas.build_model(arch).eval()
    cost = nas.count_cost(arch)
    assert cost.params == sum(p.numel() for p in theirs.parameters()) == 2_278_604
    # fvcore counts torchvision's pooling (a mean) as nothing and ours (an adaptive average
    # pool) as 1 per element: with the mean counted alike, the counts are equal
    assert _fvcore(theirs, mean_counted=False) == 148_808_392
    assert cost.flops == _fvcore(theirs, mean_counted=True) == 148_808_392 + 1024 * 7 * 7
    # the same function: torchvision's weights and BN statistics, in order, give its logits
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
        mine, source = ours.state_dict(), theirs.state_dict()
        assert [v.shape for v in mine.values()] == [v.shape for v in source.values()]
        ours.load_state_dict(dict(zip(mine, source.values())))
        x = torch.randn(2, 3, 224, 224, generator=generator)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-4, rtol=1e-4)


def test_shufflenet_v2_searchable_space_holds_the_preset_and_mixconv_kernels():
    space = nas.load_space("shufflenet_v2_mix")
    assert space.contains(nas.load_space("shufflenet_v2_x1_0").sample(0))
    kernels = {k for stage in space.stages for row in stage
               for k in row.alternatives.get("kernels", ())}
    assert (3, 5, 7) in kernels and (3, 5, 7, 9) in kernels


def test_a_stride_1_shuffle_unit_keeps_its_width():
    with pytest.raises(nas.ArchError, match="stride-1 sh block keeps the width it is fed"):
        nas.Architecture.parse("3x64x64-10/stem_k3_c24/sh_r2_k3_c48/head_c64")
    with pytest.raises(nas.ArchError, match="mp block keeps the width it is fed"):
        nas.Architecture.parse("3x64x64-10/stem_k3_c24/mp_r1_c32/head_c64")
