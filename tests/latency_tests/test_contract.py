"""One contract, run over every latency backend (:class:`nas.latency.LatencyModel`).

A backend answers, for any architecture: a finite, positive number of milliseconds at
batch 1 and the space's target input; the same order of magnitude when asked twice; more
for a network with many times the FLOPs of another; and says what it is (``name``,
``backend``, ``source``, ``describe()``), so the search and the report can say which
backend measured; and ``check(space)`` accepts the space it was made for (a search refuses
a backend that cannot serve its space before anything is trained).

Backends: measured in torch eager, in ONNX Runtime and in ONNX Runtime on the network
quantised to int8 (calibrated on noise here), and a lookup table for each (a partial
one, built from the tiny test space's units: the mixnet_300m blocks asked about are
measured on first use). Cost on a quiet 2-core machine: about 1 min for torch and ONNX
Runtime, most of it ONNX exports, and about as much again for int8 (exports plus
quantisation).
"""

import math
from dataclasses import replace
from pathlib import Path

import pytest

import nas
from nas.latency import RUNTIMES, LatencyModel, build_table, make_latency_model

TINY_SPACE = nas.load_space(str(Path(__file__).parents[1] / "spaces" / "tiny.yaml"))
TINY = TINY_SPACE.sample(0)
# Every block kind beyond MixNet's, the patch stem and both post-pooling heads.
OTHER_KINDS = [nas.load_space(str(Path(__file__).parents[1] / "spaces" / f"{name}.yaml"))
               .extreme_arch(largest=True) for name in ("operators", "patch")]
SMALL = nas.load_space("mixnet_300m").extreme_arch(largest=False)
# SMALL at twice the side: ~3.9x its FLOPs in the same layers (the ONNX backends' cost is
# their export, which grows with the layers: the space's largest, 13x, took ~3x as long).
LARGE = replace(SMALL, input=nas.InputSpec(SMALL.input.channels, 2 * SMALL.input.resolution,
                                           SMALL.input.classes))

BACKENDS = [*RUNTIMES, *(f"table:{r}" for r in RUNTIMES)]


@pytest.fixture(scope="module", params=BACKENDS)
def latency_model(request, tmp_path_factory) -> LatencyModel:
    kind, _, runtime = request.param.partition(":")
    if "onnxruntime" in request.param:
        pytest.importorskip("onnxruntime")
    if kind != "table":
        return make_latency_model(kind, repeats=3)
    path = tmp_path_factory.mktemp("lut") / "t.json"
    build_table(TINY_SPACE, runtime, archs=1, calibrate=2, repeats=2,
                progress=False).save(path)
    return make_latency_model(f"lut:{path}")


def test_positive_finite_milliseconds(latency_model):
    for arch in (TINY, SMALL, *OTHER_KINDS):
        ms = latency_model.predict(arch)
        assert isinstance(ms, float) and math.isfinite(ms) and ms > 0


def test_repeatable_to_the_order_of_magnitude(latency_model):
    a, b = latency_model.predict(SMALL), latency_model.predict(SMALL)
    assert 0.33 < a / b < 3


def test_a_much_larger_network_is_slower(latency_model):
    assert latency_model.predict(LARGE) > 1.5 * latency_model.predict(SMALL)


def test_serves_the_space_it_was_made_for(latency_model):
    latency_model.check(TINY_SPACE)  # refusing one raises a NasError (test_search.py)


def test_says_what_it_is(latency_model):
    assert latency_model.name and latency_model.describe()
    assert latency_model.backend in RUNTIMES
    assert latency_model.backend in latency_model.describe()
    assert latency_model.source in ("measured", "table")
