"""Static int8 quantisation (nas.latency.quantize) and the onnxruntime-int8 runtime: the
CPU check behind reduce_range, the quantised graph (BatchNorm folded, QDQ, int8 weights
with one scale per output channel, uint8 activations), its outputs against torch's, and a
bundle's units each quantised like a whole network. About 30 s (a few ONNX exports)."""

import random

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.latency.quantize import cpu_has_vnni, quant_settings

X86_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma{}\n\nprocessor\t: 1\nflags\t\t: fpu\n"


@pytest.mark.parametrize("flags, machine, vnni, reduce", [
    (X86_FLAGS.format(""), "x86_64", False, True),            # AVX2 only: 16-bit saturation
    (X86_FLAGS.format(" avx512f avx512_vnni"), "x86_64", True, False),
    (X86_FLAGS.format(" avx_vnni"), "AMD64", True, False),     # the AVX2 form of VNNI
    ("processor\t: 0\n", "x86_64", None, True),                # no flags: taken as absent
    (None, "x86_64", None, True),                              # unreadable: taken as absent
    (X86_FLAGS.format(""), "aarch64", None, False),            # not x86: nothing to avoid
], ids=["avx2", "avx512-vnni", "avx-vnni", "no-flags", "unreadable", "arm"])
def test_reduce_range_follows_the_cpu_flags(tmp_path, monkeypatch, flags, machine, vnni, reduce):
    monkeypatch.setattr("platform.machine", lambda: machine)
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(flags)
    assert cpu_has_vnni(str(cpuinfo)) is vnni
    settings = quant_settings(cpuinfo=str(cpuinfo))
    assert settings.reduce_range is reduce
    assert f"reduce_range {'on' if reduce else 'off'}" in settings.describe()


def _with_statistics(model: nn.Module, seed: int) -> nn.Module:
    """BN statistics that folding changes (fresh ones fold to nearly the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _initializers(model):
    return {i.name: i for i in model.graph.initializer}


def test_a_network_quantises_to_qdq_int8_per_channel_with_batchnorm_folded(spaces):
    pytest.importorskip("onnxruntime")
    import onnx

    from nas.latency import OnnxModel, quantize_module

    torch.manual_seed(0)
    arch = spaces["tiny"].sample(random.Random(2))
    model = _with_statistics(nas.build_model(arch, num_classes=10), 0)
    g = torch.Generator().manual_seed(1)
    calibration = torch.randn(8, 3, 64, 64, generator=g)
    float_model, int8 = quantize_module(model, calibration)
    onnx.checker.check_model(int8)
    assert not [n for n in float_model.graph.node if n.op_type == "BatchNormalization"]
    inits = _initializers(int8)
    producer = {out: n for n in int8.graph.node for out in n.output}
    convs = [n for n in int8.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:  # each weight: int8, one scale per output channel (axis 0)
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert weight.data_type == onnx.TensorProto.INT8
        assert list(scale.dims) == [weight.dims[0]]
        assert {a.name: a.i for a in dq.attribute}.get("axis", 1) == 0
        # ... and its input comes dequantised from uint8 (a quantised activation)
        act = producer[conv.input[0]]
        assert act.op_type == "DequantizeLinear"
        assert inits[act.input[2]].data_type == onnx.TensorProto.UINT8
    # the int8 network computes the float one, up to quantisation, on other inputs
    x = torch.randn(4, 3, 64, 64, generator=g)
    with torch.no_grad():
        expected = model(x)
    got = OnnxModel(int8)(x)  # a dynamic batch axis, as model.onnx
    error = (got - expected).abs().max().item()
    assert 0 < error < 0.05 * expected.abs().max().item()


def test_the_int8_runtime_quantises_each_unit_of_a_bundle(spaces):
    """Units compiled together are quantised in one call and cut apart: each runs on its own
    input and gives its block's output up to quantisation (torch is the oracle)."""
    pytest.importorskip("onnxruntime")
    from nas.latency import OnnxRuntimeInt8
    from nas.latency.units import arch_units

    torch.manual_seed(0)
    arch = spaces["edge_cases"].sample(random.Random(1))
    units = list(arch_units(arch).values())[:4]
    modules = [_with_statistics(make(), i) for i, (_, make) in enumerate(units)]
    inputs = [torch.randn(*shape) for shape, _ in units]
    runtime = OnnxRuntimeInt8()
    outputs = [call()[0] for call in runtime.compile(modules, inputs)]
    assert runtime.prepare_s > 0
    with torch.no_grad():
        for module, x, out in zip(modules, inputs, outputs):
            expected = module(x).numpy()
            assert out.shape == expected.shape
            assert np.abs(out - expected).max() < 0.1 * np.abs(expected).max()
    with pytest.raises(ValueError, match="calibration inputs of shape"):
        runtime.compile(modules[:1], inputs[:1], [torch.randn(2, 1, 5, 5)])


def test_a_measured_int8_latency_says_what_it_calibrated_on_and_cost(spaces):
    pytest.importorskip("onnxruntime")
    from nas.latency import make_latency_model

    arch = spaces["tiny"].sample(0)
    images = torch.randn(3, 3, 64, 64)
    model = make_latency_model("onnxruntime-int8", repeats=1, calibration=images)
    assert model.predict(arch) > 0 and model.backend == "onnxruntime-int8"
    assert model.used()["latency_quantise_s"] > 0
    assert "calibrated on 3 training images" in model.describe()
    assert "per channel" in model.describe() and "BatchNorm folded" in model.describe()
    assert make_latency_model("onnxruntime").used() == {}
