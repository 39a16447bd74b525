"""One contract, run over every latency backend (:class:`nas.latency.LatencyModel`).

A backend answers, for any architecture: a finite, positive number of milliseconds at
batch 1 and the space's target input; the same order of magnitude when asked twice; more
for a network with many times the FLOPs of another; and says what it is (``name``,
``describe()``), so the search and the report can say which backend measured.
"""

import math
from pathlib import Path

import pytest

import nas
from nas.latency import LatencyModel, build_table, make_latency_model

TINY = nas.load_space(str(Path(__file__).parents[1] / "spaces" / "tiny.yaml"))
# Every block kind beyond MixNet's, the patch stem and both post-pooling heads.
OTHER_KINDS = [nas.load_space(str(Path(__file__).parents[1] / "spaces" / f"{name}.yaml"))
               .extreme_arch(largest=True) for name in ("operators", "patch")]
SMALL = nas.load_space("mixnet_300m").extreme_arch(largest=False)
LARGE = nas.load_space("mixnet_300m").extreme_arch(largest=True)  # ~13x SMALL's FLOPs


@pytest.fixture(scope="module", params=["measure", "table"])
def latency_model(request, tmp_path_factory) -> LatencyModel:
    if request.param == "measure":
        return make_latency_model("measure", repeats=3)
    path = tmp_path_factory.mktemp("lut") / "t.json"
    # A table built on a few architectures of the space it is asked about; unseen
    # operations are measured on first use.
    space = nas.load_space("mixnet_300m")
    build_table(space, archs=2, calibrate=4, repeats=3, progress=False).save(path)
    return make_latency_model(f"lut:{path}")


def test_positive_finite_milliseconds(latency_model):
    for arch in (TINY.sample(0), SMALL, LARGE, *OTHER_KINDS):
        ms = latency_model.predict(arch)
        assert isinstance(ms, float) and math.isfinite(ms) and ms > 0


def test_repeatable_to_the_order_of_magnitude(latency_model):
    a, b = latency_model.predict(SMALL), latency_model.predict(SMALL)
    assert 0.33 < a / b < 3


def test_a_much_larger_network_is_slower(latency_model):
    assert latency_model.predict(LARGE) > 1.5 * latency_model.predict(SMALL)


def test_says_what_it_is(latency_model):
    assert latency_model.name and latency_model.describe()
