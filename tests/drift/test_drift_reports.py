"""Daily drift reports (PLATFORM.md §6, ENGINE.md §4): the stored KL against an independent
reference, the window, the status boundaries under applied configurations, the reasons
when no report can be made, idempotency and the daily Celery task."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from django.utils import timezone

from calibration.versions import active_config
from governance import drift, tasks
from governance.models import Customer, DriftReport
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import (BASELINE_SETTER, day_start, drift_proposals, make_decisions, normal_grid,
                                reference_kl, set_taus)

pytestmark = pytest.mark.django_db

DAY = date(2025, 3, 20)


def _baseline(customer, values, source="test baseline"):
    return drift.set_baseline(customer, list(map(float, values)), actor=BASELINE_SETTER, source=source)


# --- 1. KL against an independent reference ------------------------------------------------------

SAMPLES = [
    # (seed, baseline generator, current generator)
    (1, lambda r: r.normal(0.05, 0.01, 150), lambda r: r.normal(0.05, 0.01, 40)),  # same distribution
    (2, lambda r: r.normal(0.05, 0.01, 200), lambda r: r.normal(0.07, 0.015, 60)),  # shifted up, wider
    (3, lambda r: r.beta(2, 5, 120), lambda r: r.uniform(0.0, 1.0, 50)),  # current spans beyond the baseline
    (4, lambda r: r.uniform(0.2, 0.4, 90), lambda r: r.normal(0.3, 0.2, 70)),  # values clipped at 0 and 1
]


@pytest.mark.parametrize("seed, make_baseline, make_current", SAMPLES, ids=[f"seed{s[0]}" for s in SAMPLES])
def test_stored_kl_equals_an_independent_scipy_reference(make_tenant, seed, make_baseline, make_current):
    rng = np.random.default_rng(seed)
    baseline = np.clip(make_baseline(rng), 0.0, 1.0)
    current = np.clip(make_current(rng), 0.0, 1.0)
    customer = make_tenant(f"Sample {seed}")
    _baseline(customer, baseline)
    make_decisions(customer, current, DAY - timedelta(days=seed))

    report, message = drift.run_drift_report(customer, DAY)

    expected = reference_kl(current, baseline, bins=active_config()[1].kl_bins)
    assert report is not None, message
    stored = DriftReport.objects.get(pk=report.pk)
    assert stored.kl_divergence == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert (stored.n_current, stored.n_baseline) == (len(current), len(baseline))
    assert stored.day == DAY and stored.customer == customer
    assert f"{expected:.4f}" in stored.message
    assert f"current n={len(current)}, baseline n={len(baseline)}" in stored.message


def test_all_values_equal_gives_zero_kl(make_tenant):
    customer = make_tenant("Flat")
    _baseline(customer, [0.05] * 30)
    make_decisions(customer, [0.05] * 30, DAY)
    report, message = drift.run_drift_report(customer, DAY)
    assert report is not None, message
    assert report.kl_divergence == 0.0 and report.status == "normal"


def test_window_is_the_kl_window_days_ending_at_the_end_of_the_day_and_this_tenant_only(make_tenant):
    customer, other = make_tenant("Windowed"), make_tenant("Other")
    config = active_config()[1]
    baseline = normal_grid(0.05, 0.01, 100)
    _baseline(customer, baseline)
    until = day_start(DAY + timedelta(days=1))
    since = until - timedelta(days=config.kl_window_days)
    inside = normal_grid(0.06, 0.01, 40)
    make_decisions(customer, inside[:35], DAY - timedelta(days=3))
    make_decisions(customer, inside[35:], since)  # the first instant of the window counts
    make_decisions(customer, [0.9] * 5, since - timedelta(microseconds=1))  # just before it
    make_decisions(customer, [0.9] * 5, until)  # the next day
    make_decisions(other, [0.9] * 10, DAY)  # another tenant

    report, message = drift.run_drift_report(customer, DAY)

    assert report is not None, message
    assert report.n_current == 40
    assert report.kl_divergence == pytest.approx(reference_kl(inside, baseline), rel=1e-12)


def test_the_newest_baseline_is_in_force_and_recorded(make_tenant):
    customer = make_tenant("Rebased")
    current = normal_grid(0.08, 0.01, 40)
    _baseline(customer, normal_grid(0.05, 0.01, 60), source="old")
    newest = _baseline(customer, current, source="new")
    make_decisions(customer, current, DAY)
    report, _ = drift.run_drift_report(customer, DAY)
    assert report.baseline == newest and report.kl_divergence == pytest.approx(0.0, abs=1e-15)


# --- 2. status boundaries, under configurations applied through calibration ------------------

def test_status_boundaries_are_inclusive_at_tau_warning_and_tau_critical(make_tenant):
    customer = make_tenant("Boundary")
    _baseline(customer, normal_grid(0.05, 0.01, 200))
    make_decisions(customer, np.concatenate([normal_grid(0.05, 0.01, 60), normal_grid(0.08, 0.01, 22)]),
                   DAY - timedelta(days=1))

    first, _ = drift.run_drift_report(customer, DAY)  # contract defaults: 0.3 / 0.5
    kl = first.kl_divergence
    assert 0.3 <= kl < 0.5 and first.status == "warning"
    just_above = float(np.nextafter(kl, np.inf))

    # Days two apart: no three consecutive warning days, so no drift-monitor proposal mixes in.
    cases = [
        ({"tau_warning": kl, "tau_critical": 2 * kl}, "warning", "monitor"),  # KL == tau_warning
        ({"tau_warning": just_above, "tau_critical": 2 * kl}, "normal", "none"),  # one ulp below
        ({"tau_warning": kl / 2, "tau_critical": kl}, "critical", "pause_and_recalibrate"),  # KL == tau_critical
        ({"tau_warning": kl / 2, "tau_critical": just_above}, "warning", "monitor"),  # one ulp below
    ]
    for offset, (taus, status, action) in enumerate(cases, start=1):
        applied = set_taus(**taus)
        version, config = active_config()
        assert version == applied.version and (config.tau_warning, config.tau_critical) == (
            taus["tau_warning"], taus["tau_critical"])
        report, message = drift.run_drift_report(customer, DAY + timedelta(days=2 * offset))
        assert report is not None, message
        assert report.kl_divergence == kl  # same window contents, same baseline
        assert (report.status, report.action) == (status, action), (taus, report.message)
        assert (report.tau_warning, report.tau_critical) == (taus["tau_warning"], taus["tau_critical"])
        assert report.config_version == applied.version
    assert not drift_proposals().exists()


# --- 3. no report, with the reason -------------------------------------------------------------

def test_fewer_current_values_than_kl_min_samples_gives_no_report_and_names_the_minimum(make_tenant):
    customer = make_tenant("Sparse")
    minimum = active_config()[1].kl_min_samples
    _baseline(customer, normal_grid(0.05, 0.01, 100))
    make_decisions(customer, normal_grid(0.05, 0.01, minimum - 1), DAY)

    report, message = drift.run_drift_report(customer, DAY)

    assert report is None
    assert f"at least {minimum}" in message and f"current n={minimum - 1}" in message
    assert not DriftReport.objects.exists()

    make_decisions(customer, [0.05], DAY)  # exactly the minimum is enough
    report, message = drift.run_drift_report(customer, DAY)
    assert report is not None and report.n_current == minimum, message


def test_no_baseline_gives_no_report_and_says_so(make_tenant):
    customer = make_tenant("Unbased")
    make_decisions(customer, normal_grid(0.05, 0.01, 40), DAY)
    report, message = drift.run_drift_report(customer, DAY)
    assert report is None
    assert "no drift baseline" in message and "Unbased" in message
    assert not DriftReport.objects.exists()


# --- 5. idempotency and the daily task ----------------------------------------------------------

def test_running_twice_for_the_same_day_keeps_one_report(make_tenant):
    customer = make_tenant("Twice")
    _baseline(customer, normal_grid(0.05, 0.01, 100))
    make_decisions(customer, normal_grid(0.06, 0.01, 40), DAY)
    first, _ = drift.run_drift_report(customer, DAY)
    make_decisions(customer, [0.9] * 20, DAY)  # new data later that day changes nothing
    second, message = drift.run_drift_report(customer, DAY)
    assert second.pk == first.pk and second.kl_divergence == first.kl_divergence
    assert "already reported" in message
    assert DriftReport.objects.filter(customer=customer).count() == 1


def test_a_concurrent_run_that_stored_the_day_first_wins_and_nothing_is_duplicated(make_tenant, monkeypatch):
    """A redelivered task racing the first one: the other run stores the day's report between
    this run's existence check and its insert; the unique constraint decides, and this run
    returns the stored report instead of failing (and opens no proposal)."""
    customer = make_tenant("Racy")
    baseline = _baseline(customer, normal_grid(0.05, 0.01, 100))
    make_decisions(customer, normal_grid(0.06, 0.01, 40), DAY)
    real_from_config = drift.DriftMonitor.from_config

    def from_config_after_the_other_run(values, config):
        DriftReport.objects.create(customer=customer, day=DAY, baseline=baseline, kl_divergence=0.123,
                                   status="normal", action="none", message="the other run", n_current=40,
                                   n_baseline=100, tau_warning=0.3, tau_critical=0.5, config_version=1)
        return real_from_config(values, config)

    monkeypatch.setattr(drift.DriftMonitor, "from_config", from_config_after_the_other_run)
    report, message = drift.run_drift_report(customer, DAY)

    assert report.message == "the other run" and "already reported" in message
    assert DriftReport.objects.filter(customer=customer).count() == 1
    assert DriftReport.objects.get(customer=customer).kl_divergence == 0.123  # still usable afterwards


def test_daily_task_creates_reports_for_active_tenants_with_baselines_only(make_tenant):
    today = timezone.now().date()
    with_baseline = [make_tenant("Alpha"), make_tenant("Beta")]
    no_baseline = make_tenant("Gamma")
    suspended = make_tenant("Delta")
    for customer in [*with_baseline, suspended]:
        _baseline(customer, normal_grid(0.05, 0.01, 60))
    for customer in [*with_baseline, no_baseline, suspended]:
        make_decisions(customer, normal_grid(0.05, 0.01, 30), today)
    Customer.objects.filter(pk=suspended.pk).update(status=Customer.Status.SUSPENDED)

    queued = tasks.drift_reports_daily.delay().get()  # eager without REDIS_URL

    assert queued == 2
    assert sorted(DriftReport.objects.values_list("customer__name", flat=True)) == ["Alpha", "Beta"]
    assert set(DriftReport.objects.values_list("day", flat=True)) == {today}
    # A redelivered task changes nothing.
    tasks.drift_reports_daily.delay(today.isoformat()).get()
    assert DriftReport.objects.count() == 2


def test_daily_task_for_a_given_day_and_the_per_tenant_task_result(make_tenant):
    customer = make_tenant("Dated")
    _baseline(customer, normal_grid(0.05, 0.01, 60))
    make_decisions(customer, normal_grid(0.05, 0.01, 30), DAY)
    assert tasks.drift_reports_daily.delay(DAY.isoformat()).get() == 1
    report = DriftReport.objects.get(customer=customer)
    assert report.day == DAY
    result = tasks.drift_report.delay(customer.pk, DAY.isoformat()).get()
    assert result["report_id"] == report.pk and "already reported" in result["message"]


def test_daily_task_queues_each_tenant_once_after_its_baseline_was_replaced(make_tenant):
    """Regression (fixed in e712ce8): drift_reports_daily's
    `DriftBaseline.objects…values_list("customer_id").distinct()` kept the model's default
    ordering (-created_at, -id), so SELECT DISTINCT also covered those columns and a tenant
    was queued once per baseline it ever had."""
    customer = make_tenant("Rebaselined")
    _baseline(customer, normal_grid(0.05, 0.01, 60), source="first")
    _baseline(customer, normal_grid(0.05, 0.01, 80), source="second")
    make_decisions(customer, normal_grid(0.05, 0.01, 30), DAY)

    queued = tasks.drift_reports_daily.delay(DAY.isoformat()).get()

    assert DriftReport.objects.filter(customer=customer).count() == 1
    assert queued == 1, f"one tenant queued {queued} times (once per stored baseline)"
