"""The impact preview of a drift-threshold change (issue 13, Build 5): beside the decisions it
re-decides, it re-judges the stored drift reports of the replay window on their KL, with the
engine's own rule, and lists those whose status would change (tenant, day, KL, old → new,
linked to the tenant's drift page), in the service, the review page and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cal_support import make_user, propose
from django.utils import timezone

from calibration import services
from governance.models import DriftBaseline, DriftReport

pytestmark = pytest.mark.django_db


def report(customer, days_ago: int, kl: float, status: str) -> DriftReport:
    """A stored report as run_drift_report makes it under the default thresholds."""
    baseline = DriftBaseline.objects.filter(customer=customer).first() or DriftBaseline.objects.create(
        customer=customer, values=[0.1] * 30, source="test", created_by="test")
    return DriftReport.objects.create(
        customer=customer, day=timezone.now().date() - timedelta(days=days_ago), baseline=baseline,
        kl_divergence=kl, status=status, action="", message="", n_current=100, n_baseline=30,
        tau_warning=0.3, tau_critical=0.5, config_version=1)


@pytest.fixture
def reports(make_tenant):
    """Acme: 0.3274 (warning, turns normal at tau_warning 0.35), 0.35 (exactly at the new
    tau_warning: stays warning), 0.2 (normal), 0.6 (critical), and 0.33 forty days ago
    (outside the 30-day window). Beta: 0.31 (warning, turns normal)."""
    acme, _ = make_tenant("Acme")
    beta, _ = make_tenant("Beta")
    return {"turning": report(acme, 2, 0.3274, "warning"), "at_threshold": report(acme, 3, 0.35, "warning"),
            "normal": report(acme, 4, 0.2, "normal"), "critical": report(acme, 5, 0.6, "critical"),
            "old": report(acme, 40, 0.33, "warning"), "other_tenant": report(beta, 1, 0.31, "warning"),
            "acme": acme, "beta": beta}


def test_a_warning_at_kl_0_3274_turns_normal_and_is_listed(reports):
    preview = services.preview_change("tau_warning", 0.35)
    assert preview.drift_reports == 5  # the window's reports; the one 40 days ago is not among them
    assert preview.drift_changes == {"warning → normal": 2}
    assert preview.drift_changed == 2
    assert preview.total_changed == preview.changed + 2
    listed = [(row.tenant, row.day, row.kl_divergence, row.before, row.after) for row in preview.drift_examples]
    assert listed == [  # newest first
        ("Beta", reports["other_tenant"].day, 0.31, "warning", "normal"),
        ("Acme", reports["turning"].day, 0.3274, "warning", "normal"),
    ]
    assert preview.drift_examples[1].url == f"/drift/{reports['acme'].customer_id}/"


def test_critical_threshold_changes_both_ways(reports):
    lower = services.preview_change("tau_critical", 0.34)
    assert lower.drift_changes == {"warning → critical": 1}  # 0.35; 0.3274 and 0.31 stay below
    assert [row.kl_divergence for row in lower.drift_examples] == [0.35]
    higher = services.preview_change("tau_critical", 0.65)
    assert higher.drift_changes == {"critical → warning": 1}
    assert [(row.kl_divergence, row.before, row.after) for row in higher.drift_examples] == [(0.6, "critical", "warning")]


def test_companion_thresholds_are_judged_together(reports):
    preview = services.preview_change("tau_warning", 0.05, companions={"tau_critical": 0.1})
    assert preview.drift_changes == {"warning → critical": 3, "normal → critical": 1}
    assert preview.drift_changed == 4


def test_other_parameters_change_no_report(reports):
    """Only the thresholds move a stored KL's status (the KL computation's own parameters,
    kl_bins and the like, are not calibratable)."""
    unrelated = services.preview_change("novelty_threshold", 0.9)
    assert unrelated.drift_reports == 5 and unrelated.drift_changes == {} and unrelated.drift_examples == []


def test_the_reports_are_read_in_one_query(reports, django_assert_num_queries):
    _, config = services.active_config()
    with django_assert_num_queries(1):
        total, counts, changed = services.drift_report_changes(
            config, config.replace(tau_warning=0.35), services.window_start(config.kl_window_days))
    assert (total, dict(counts), len(changed)) == (5, {"warning → normal": 2}, 2)


def test_the_listed_reports_are_capped_but_counted(make_tenant, monkeypatch):
    customer, _ = make_tenant("Many")
    for days_ago in range(6):
        report(customer, days_ago, 0.32, "warning")
    monkeypatch.setattr(services, "PREVIEW_DRIFT_REPORTS", 4)
    preview = services.preview_change("tau_warning", 0.35)
    assert preview.drift_changed == 6 and len(preview.drift_examples) == 4
    assert preview.drift_examples[0].day == timezone.now().date()


# --- the review page and the API show the same, to signed-in people only ---------------------

@pytest.mark.parametrize("who", ["anonymous", "no role", "risk lead"])
def test_review_page_lists_the_drift_reports(who, reports, alice, browser):
    proposal = propose(alice, "tau_warning", 0.35)
    user = {"anonymous": None, "no role": make_user("dora"), "risk lead": make_user("erin", risk_lead=True)}[who]
    response = browser(user).get(f"/calibration/{proposal.proposal_id}/")
    if user is None:
        assert response.status_code == 302 and "/login" in response["Location"]
        return
    page = response.content.decode()
    assert response.status_code == 200
    preview = response.context["preview"]
    assert f'<strong id="preview-total-changed">{preview.changed + 2}</strong>' in page
    assert '<strong id="preview-drift-changed">2</strong> drift reports' in page
    assert '<strong id="preview-drift-reports">5</strong>' in page
    assert "warning → normal: <strong>2</strong>" in page
    acme = reports["acme"].customer_id
    assert f'<a href="/drift/{acme}/">Acme</a>' in page
    assert f'<time datetime="{reports["turning"].day.isoformat()}">' in page
    assert "<td>0.3274</td>" in page
    assert '<span class="badge warning">warning</span></td><td><span class="badge normal">normal</span>' in page
    for absent in ("0.6000", "0.2000", "0.3500"):  # unchanged reports are not listed
        assert f"<td>{absent}</td>" not in page


@pytest.mark.parametrize("who", ["anonymous", "no role", "risk lead"])
def test_api_preview_lists_the_drift_reports(who, reports, alice, browser):
    proposal = propose(alice, "tau_warning", 0.35)
    user = {"anonymous": None, "no role": make_user("dora"), "risk lead": make_user("erin", risk_lead=True)}[who]
    response = browser(user).get(f"/api/calibration/proposals/{proposal.proposal_id}/preview")
    if user is None:
        assert response.status_code in (401, 403) and "drift_reports" not in response.json()
        return
    body = response.json()
    assert response.status_code == 200
    assert body["total_changed"] == body["changed"] + 2
    drift = body["drift_reports"]
    assert {key: drift[key] for key in ("reports", "changed", "changes")} == {
        "reports": 5, "changed": 2, "changes": {"warning → normal": 2}}
    assert drift["listed"][1] == {
        "tenant": "Acme", "customer_id": reports["acme"].customer_id, "day": reports["turning"].day.isoformat(),
        "kl_divergence": 0.3274, "from": "warning", "to": "normal", "url": f"/drift/{reports['acme'].customer_id}/"}
    assert [row["tenant"] for row in drift["listed"]] == ["Beta", "Acme"]
