"""BayesianPosterior against the reference values of ENGINE.md §3.1."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from governance.engine import AegisConfig, BayesianPosterior

REFERENCE_T2 = [(1.0, 0.003645), (2.0, 0.185547), (2.5, 0.5), (3.0, 0.814453),
                (3.5, 0.963181), (4.0, 0.996355)]


@pytest.fixture
def posterior(config):
    return BayesianPosterior.from_config(config)


def test_default_posterior_is_0_8_y_with_sigma_sqrt_0_2(posterior):
    for y in (-1.0, 0.0, 1.0, 2.5, 7.0):
        mu, sigma = posterior.posterior(y)
        assert mu == pytest.approx(0.8 * y, abs=1e-15)
        assert sigma == pytest.approx(math.sqrt(0.2), abs=1e-15)


@pytest.mark.parametrize("y, expected", REFERENCE_T2)
def test_reference_values_to_six_decimals(posterior, y, expected):
    assert round(posterior.prob_at_least(2.0, y), 6) == expected


def test_y_2_5_gives_exactly_one_half(posterior):
    assert posterior.prob_at_least(2.0, 2.5) == 0.5


def test_probability_crosses_0_95_near_3_4195(posterior):
    assert posterior.prob_at_least(2.0, 3.4194) < 0.95 < posterior.prob_at_least(2.0, 3.4196)


def test_upper_tail_stays_positive_and_accurate(posterior):
    """erfc keeps the far tail; 1 − Φ would cancel to 0 here."""
    p = posterior.prob_at_least(2.0, -5.0)  # z = 6 / sqrt(0.2) ≈ 13.4
    z = (2.0 - (-4.0)) / math.sqrt(0.2)
    assert p > 0.0
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert 1.0 - NormalDist().cdf(z) == 0.0  # what the naive formula would report


def test_posterior_matches_normal_dist_for_other_parameters():
    posterior = BayesianPosterior(prior_mean=0.3, prior_std=2.0, likelihood_std=0.7)
    precision = 1 / 2.0 ** 2 + 1 / 0.7 ** 2
    for y in (-2.0, 0.0, 1.5, 3.0):
        mu = (0.3 / 4.0 + y / 0.49) / precision
        sigma = math.sqrt(1 / precision)
        assert posterior.posterior(y) == pytest.approx((mu, sigma), abs=1e-14)
        expected = 1 - NormalDist(mu, sigma).cdf(1.7)
        assert posterior.prob_at_least(1.7, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("y, expected", [(1.0, 0.036819), (2.5, 0.5), (4.0, 0.963181)])
def test_posterior_predictive_reference_values(y, expected):
    """Predictive σ = sqrt(1/precision + σL²) = sqrt(0.45) with the defaults."""
    predictive = BayesianPosterior(0.0, 1.0, 0.5, predictive=True)
    assert predictive.posterior(y) == pytest.approx((0.8 * y, math.sqrt(0.45)), abs=1e-15)
    assert round(predictive.prob_at_least(2.0, y), 6) == expected
    exact = 1 - NormalDist(0.8 * y, math.sqrt(0.45)).cdf(2.0)
    assert predictive.prob_at_least(2.0, y) == pytest.approx(exact, abs=1e-12)


def test_from_config_reads_all_four_parameters():
    config = AegisConfig.default().replace(prior_mean=0.5, prior_std=2.0, likelihood_std=0.25,
                                           posterior_predictive=True)
    posterior = BayesianPosterior.from_config(config)
    assert (posterior.prior_mean, posterior.prior_std, posterior.likelihood_std,
            posterior.predictive) == (0.5, 2.0, 0.25, True)


@pytest.mark.parametrize("kwargs", [dict(prior_std=0.0), dict(likelihood_std=-1.0),
                                    dict(prior_mean=math.nan), dict(prior_std=math.inf)])
def test_invalid_parameters_raise(kwargs):
    values = dict(prior_mean=0.0, prior_std=1.0, likelihood_std=0.5) | kwargs
    with pytest.raises(ValueError):
        BayesianPosterior(**values)


def test_array_version_matches_scalar(posterior):
    ys = np.random.default_rng(3).uniform(-5, 20, 5000)
    vector = posterior.prob_at_least_array(2.0, ys)
    scalar = np.array([posterior.prob_at_least(2.0, y) for y in ys])
    np.testing.assert_allclose(vector, scalar, rtol=1e-9, atol=1e-15)
    assert posterior.prob_at_least_array(2.0, np.array([2.5]))[0] == 0.5
