"""CategoricalParzenEstimator against its oracle, Optuna's own _ParzenEstimator."""

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

from nas.categorical_parzen import CategoricalParzenEstimator

PARAMS = _ParzenEstimatorParameters(prior_weight=1.0, consider_magic_clip=True,
                                    consider_endpoints=False, weights=default_weights,
                                    multivariate=True)


def _space(sizes):
    return {f"p{i:02d}": CategoricalDistribution([f"c{j}" for j in range(c)])
            for i, c in enumerate(sizes)}


@pytest.mark.parametrize("n", [0, 1, 7, 40])
@pytest.mark.parametrize("predetermined", [False, True])
def test_same_samples_and_densities_as_optuna(n, predetermined):
    gen = np.random.default_rng(n)
    space = _space([3, 2, 5, 3, 4, 2, 5, 5, 3])
    obs = {k: gen.integers(0, len(d.choices), n).astype(float) for k, d in space.items()}
    weights = gen.random(n) + 0.1 if predetermined and n else None
    want = _ParzenEstimator(obs, space, PARAMS, None if weights is None else weights.copy())
    got = CategoricalParzenEstimator(obs, space, PARAMS,
                                     None if weights is None else weights.copy())
    assert type(got) is CategoricalParzenEstimator
    a = want.sample(np.random.RandomState(5), 24)
    b = got.sample(np.random.RandomState(5), 24)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(want.log_pdf(a), got.log_pdf(a))  # bit for bit
    assert len(set(map(tuple, np.stack(list(a.values()), 1)))) > 1  # not a constant sample


def test_numerical_spaces_get_optunas_estimator():
    space = {**_space([3]), "x": FloatDistribution(0.0, 1.0)}
    obs = {"p00": np.array([0.0, 2.0]), "x": np.array([0.1, 0.7])}
    est = CategoricalParzenEstimator(obs, space, PARAMS)
    assert type(est) is _ParzenEstimator
    assert set(est.sample(np.random.RandomState(0), 4)) == {"p00", "x"}
