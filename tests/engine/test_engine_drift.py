"""DriftMonitor against an independent KL computation (ENGINE.md §4)."""

import math
import time

import numpy as np
import pytest
from scipy.stats import entropy

from governance.engine import AegisConfig, DriftMonitor


def reference_kl(current, baseline, bins=20):
    """Independent: numpy histograms over the union range, +0.5, scipy.stats.entropy."""
    current = np.asarray(current, float)
    baseline = np.asarray(baseline, float)
    current, baseline = current[np.isfinite(current)], baseline[np.isfinite(baseline)]
    both = np.concatenate([current, baseline])
    low, high = both.min(), both.max()
    if low == high:
        edges = np.array([low - 0.5, low + 0.5])
    else:
        edges = np.linspace(low, high, bins + 1)
    p = np.histogram(current, bins=edges)[0] + 0.5
    q = np.histogram(baseline, bins=edges)[0] + 0.5
    return entropy(p, q)  # normalises both, natural log


@pytest.mark.parametrize("seed", range(6))
def test_kl_matches_scipy_entropy_on_random_samples(seed):
    rng = np.random.default_rng(seed)
    baseline = rng.normal(0.0, 1.0, rng.integers(30, 3000))
    current = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), rng.integers(30, 3000))
    bins = int(rng.integers(2, 60))
    result = DriftMonitor(baseline, bins=bins).check(current)
    assert result.kl_divergence == pytest.approx(reference_kl(current, baseline, bins), rel=1e-12, abs=1e-15)
    assert (result.n_current, result.n_baseline) == (current.size, baseline.size)


def test_kl_matches_on_disjoint_and_skewed_samples():
    rng = np.random.default_rng(42)
    baseline = rng.exponential(1.0, 500)
    current = rng.uniform(10, 20, 400)
    result = DriftMonitor(baseline).check(current)
    assert result.kl_divergence == pytest.approx(reference_kl(current, baseline), rel=1e-12)
    assert result.status == "critical" and result.action == "pause_and_recalibrate"


def test_identical_constant_samples_use_one_bin_and_give_zero():
    result = DriftMonitor([3.0] * 40).check([3.0] * 50)
    assert result.kl_divergence == 0.0 and result.status == "normal" and result.action == "none"


@pytest.mark.parametrize("baseline, current", [
    ([1.0] * 30 + [math.nextafter(1.0, 2.0)] * 30, [1.0] * 40),  # span of one ulp
    ([-1e308] * 30 + [1e308] * 30, [0.0] * 40),  # span overflows float64
])
def test_degenerate_spans_still_give_a_kl(baseline, current):
    result = DriftMonitor(baseline).check(current)
    assert result.computed and math.isfinite(result.kl_divergence) and result.kl_divergence > 0


def test_same_sample_gives_zero():
    data = np.random.default_rng(1).normal(size=1000)
    assert DriftMonitor(data).check(data).kl_divergence == 0.0


def test_status_exactly_at_the_thresholds():
    rng = np.random.default_rng(5)
    baseline, current = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    kl = DriftMonitor(baseline).check(current).kl_divergence
    assert 0 < kl
    at_warning = DriftMonitor(baseline, tau_warning=kl, tau_critical=2 * kl).check(current)
    assert (at_warning.status, at_warning.action) == ("warning", "monitor")
    below_warning = DriftMonitor(baseline, tau_warning=math.nextafter(kl, math.inf),
                                 tau_critical=2 * kl).check(current)
    assert (below_warning.status, below_warning.action) == ("normal", "none")
    at_critical = DriftMonitor(baseline, tau_warning=kl / 2, tau_critical=kl).check(current)
    assert (at_critical.status, at_critical.action) == ("critical", "pause_and_recalibrate")
    below_critical = DriftMonitor(baseline, tau_warning=kl / 2,
                                  tau_critical=math.nextafter(kl, math.inf)).check(current)
    assert below_critical.status == "warning"


def test_messages_state_kl_threshold_and_sample_sizes():
    rng = np.random.default_rng(9)
    baseline, current = rng.normal(0, 1, 300), rng.normal(4, 1, 200)
    result = DriftMonitor(baseline).check(current)
    assert f"{result.kl_divergence:.4f}" in result.message
    assert "tau_critical 0.5000" in result.message
    assert "current n=200" in result.message and "baseline n=300" in result.message
    normal = DriftMonitor(baseline).check(baseline[:100])
    assert normal.status == "normal" and "tau_warning 0.3000" in normal.message


@pytest.mark.parametrize("n_baseline, n_current", [(29, 100), (100, 29), (0, 0), (100, 0)])
def test_insufficient_data(n_baseline, n_current):
    rng = np.random.default_rng(0)
    result = DriftMonitor(rng.normal(size=n_baseline)).check(rng.normal(size=n_current))
    assert result.status == "insufficient_data" and result.kl_divergence is None
    assert result.action == "none" and not result.computed
    assert "at least 30" in result.message
    assert f"current n={n_current}" in result.message and f"baseline n={n_baseline}" in result.message


def test_non_finite_values_are_dropped_before_counting():
    rng = np.random.default_rng(3)
    baseline = rng.normal(size=100)
    current = np.concatenate([rng.normal(size=29), [np.nan, np.inf, -np.inf]])
    assert DriftMonitor(baseline).check(current).status == "insufficient_data"
    current = np.concatenate([rng.normal(size=60), [np.nan, np.inf]])
    result = DriftMonitor(np.append(baseline, np.nan)).check(current)
    assert (result.n_current, result.n_baseline) == (60, 100)
    assert result.kl_divergence == pytest.approx(reference_kl(current, baseline), rel=1e-12)


def test_from_config_uses_bins_min_samples_and_thresholds():
    config = AegisConfig.default().replace(kl_bins=7, kl_min_samples=5, tau_warning=0.01,
                                           tau_critical=0.02)
    monitor = DriftMonitor.from_config(np.arange(10.0), config)
    assert (monitor.bins, monitor.min_samples, monitor.tau_warning, monitor.tau_critical) == (7, 5, 0.01, 0.02)
    result = monitor.check(np.arange(5.0) + 3)
    assert result.computed
    assert result.kl_divergence == pytest.approx(reference_kl(np.arange(5.0) + 3, np.arange(10.0), 7))


@pytest.mark.parametrize("kwargs", [dict(bins=0), dict(min_samples=0), dict(tau_warning=0.5, tau_critical=0.5),
                                    dict(tau_warning=0.0), dict(bins=2.5)])
def test_invalid_monitor_settings(kwargs):
    with pytest.raises(ValueError):
        DriftMonitor([1.0] * 30, **kwargs)


def test_to_dict_rounds_kl():
    rng = np.random.default_rng(2)
    result = DriftMonitor(rng.normal(size=100)).check(rng.normal(1, 1, 100))
    assert result.to_dict() == {"status": result.status, "kl_divergence": round(result.kl_divergence, 4),
                                "action": result.action, "message": result.message}


def test_one_million_values_well_under_a_second():
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(rng.normal(size=1_000_000))
    current = rng.normal(0.1, 1.0, 1_000_000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        monitor.check(current)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5
