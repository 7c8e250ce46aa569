"""Sustained drift (PLATFORM.md §6): kl_drift.sustained_days consecutive warning-or-worse
daily reports open ONE calibration proposal from `drift-monitor`, suggesting tau_warning /
tau_critical from the 90th / 99th percentiles of the baseline's null distribution (KL with no
drift, at the newest report's sample size), never from the drifted days; never a second one
while one is open; never applied without a human Risk Lead.

Every report here is made by `run_drift_report` from real decisions: the tenant has 60
decisions shaped like its baseline on day 0, and shifted ones (N(0.08, 0.01)) are added day
by day, so the 30-day window's KL rises (0.35 → warning from 20 shifted values on, ≥ 0.5 →
critical from 30 on, with a baseline of 200 values)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy import stats

from calibration import services as calibration_services
from calibration.versions import active_config, active_version_number
from governance import drift
from governance.drift import DRIFT_MONITOR_ACTOR
from governance.engine import classify, null_thresholds
from governance.models import DriftReport
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import (BASELINE_SETTER, NOBODY, RISK, drift_proposals, https_client, make_decisions,
                                normal_grid, open_drift_proposals, state_of)
from workflows.machines import Actor
from workflows.roles import Role

pytestmark = pytest.mark.django_db

DAY0 = date(2025, 5, 1)
BASELINE = normal_grid(0.05, 0.01, 200)
# N(0.08, 0.01) quantiles in golden-ratio order, so that every prefix (the shifted values
# added so far) is itself spread like N(0.08, 0.01).
SHIFTED = np.clip(stats.norm.ppf((np.arange(1, 401) * 0.6180339887498949) % 1.0, 0.08, 0.01), 0.0, 1.0)


class Tenant:
    """A tenant whose window holds 60 baseline-like decisions (day 0) plus the shifted ones
    added so far; `day(n, shifted_total)` tops the shifted decisions up to `shifted_total`
    on day n and runs that day's report."""

    def __init__(self, customer):
        self.customer = customer
        self.shifted = 0
        drift.set_baseline(customer, BASELINE.tolist(), actor=BASELINE_SETTER, source="baseline")
        make_decisions(customer, normal_grid(0.05, 0.01, 60), DAY0)

    def add(self, n: int, shifted_total: int):
        if shifted_total > self.shifted:
            make_decisions(self.customer, SHIFTED[self.shifted:shifted_total], DAY0 + timedelta(days=n))
            self.shifted = shifted_total

    def day(self, n: int, shifted_total: int) -> DriftReport:
        self.add(n, shifted_total)
        report, message = drift.run_drift_report(self.customer, DAY0 + timedelta(days=n))
        assert report is not None, message
        return report


@pytest.fixture
def tenant(make_tenant):
    return Tenant(make_tenant("Drifting"))


def test_three_consecutive_warning_or_worse_days_open_exactly_one_proposal_with_evidence(tenant):
    first = tenant.day(1, 20)
    second = tenant.day(2, 28)
    assert [first.status, second.status] == ["warning", "warning"]
    assert not drift_proposals().exists()  # two days are not enough
    version_before = active_version_number()

    third = tenant.day(3, 130)
    assert third.status == "critical"

    proposal = drift_proposals().get()
    assert proposal.proposed_by == DRIFT_MONITOR_ACTOR and state_of(proposal) == "proposed"
    # The suggestion: the null distribution of the third day's baseline at its sample size.
    expected = null_thresholds(BASELINE, third.n_current, bins=20, seed=(third.baseline_id, third.day.toordinal()))
    assert third.n_current == 60 + 130 and expected.n_baseline == 200
    assert proposal.parameter == "tau_warning"
    assert proposal.current_value == 0.3
    assert proposal.proposed_value == expected.tau_warning
    assert proposal.companion_changes == {"tau_critical": {"from": 0.5, "to": expected.tau_critical}}
    assert expected.warning_percentile_kl <= proposal.proposed_value < expected.tau_critical
    # Thresholds of the undrifted behaviour keep seeing the drift that was found.
    for report in (first, second, third):
        assert classify(report.kl_divergence, expected.tau_warning, expected.tau_critical) == "critical"
    # The justification carries the evidence (days and KL values) and the method with its numbers.
    for report in (first, second, third):
        assert f"{report.day}: KL {report.kl_divergence:.4f} ({report.status})" in proposal.justification
    assert "Drifting" in proposal.justification
    for text in ("null distribution", "10,000 pairs of samples", "baseline of n = 200", "day of n = 190",
                 "20 bins", f"90th percentile {expected.warning_percentile_kl:.6g} → tau_warning "
                 f"{expected.tau_warning:g} (now 0.3)", f"99th percentile {expected.critical_percentile_kl:.6g} → "
                 f"tau_critical {expected.tau_critical:g} (now 0.5)"):
        assert text in proposal.justification
    # Never applied without a human.
    assert active_version_number() == version_before
    assert proposal.applied_version is None


