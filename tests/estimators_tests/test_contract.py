"""One contract, run over every accuracy estimator (:class:`nas.estimators.Estimator`).

An estimator gives one finite score per architecture, in order; the same scores every
time; the same score for an architecture scored alone or in a list; accuracies in [0, 1]
when it says its scores are accuracies; and says what it is.
"""

import math
import random
from pathlib import Path

import pytest

import nas
from nas.estimators import (
    EstimatorContext,
    NaswotEstimator,
    PredictorEstimator,
    SupernetEstimator,
    save_predictor,
)

TINY = nas.load_space(str(Path(__file__).parents[1] / "spaces" / "tiny.yaml"))
ARCHS = [TINY.sample(random.Random(i)) for i in range(3)]


@pytest.fixture(scope="module")
def images():
    from nas.data import Loader, image_stats, load_dataset

    data = load_dataset("fashion-mnist")
    batch = data.train.subset(__import__("torch").arange(64))
    mean, std = image_stats(batch)
    return next(iter(Loader(batch, 64, mean, std).epoch(0)))[0]


@pytest.fixture(scope="module", params=["supernet", "naswot", "predictor"])
def estimator(request, images, tmp_path_factory):
    if request.param == "supernet":
        from nas.train import load_supernet

        run = load_supernet(request.getfixturevalue("tiny_supernet"), device="cpu")
        return SupernetEstimator([run], calib_images=64, val_images=128)
    if request.param == "naswot":
        return NaswotEstimator(images[:32], num_classes=10, seed=3)
    # a predictor trained on made-up targets: the contract is about behaviour, not skill
    rng = random.Random(5)
    train = [TINY.sample(rng) for _ in range(12)]
    targets = [0.5 + 0.01 * (nas.count_cost(a).params % 17) for a in train]
    naswot = NaswotEstimator(images[:32], num_classes=10)
    path = tmp_path_factory.mktemp("pred") / "p.json"
    save_predictor(path, train, targets, "ridge", "summary", 28,
                   {"naswot": naswot.score(train)}, settings={"naswot_images": 32})
    return PredictorEstimator(path, extra={"naswot": naswot})


def test_one_finite_score_per_architecture_in_order(estimator):
    scores = estimator.score(ARCHS)
    assert len(scores) == len(ARCHS) and all(math.isfinite(s) for s in scores)
    assert [estimator.score([a])[0] for a in ARCHS] == pytest.approx(scores, abs=1e-9)
    if estimator.is_accuracy and estimator.name != "predictor":
        assert all(0 <= s <= 1 for s in scores)


def test_deterministic(estimator):
    assert estimator.score(ARCHS) == pytest.approx(estimator.score(ARCHS), abs=1e-12)


def test_says_what_it_is(estimator):
    assert estimator.name and estimator.describe()
    assert all(c is None or (isinstance(c, str) and c) for c in map(estimator.caveat, ARCHS))


def test_context_builds_each_by_name(images, tiny_supernet):
    from nas.estimators import make_estimator
    from nas.train import load_supernet

    run = load_supernet(tiny_supernet, device="cpu")
    context = EstimatorContext(num_classes=10, images=lambda n: images[:n],
                               supernets=lambda: [run], calib_images=64, val_images=64)
    assert make_estimator("supernet", context).name == "supernet"
    assert make_estimator("naswot", context).name == "naswot"
    with pytest.raises(nas.UsageError, match="supernet, naswot or predictor"):
        make_estimator("zen", context)
