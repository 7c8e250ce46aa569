"""The risk lead's calibration pages and the Django admin (PLATFORM.md §3): queue with
filters, review page (values, justification, proposer, drift chart, impact preview),
approve/reject with a comment and a confirmation, apply, four eyes explained; the admin
shows the same objects and enforces the same rules."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from cal_support import (JUSTIFICATION, approved, assert_chains_valid, events_of, make_user, messages_of, propose,
                         state_of)
from django.utils import timezone

from calibration import services
from calibration.models import ConfigurationVersion
from governance.engine import parse_proposal
from governance.services import CallContext, evaluate_proposal
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

FOUR_EYES_PAGE = "you proposed it, and four eyes means another risk lead must approve"


def review_url(proposal) -> str:
    return f"/calibration/{proposal.proposal_id}/"


def step_url(proposal, action: str) -> str:
    return f"/calibration/{proposal.proposal_id}/{action}/"


def page_of(browser, user, proposal) -> str:
    response = browser(user).get(review_url(proposal))
    assert response.status_code == 200
    return response.content.decode()


# --- login ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/calibration/"), ("GET", "/calibration/new/"), ("POST", "/calibration/new/"),
    ("GET", "/calibration/versions/"), ("GET", "review"), ("POST", "approve"), ("POST", "apply"),
])
def test_pages_need_login(method, path, alice, browser):
    proposal = propose(alice)
    if path in ("review",):
        path = review_url(proposal)
    elif path in ("approve", "apply"):
        path = step_url(proposal, path)
    client = browser(None)
    response = client.get(path) if method == "GET" else client.post_form(path, {"comment": "x", "confirm": "on"})
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")
    assert state_of(proposal) == "proposed"


# --- the queue ---------------------------------------------------------------------------------

@pytest.fixture
def queue_rows(alice, bob, carol):
    rows = {
        "open_novelty": propose(alice, "novelty_threshold", 0.9),
        "approved_floor": approved(bob, alice, "complexity_floor", 0.6),
        "rejected_tau": propose(alice, "tau_warning", 0.35),
        "applied_quality": approved(bob, alice, "quality_min_score", 0.75),
        "open_by_carol": propose(carol, "novelty_k", 12.0),
    }
    services.reject(rows["rejected_tau"].proposal_id, actor=actor_for(bob), comment="No evidence")
    services.apply(rows["applied_quality"].proposal_id, actor=actor_for(bob))
    return rows


@pytest.mark.parametrize(("query", "expected"), [
    ({}, {"open_novelty", "approved_floor", "open_by_carol"}),
    ({"status": "open"}, {"open_novelty", "approved_floor", "open_by_carol"}),
    ({"status": "PROPOSED"}, {"open_novelty", "open_by_carol"}),
    ({"status": "approved"}, {"approved_floor"}),
    ({"status": "REJECTED"}, {"rejected_tau"}),
    ({"status": "APPLIED"}, {"applied_quality"}),
    ({"status": "STALE"}, set()),
    ({"status": "bogus"}, {"open_novelty", "approved_floor", "open_by_carol"}),
    ({"parameter": "novelty_threshold"}, {"open_novelty"}),
    ({"parameter": "tau_warning", "status": "REJECTED"}, {"rejected_tau"}),
    ({"proposer": "alice"}, {"open_novelty"}),
    ({"proposer": "bob", "status": "APPLIED"}, {"applied_quality"}),
    ({"proposer": "carol"}, {"open_by_carol"}),
    ({"proposer": "nobody"}, set()),
])
def test_queue_filters(query, expected, queue_rows, bob, browser):
    response = browser(bob).get("/calibration/", **query)
    assert response.status_code == 200
    shown = {str(p.proposal_id) for p in response.context["page"]}
    assert shown == {str(queue_rows[name].proposal_id) for name in expected}
    page = response.content.decode()
    for name in expected:
        assert f'href="{review_url(queue_rows[name])}"' in page
    if not expected:
        assert "No proposals match." in page


@pytest.mark.parametrize(("query", "expected"), [
    ({}, {"open_novelty", "approved_floor", "rejected_tau", "applied_quality", "open_by_carol"}),
    ({"status": "proposed"}, {"open_novelty", "open_by_carol"}),
    ({"status": "APPLIED"}, {"applied_quality"}),
    ({"parameter": "complexity_floor"}, {"approved_floor"}),
    ({"proposer": "alice"}, {"open_novelty", "rejected_tau"}),
    ({"proposer": "bob", "status": "approved"}, {"approved_floor"}),
])
def test_api_list_filters(query, expected, queue_rows, carol, browser):
    response = browser(carol).get("/api/calibration/proposals", **query)
    assert response.status_code == 200
    body = response.json()
    assert {p["proposal_id"] for p in body["proposals"]} == {str(queue_rows[n].proposal_id) for n in expected}
    assert body["count"] == len(expected)


@pytest.mark.parametrize("query", [{"status": "bogus"}, {"limit": "0"}, {"limit": "501"}, {"limit": "ten"}])
def test_api_list_refuses_bad_filters(query, queue_rows, carol, browser):
    response = browser(carol).get("/api/calibration/proposals", **query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_api_list_limit(queue_rows, carol, browser):
    body = browser(carol).get("/api/calibration/proposals", limit="2").json()
    assert body["count"] == 2 and len(body["proposals"]) == 2


# --- the review page ------------------------------------------------------------------------

def make_drift_decisions(customer) -> None:
    """Decisions whose drift was computed on three different days."""
    ctx = CallContext(customer=customer, api_key=None)
    baseline = [i / 10 for i in range(60)]
    for days_ago, shift in ((3, 0.0), (2, 1.5), (1, 3.0)):
        body = {"proposal_summary": f"drift {days_ago}", "drift_baseline_data": baseline,
                "drift_current_data": [v + shift for v in baseline]}
        evaluate_proposal(ctx, parse_proposal(body), now=timezone.now() - timedelta(days=days_ago))


def test_review_page_shows_the_proposal_the_chart_and_the_preview(alice, bob, make_tenant, browser):
    customer, _ = make_tenant("Acme")
    make_drift_decisions(customer)
    proposal = propose(alice, "tau_warning", 0.35)
    history = services.drift_history()
    assert len(history) == 3

    response = browser(bob).get(review_url(proposal))
    page = response.content.decode()
    assert "tau_warning: 0.3 → 0.35" in page
    assert "<dt>Value when proposed</dt><dd>0.3 (configuration v1)</dd>" in page
    assert "<strong>0.35</strong>" in page
    assert JUSTIFICATION in page
    assert "<dt>Proposed by</dt><dd>alice," in page
    assert '<svg' in page and 'data-threshold="tau_warning"' in page and 'data-threshold="tau_critical"' in page
    assert 'data-threshold="proposed-tau_warning"' in page  # the proposed threshold, dashed
    assert page.count("<circle") == 3
    preview = response.context["preview"]
    assert preview.decisions == 3
    assert f'<strong id="preview-decisions">{preview.decisions}</strong>' in page
    assert f'<strong id="preview-changed">{preview.changed}</strong>' in page
    assert 'data-action="approve"' in page and 'data-action="reject"' in page
    assert 'name="confirm"' in page
    assert 'data-action="apply"' not in page
    assert '<span class="badge valid">valid</span>' in page  # the audit chain


def test_no_inline_handler_calls_a_bare_confirm():
    """Inside an inline handler a form's fields are in scope, so a field named "confirm" (the
    approve and reject forms have one) shadows window.confirm and the form submits without
    asking; handlers call window.confirm (tests/browser checks the dialog really appears)."""
    root = Path(__file__).resolve().parents[2]
    bare = re.compile(r"""\bon\w+\s*=\s*(["'])(?:(?!\1).)*?(?<![\w.])confirm\s*\(""", re.S)
    templates = [path for path in root.rglob("*.html") if ".venv" not in path.parts]
    assert any(path.name == "review.html" for path in templates)
    offenders = [str(path.relative_to(root)) for path in templates if bare.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_review_page_with_no_decisions(alice, bob, browser):
    proposal = propose(alice)
    page = page_of(browser, bob, proposal)
    assert '<strong id="preview-decisions">0</strong>' in page
    assert "No decision in the window would change status." in page
    assert "No drift measured yet" in page and 'data-threshold="tau_warning"' in page


def test_the_proposer_sees_no_approve_button_and_the_four_eyes_explanation(alice, browser):
    proposal = propose(alice)
    page = page_of(browser, alice, proposal)
    assert 'data-action="approve"' not in page
    assert FOUR_EYES_PAGE in page


def test_a_user_without_the_role_sees_no_buttons_and_why(alice, carol, browser):
    proposal = propose(alice)
    page = page_of(browser, carol, proposal)
    assert 'data-action="approve"' not in page and 'data-action="reject"' not in page
    assert "approving needs the Risk Lead role" in page


@pytest.mark.parametrize(("form", "problem"), [
    ({"confirm": "on"}, "comment"),
    ({"comment": "Looks right"}, "confirm"),
    ({"comment": "   ", "confirm": "on"}, "comment"),
    ({}, "comment"),
])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_approve_and_reject_need_the_comment_and_the_confirmation(action, form, problem, alice, bob, browser):
    proposal = propose(alice)
    response = browser(bob).post_form(step_url(proposal, action), form)
    assert response.status_code == 302 and response["Location"] == review_url(proposal)
    [message] = messages_of(response)
    assert message.startswith("Refused:") and f"{problem}:" in message
    assert state_of(proposal) == "proposed"
    assert events_of(proposal) == ["start"]


def test_approve_through_the_page(alice, bob, browser):
    proposal = propose(alice)
    response = browser(bob).post_form(step_url(proposal, "approve"), {"comment": "Evidence is clear", "confirm": "on"})
    assert response.status_code == 302
    assert messages_of(response) == ["Approved: the proposal is now APPROVED."]
    assert state_of(proposal) == "approved"
    page = page_of(browser, alice, proposal)
    assert "<dt>Approved by</dt><dd>bob at" in page
    assert 'data-action="apply"' in page and "Creates configuration v2" in page
    assert "“Evidence is clear”" in page


def test_the_proposer_approving_through_the_page_is_refused(alice, browser):
    proposal = propose(alice)
    response = browser(alice).post_form(step_url(proposal, "approve"), {"comment": "Mine", "confirm": "on"})
    assert messages_of(response) == ["Refused: Four eyes: the approver must be someone other than the proposer"]
    assert state_of(proposal) == "proposed"


def test_apply_through_the_page_creates_the_version(alice, bob, browser):
    proposal = approved(alice, bob)
    response = browser(alice).post_form(step_url(proposal, "apply"), {})
    assert response.status_code == 302 and response["Location"] == review_url(proposal)
    assert messages_of(response) == ["Applied: configuration v2 is now active (novelty_threshold = 0.9)."]
    version = ConfigurationVersion.objects.get(version=2)
    assert version.parameters["novelty_threshold"] == 0.9
    page = page_of(browser, alice, proposal)
    assert "This proposal is APPLIED; nothing is left to decide." in page
    assert 'id="impact-preview"' not in page
    assert "configuration v2</a>" in page

    again = browser(alice).post_form(step_url(proposal, "apply"), {})
    assert messages_of(again) == ["Refused: Apply needs an APPROVED proposal; this one is APPLIED"]
    assert ConfigurationVersion.objects.count() == 2
    assert_chains_valid()


def test_apply_before_approval_through_the_page_is_refused(alice, browser):
    proposal = propose(alice)
    response = browser(alice).post_form(step_url(proposal, "apply"), {})
    assert messages_of(response) == ["Refused: Apply needs an APPROVED proposal; this one is PROPOSED"]
    assert ConfigurationVersion.objects.count() == 1


def test_unknown_step_and_get_are_refused(alice, bob, browser):
    proposal = propose(alice)
    assert browser(bob).post_form(step_url(proposal, "destroy"), {"comment": "x", "confirm": "on"}).status_code == 404
    assert browser(bob).get(step_url(proposal, "approve")).status_code == 405
    assert browser(bob).get("/calibration/0d9f3a8e-0000-4000-8000-000000000000/").status_code == 404
    assert state_of(proposal) == "proposed"


def test_propose_page_renders_the_current_values(alice, browser):
    response = browser(alice).get("/calibration/new/", parameter="tau_warning")
    assert response.status_code == 200
    assert response.context["current_values"]["tau_warning"] == 0.3
    assert len(response.context["current_values"]) == 16


# --- the admin ----------------------------------------------------------------------------------

ADMIN = "/admin/calibration/calibrationproposal/"


@pytest.fixture
def administrator(seeded):
    return make_user("root", is_staff=True, is_superuser=True)


def admin_step(browser, user, proposal, action, comment="Reviewed in the admin"):
    return browser(user).post_form(f"{ADMIN}{proposal.pk}/step/{action}/", {"comment": comment})


def test_the_administrator_sees_proposals_but_cannot_approve(administrator, alice, browser):
    proposal = propose(alice)
    listing = browser(administrator).get(ADMIN)
    assert listing.status_code == 200
    assert "novelty_threshold" in listing.content.decode()
    change = browser(administrator).get(f"{ADMIN}{proposal.pk}/change/")
    assert change.status_code == 200
    assert change.context["calibration_steps"] == []

    response = admin_step(browser, administrator, proposal, "approve")
    assert response.status_code == 302
    assert messages_of(response) == ["Refused: Approve needs the role risk_lead"]
    assert state_of(proposal) == "proposed"


def test_a_staff_risk_lead_approves_and_applies_through_the_admin(alice, browser):
    lead = make_user("rhea", risk_lead=True, is_staff=True)
    proposal = propose(alice)
    change = browser(lead).get(f"{ADMIN}{proposal.pk}/change/")
    assert change.status_code == 200
    assert change.context["calibration_steps"] == ["approve", "reject"]
    assert 'data-step="approve"' in change.content.decode()

    assert messages_of(admin_step(browser, lead, proposal, "approve", comment="")) == [
        "Refused: Approve needs a comment"]
    assert state_of(proposal) == "proposed"
    assert messages_of(admin_step(browser, lead, proposal, "approve")) == ["Approved."]
    assert state_of(proposal) == "approved"
    assert messages_of(admin_step(browser, lead, proposal, "apply")) == ["Applied: configuration v2 is active."]
    assert state_of(proposal) == "applied"
    assert ConfigurationVersion.objects.get(version=2).author == "rhea"
    assert_chains_valid()


def test_the_proposer_cannot_approve_through_the_admin(browser):
    lead = make_user("rhea", risk_lead=True, is_staff=True)
    proposal = propose(lead)
    assert messages_of(admin_step(browser, lead, proposal, "approve")) == [
        "Refused: Four eyes: the approver must be someone other than the proposer"]
    assert state_of(proposal) == "proposed"


def test_admin_versions_are_read_only_and_add_redirects_to_the_form(administrator, browser):
    client = browser(administrator)
    assert client.get("/admin/calibration/configurationversion/").status_code == 200
    assert client.get("/admin/calibration/configurationversion/add/").status_code == 403
    response = client.get(f"{ADMIN}add/")
    assert response.status_code == 302 and response["Location"] == "/calibration/new/"


def test_admin_step_needs_post_and_a_known_step(administrator, alice, browser):
    proposal = propose(alice)
    response = browser(administrator).get(f"{ADMIN}{proposal.pk}/step/approve/")
    assert messages_of(response) == ["Refused: unknown proposal or step."]
    response = browser(administrator).post_form(f"{ADMIN}{proposal.pk}/step/destroy/", {})
    assert messages_of(response) == ["Refused: unknown proposal or step."]
    assert state_of(proposal) == "proposed"