def test_two_warnings_a_normal_day_then_warnings_trigger_only_on_the_third_consecutive(tenant):
    statuses = [tenant.day(1, 22).status, tenant.day(2, 24).status]
    # Day 3 is normal: a baseline that matches the current window (a risk lead re-baselined).
    tenant.add(3, 24)
    window = drift.current_sample(tenant.customer, drift._day_start(DAY0), drift._day_start(DAY0 + timedelta(days=4)))
    drift.set_baseline(tenant.customer, window.tolist(), actor=BASELINE_SETTER, source="re-baselined")
    statuses.append(tenant.day(3, 24).status)
    # Back to the original baseline from day 4 on.
    drift.set_baseline(tenant.customer, BASELINE.tolist(), actor=BASELINE_SETTER, source="original again")
    statuses.append(tenant.day(4, 26).status)
    statuses.append(tenant.day(5, 28).status)
    assert statuses == ["warning", "warning", "normal", "warning", "warning"]
    assert not drift_proposals().exists()  # 4 of the last 5 days, but only 2 consecutive

    sixth = tenant.day(6, 36)
    assert sixth.status == "critical"
    proposal = drift_proposals().get()
    # The newest report's baseline (the original again) and sample size, not the history.
    expected = null_thresholds(BASELINE, sixth.n_current, bins=20, seed=(sixth.baseline_id, sixth.day.toordinal()))
    assert proposal.proposed_value == expected.tau_warning
    assert proposal.companion_changes["tau_critical"]["to"] == expected.tau_critical
    # The evidence names the three consecutive days only.
    for n in (4, 5, 6):
        assert str(DAY0 + timedelta(days=n)) in proposal.justification
    for n in (1, 2, 3):
        assert str(DAY0 + timedelta(days=n)) not in proposal.justification


def test_a_day_without_a_report_breaks_the_streak(tenant):
    assert tenant.day(1, 28).status == "warning"
    assert tenant.day(2, 28).status == "warning"
    # Day 3: no report (the task did not run).
    assert tenant.day(4, 28).status == "warning"
    assert tenant.day(5, 28).status == "warning"
    assert not drift_proposals().exists()
    tenant.day(6, 28)
    assert drift_proposals().count() == 1


def test_no_second_proposal_while_one_is_open_then_a_new_one_after_rejection(tenant, make_tenant):
    for n in (1, 2, 3):
        tenant.day(n, 28)
    proposal = drift_proposals().get()
    tenant.day(4, 34)
    tenant.day(5, 40)
    assert drift_proposals().count() == 1
    # Another tenant's sustained drift does not open a second one either.
    other = Tenant(make_tenant("Also drifting"))
    for n in (1, 2, 3):
        other.day(n, 28)
    assert drift_proposals().count() == 1
    # Still open after approval (APPROVED is open too).
    calibration_services.approve(proposal.proposal_id, actor=RISK, comment="Looks right")
    tenant.day(6, 40)
    assert drift_proposals().count() == 1
    # Once a human closed it, the next sustained day may open a new one.
    calibration_services.reject(proposal.proposal_id, actor=RISK, comment="Not now")
    tenant.day(7, 40)
    assert drift_proposals().count() == 2 and open_drift_proposals().count() == 1


