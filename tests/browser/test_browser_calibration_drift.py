"""Calibration that sees what it changes, in a real browser: a second risk lead reviews a
tau_warning change whose impact preview lists the drift report that would turn from
warning to normal (linked to the tenant's drift page), and the drift monitor's automatic
proposal whose justification shows the null-distribution method and its numbers."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from calibration import services as calibration_services
from calibration.models import CalibrationProposal
from governance import drift
from governance import services as governance_services
from governance.models import DriftBaseline, DriftReport, Tier
from workflows.roles import RISK_LEAD_GROUP
from workflows.services import actor_for

PASSWORD = "Correct-Horse-Battery-9"


def make_risk_lead(username: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=RISK_LEAD_GROUP)[0])
    return user


def stored_reports(customer, kls: list[float]) -> list[DriftReport]:
    """Reports of the last len(kls) days (newest last), judged under the default thresholds."""
    baseline = DriftBaseline.objects.create(customer=customer, values=np.random.default_rng(0).beta(2, 5, 400).tolist(),
                                            source="test", created_by="test")
    today = timezone.now().date()
    return [DriftReport.objects.create(
        customer=customer, day=today - timedelta(days=len(kls) - 1 - i), baseline=baseline, kl_divergence=kl,
        status="critical" if kl >= 0.5 else "warning" if kl >= 0.3 else "normal", action="", message="",
        n_current=250, n_baseline=400, tau_warning=0.3, tau_critical=0.5, config_version=1)
        for i, kl in enumerate(kls)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_preview_lists_the_drift_report_that_turns_normal(browser_page, live_server, login, screenshot):
    page = browser_page
    alice, _ = make_risk_lead("alice"), make_risk_lead("bob")
    customer, _, _ = governance_services.create_customer("Acme Lending", tier=Tier.objects.get(name="team"))
    turning, *_ = stored_reports(customer, [0.3274, 0.12, 0.41])
    proposal = calibration_services.propose("tau_warning", 0.35, "Warnings at 0.30–0.35 were all noise",
                                            actor=actor_for(alice))

    login(page, live_server, "bob", PASSWORD)
    page.goto(f"{live_server.url}/calibration/{proposal.proposal_id}/")
    expect(page.locator("#preview-drift-changed")).to_have_text("1")
    expect(page.locator("#preview-drift-reports")).to_have_text("3")
    rows = page.locator("#preview-drift-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Acme Lending")
    expect(rows.first).to_contain_text("0.3274")
    expect(rows.first).to_contain_text(turning.day.isoformat())
    expect(rows.first.locator("td").nth(3)).to_have_text("warning")
    expect(rows.first.locator("td").nth(4)).to_have_text("normal")
    page.locator("#impact-preview").scroll_into_view_if_needed()
    screenshot(page, "calibration-drift-01-preview-lists-drift-report")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "calibration-drift-02-preview-at-390px")
    page.set_viewport_size({"width": 1280, "height": 900})
    with page.expect_navigation():
        rows.first.locator("a").click()
    assert page.url.endswith(f"/drift/{customer.customer_id}/")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_automatic_proposal_shows_the_null_distribution(browser_page, live_server, login, screenshot):
    page = browser_page
    make_risk_lead("bob")
    customer, _, _ = governance_services.create_customer("Drifting Co", tier=Tier.objects.get(name="team"))
    stored_reports(customer, [0.36, 0.44, 0.58])
    drift.open_recalibration_if_sustained(customer)
    proposal = CalibrationProposal.objects.get()

    login(page, live_server, "bob", PASSWORD)
    page.goto(f"{live_server.url}/calibration/{proposal.proposal_id}/")
    justification = page.locator("dt", has_text="Justification").locator("xpath=following-sibling::dd[1]")
    expect(justification).to_contain_text("null distribution")
    expect(justification).to_contain_text("baseline of n = 400 and a day of n = 250")
    expect(justification).to_contain_text("10,000 pairs of samples")
    expect(justification).to_contain_text("(now 0.3)")
    # The drifted days stay drifted under the suggested thresholds: none turns normal, the
    # two warnings become critical.
    expect(page.locator("#preview-drift-changes")).to_have_text("warning → critical: 2")
    screenshot(page, "calibration-drift-03-automatic-proposal-justification")
