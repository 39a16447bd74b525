"""The ranking metrics against scipy's Kendall tau (the oracle) on data with a known answer."""

import numpy as np
from scipy import stats

from nas.estimators import tau_gain


def test_tau_gain_is_the_difference_of_taus_with_a_paired_interval():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=60)
    good = truth + rng.normal(scale=0.3, size=60)  # ranks well
    poor = truth + rng.normal(scale=2.0, size=60)  # ranks badly
    g = tau_gain(good, poor, truth, resamples=500)
    expected = stats.kendalltau(good, truth).statistic - stats.kendalltau(poor, truth).statistic
    assert g["gain"] == expected > 0
    assert 0 < g["gain_ci"][0] < g["gain"] < g["gain_ci"][1]  # a real gain excludes 0
    same = tau_gain(good, good, truth, resamples=200)  # paired: what both share cancels
    assert same["gain"] == 0 and same["gain_ci"] == [0.0, 0.0]
    reversed_ = tau_gain(poor, good, truth, resamples=500)
    assert reversed_["gain"] == -g["gain"] and reversed_["gain_ci"][1] < 0