def test_the_auto_proposal_needs_a_risk_lead_other_than_drift_monitor(tenant):
    for n in (1, 2, 3):
        tenant.day(n, 28)
    proposal = drift_proposals().get()
    version_before, config_before = active_config()

    # Not applied, and not appliable, without an approval.
    with pytest.raises(calibration_services.CalibrationError, match="APPROVED"):
        calibration_services.apply(proposal.proposal_id, actor=RISK)
    # drift-monitor cannot approve its own proposal, not even holding the role.
    self_approver = Actor(DRIFT_MONITOR_ACTOR, id=None, roles=frozenset({Role.RISK_LEAD}))
    with pytest.raises(calibration_services.CalibrationError, match="Four eyes"):
        calibration_services.approve(proposal.proposal_id, actor=self_approver, comment="me")
    # Nor can someone without the Risk Lead role.
    with pytest.raises(calibration_services.CalibrationError):
        calibration_services.approve(proposal.proposal_id, actor=NOBODY, comment="me neither")
    assert state_of(proposal) == "proposed"
    assert active_config() == (version_before, config_before)

    calibration_services.approve(proposal.proposal_id, actor=RISK, comment="Drift is real; move the thresholds")
    applied = calibration_services.apply(proposal.proposal_id, actor=RISK)
    assert applied.version == version_before + 1 and state_of(proposal) == "applied"
    _, config = active_config()
    assert config.tau_warning == proposal.proposed_value
    assert config.tau_critical == proposal.companion_changes["tau_critical"]["to"]
    # The next report is measured against the new thresholds.
    report = tenant.day(4, 28)
    assert (report.tau_warning, report.tau_critical) == (config.tau_warning, config.tau_critical)
    assert report.config_version == applied.version


def test_sustained_units():
    class R:
        def __init__(self, day, status):
            self.day, self.status = day, status

    d = DAY0
    streak = [R(d + timedelta(days=2), "critical"), R(d + timedelta(days=1), "warning"), R(d, "warning")]
    assert drift.sustained(streak, 3)
    assert not drift.sustained(streak[:2], 3)
    assert not drift.sustained([streak[0], R(d + timedelta(days=1), "normal"), streak[2]], 3)
    assert not drift.sustained([streak[0], streak[1], R(d - timedelta(days=1), "warning")], 3)  # a gap
    assert drift.sustained(streak[:1], 1)


def test_suggested_taus_are_reproducible_per_baseline_and_day(tenant):
    reports = [tenant.day(n, 28) for n in (1, 2)]
    first, again = (drift.suggested_taus(reports[0], 20) for _ in range(2))
    assert first == again
    assert drift.suggested_taus(reports[1], 20).warning_percentile_kl != first.warning_percentile_kl  # another day
    assert (first.n_current, first.n_baseline, first.bins) == (reports[0].n_current, 200, 20)


def test_the_auto_proposal_is_in_the_risk_leads_queue_for_review(tenant, make_user):
    reports = [tenant.day(n, 28) for n in (1, 2, 3)]
    proposal = drift_proposals().get()
    client = https_client(make_user("reviewer", risk_lead=True))
    queue = client.get("/calibration/", secure=True)
    assert queue.status_code == 200 and str(proposal.proposal_id) in queue.content.decode()
    review = client.get(f"/calibration/{proposal.proposal_id}/", secure=True)
    page = review.content.decode()
    assert review.status_code == 200 and DRIFT_MONITOR_ACTOR in page
    assert f"{reports[-1].day}: KL {reports[-1].kl_divergence:.4f}" in page
