"""Runtimes: ONNX Runtime runs each unit of a bundle on its own input (torch eager is the
oracle), and the timing clock is CPU time with one thread, wall time with more.
About 15 s on a quiet machine (one bundle export)."""

import random
import time

import numpy as np
import pytest
import torch

import nas
from nas.errors import UsageError
from nas.latency import OnnxRuntime, TorchEager, make_runtime
from nas.latency.units import arch_units


def test_onnxruntime_runs_each_unit_of_a_bundle_as_torch_does(spaces):
    pytest.importorskip("onnxruntime")
    arch = spaces["edge_cases"].sample(random.Random(1))
    units = list(arch_units(arch).values())[:4]  # stem and blocks of several shapes
    modules = [make().eval() for _, make in units]
    inputs = [torch.randn(*shape) for shape, _ in units]
    outputs = [out[0] for out in (call() for call in OnnxRuntime().compile(modules, inputs))]
    with torch.no_grad():
        for module, x, out in zip(modules, inputs, outputs):
            assert np.allclose(out, module(x).numpy(), atol=1e-4)
    eager = [call() for call in TorchEager().compile(modules, inputs)]
    assert all(torch.equal(a, module(x)) for a, module, x in zip(eager, modules, inputs))


def test_one_thread_counts_cpu_time_more_threads_wall_time():
    def sleep():
        time.sleep(0.05)  # waiting, as for a core another process holds

    assert TorchEager(threads=1).time([sleep], warmup=0, repeats=2)[0] < 10
    assert TorchEager(threads=2).time([sleep], warmup=0, repeats=2)[0] >= 50


def test_round_robin_times_each_call_and_keeps_the_fastest():
    ran = []
    calls = [lambda i=i: ran.append(i) for i in range(3)]
    times = TorchEager().time(calls, warmup=1, repeats=2)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert ran == [0, 1, 2] * 3  # one run of each per round, never twice in a row


def test_unknown_runtime_is_a_usage_error():
    with pytest.raises(UsageError, match="torch, onnxruntime"):
        make_runtime("tensorrt")
    with pytest.raises(UsageError, match="at least 1"):
        make_runtime("torch", threads=0)


def test_onnxruntime_latency_is_of_the_exported_network(spaces):
    """The measured backend times what ``nas export`` would write: a real network whose
    latency grows with its size."""
    from nas.latency import arch_latency

    pytest.importorskip("onnxruntime")
    space = spaces["tiny"]
    small, large = space.extreme_arch(False), space.extreme_arch(True)
    assert nas.count_cost(large).flops > 4 * nas.count_cost(small).flops
    assert arch_latency(large, runtime="onnxruntime") > arch_latency(small, runtime="onnxruntime")
