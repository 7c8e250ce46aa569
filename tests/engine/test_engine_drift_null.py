"""Suggested drift thresholds from a baseline's null distribution (engine.drift.null_thresholds):
the KL values against an independent computation (numpy histograms + scipy.stats.entropy),
the percentiles against numpy.percentile, reproducibility, speed, and the false-alarm rates
the thresholds give on simulated days without drift."""

import math
import time

import numpy as np
import pytest
from scipy.stats import entropy

from governance.engine import DriftMonitor, classify, null_thresholds
from governance.engine.drift import NULL_REPEATS, null_kl_distribution


def reference_null_kl(baseline, n_current, bins, repeats, seed):
    """Independent of the engine's helpers: the baseline's histogram over its own range,
    the documented draws (a multinomial pseudo-baseline of the baseline's size, then a
    multinomial pseudo-current of n_current, from one seeded Generator), KL by scipy."""
    counts = np.histogram(baseline, bins=bins, range=(baseline.min(), baseline.max()))[0]
    rng = np.random.default_rng(seed)
    pseudo_baselines = rng.multinomial(baseline.size, counts / counts.sum(), size=repeats)
    pseudo_currents = rng.multinomial(n_current, counts / counts.sum(), size=repeats)
    return np.array([entropy(p + 0.5, q + 0.5) for p, q in zip(pseudo_currents, pseudo_baselines)])


@pytest.mark.parametrize("seed", range(4))
def test_null_kl_values_and_percentiles_match_scipy_and_numpy(seed):
    rng = np.random.default_rng(seed)
    baseline = rng.gamma(2.0, 0.05, int(rng.integers(100, 5000)))
    n_current, bins = int(rng.integers(30, 5000)), int(rng.integers(5, 40))
    kl = null_kl_distribution(baseline, n_current, bins=bins, repeats=500, seed=seed)
    reference = reference_null_kl(baseline, n_current, bins, 500, seed)
    np.testing.assert_allclose(kl, reference, rtol=1e-10, atol=1e-15)

    suggested = null_thresholds(baseline, n_current, bins=bins, repeats=500, seed=seed)
    p90, p99 = np.percentile(reference, [90, 99])
    assert suggested.warning_percentile_kl == pytest.approx(p90, rel=1e-10)
    assert suggested.critical_percentile_kl == pytest.approx(p99, rel=1e-10)
    # Rounded up to 4 significant digits: never below the percentile, at most one unit above.
    assert p90 <= suggested.tau_warning <= p90 + 10 ** (math.floor(math.log10(p90)) - 3) + 1e-15
    assert p99 <= suggested.tau_critical <= p99 + 10 ** (math.floor(math.log10(p99)) - 3) + 1e-15
    assert (suggested.n_current, suggested.n_baseline, suggested.bins, suggested.repeats) == (
        n_current, baseline.size, bins, 500)


def test_a_resample_of_the_baseline_is_measured_like_the_daily_check():
    """The null's estimator is the check's: bins over the baseline's range (a resample
    stays inside it), the same smoothing, the same KL."""
    rng = np.random.default_rng(11)
    baseline = rng.normal(0.1, 0.02, 800)
    resample = rng.choice(baseline, 300)
    counts = np.histogram(baseline, bins=20, range=(baseline.min(), baseline.max()))[0]
    resample_counts = np.histogram(resample, bins=20, range=(baseline.min(), baseline.max()))[0]
    assert DriftMonitor(baseline).check(resample).kl_divergence == pytest.approx(
        entropy(resample_counts + 0.5, counts + 0.5), rel=1e-12)


def test_same_seed_same_thresholds_other_seed_other_draws():
    baseline = np.random.default_rng(3).beta(2, 5, 1000)
    first = null_thresholds(baseline, 200, bins=20, seed=(7, 739000))
    assert null_thresholds(baseline, 200, bins=20, seed=(7, 739000)) == first
    assert null_thresholds(baseline, 200, bins=20, seed=(7, 739001)).warning_percentile_kl != \
        first.warning_percentile_kl


def test_the_threshold_shrinks_as_the_daily_sample_grows():
    """No drift at a larger n means a smaller KL: the thresholds follow the sample size."""
    baseline = np.random.default_rng(4).beta(2, 5, 20000)
    small, large = (null_thresholds(baseline, n, bins=20, seed=1) for n in (500, 5000))
    assert large.tau_warning < small.tau_warning / 3
    assert small.tau_warning < small.tau_critical and large.tau_warning < large.tau_critical


def test_a_constant_baseline_still_gives_positive_ordered_thresholds():
    suggested = null_thresholds([0.2] * 50, 40, bins=20, seed=0)
    assert suggested.warning_percentile_kl == suggested.critical_percentile_kl == 0.0
    assert 0 < suggested.tau_warning < suggested.tau_critical


@pytest.mark.parametrize(("baseline", "n_current", "message"), [
    ([math.nan, math.inf], 100, "no finite values"),
    ([0.1, 0.2], 0, "n_current must be a positive integer"),
    ([0.1, 0.2], 2.5, "n_current must be a positive integer"),
])
def test_bad_input_is_refused_with_a_message(baseline, n_current, message):
    with pytest.raises(ValueError, match=message):
        null_thresholds(baseline, n_current, bins=20)


@pytest.mark.parametrize(("n_baseline", "n_current"), [(2000, 500), (20000, 5000), (100000, 5000)])
def test_default_repeats_run_well_under_a_second(n_baseline, n_current):
    baseline = np.random.default_rng(5).beta(2, 5, n_baseline)
    null_thresholds(baseline, n_current, bins=20, seed=0)  # warm-up
    started = time.perf_counter()
    suggested = null_thresholds(baseline, n_current, bins=20, seed=1)
    assert time.perf_counter() - started < 0.25
    assert suggested.repeats == NULL_REPEATS


def test_classify_is_the_checks_rule():
    assert [classify(kl, 0.3, 0.5) for kl in (0.0, 0.2999, 0.3, 0.4999, 0.5, 7.0)] == [
        "normal", "normal", "warning", "warning", "critical", "critical"]


def test_false_alarm_rates_on_simulated_days_without_drift():
    """1,000 simulated days with no drift: 100 baselines of 2,000 values, each with 10 days
    of 500 values, all drawn from the same Beta(2, 5); each baseline's own suggested
    thresholds classify its days with the daily check. About 10 % of the days are warning or
    worse and about 1 % critical, as the 90th / 99th percentiles promise."""
    rng = np.random.default_rng(2026)
    statuses = []
    for index in range(100):
        baseline = rng.beta(2, 5, 2000)
        suggested = null_thresholds(baseline, 500, bins=20, seed=index)
        monitor = DriftMonitor(baseline, tau_warning=suggested.tau_warning, tau_critical=suggested.tau_critical)
        statuses += [monitor.check(day).status for day in rng.beta(2, 5, (10, 500))]
    assert len(statuses) == 1000
    warning_or_worse = sum(status in ("warning", "critical") for status in statuses) / 1000
    critical = statuses.count("critical") / 1000
    assert 0.07 <= warning_or_worse <= 0.13, warning_or_worse
    assert 0.0 <= critical <= 0.02, critical
