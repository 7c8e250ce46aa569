"""The whole governance loop, as its two kinds of users meet: the unmodified official client
evaluates a proposal and gets a halt; the integration asks for the override the decision
offers with its API key; a risk lead finds the decision in the browser and signs the first
key, a security lead the second; the client's next `get_decision` shows the approved
override and `effective_status: proceed` (keys the client itself ignores, so they are
read from the same answer as raw JSON)."""

from __future__ import annotations

import httpx
import pytest
from aegis import Aegis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from governance import services
from governance.models import Decision, Tier
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP

PASSWORD = "Correct-Horse-Battery-9"
SUMMARY = "Ship the novel ranking model to all regions"
APPROVE_BUTTON = "form[data-event=approve] button[type=submit]"


def make_user(username: str, group: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def raw_decision(live_server, key: str, decision_id: str) -> dict:
    response = httpx.get(f"{live_server.url}/customer/decisions/{decision_id}",
                         headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()["decision"]


def sign(page, live_server, decision_id, override_id, comment, screenshot, name):
    """From the decision list to the decision, on to its override, and approve there."""
    page.goto(f"{live_server.url}/decisions/")
    row = page.locator(f"tr:has(a[href='/decisions/{decision_id}/'])")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("halt")
    screenshot(page, f"loop-{name}-decision-list")
    with page.expect_navigation():
        row.locator(f"a[href='/decisions/{decision_id}/']").first.click()
    expect(page.locator("main")).to_contain_text(SUMMARY)
    expect(page.locator("main")).to_contain_text("novelty")
    screenshot(page, f"loop-{name}-decision-page")
    with page.expect_navigation():
        page.locator(f"main a[href='/workflows/{override_id}/']").first.click()
    page.fill("#approve-comment", comment)
    with page.expect_navigation():
        page.click(APPROVE_BUTTON)
    expect(page.locator(".messages li.success")).to_contain_text("Approve")
    expect(page.locator(".messages li.error")).to_have_count(0)
    screenshot(page, f"loop-{name}-override-signed")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_halt_is_overridden_end_to_end(browser_page, live_server, login, logout, screenshot, monkeypatch):
    monkeypatch.delenv("AEGIS_API_KEY", raising=False)
    monkeypatch.delenv("AEGIS_BASE_URL", raising=False)
    page = browser_page
    make_user("risklead", RISK_LEAD_GROUP)
    make_user("securitylead", SECURITY_LEAD_GROUP)
    _, _, key = services.create_customer("Acme Payments", tier=Tier.objects.get_or_create(
        name="team", defaults={"display_name": "Team", "monthly_evaluations": 10_000, "rate_per_minute": 600,
                               "max_keys": 5})[0])

    # --- the integration: evaluate, get a halt, ask for the override --------------------------
    client = Aegis(api_key=key, base_url=live_server.url, max_retries=0, timeout=10.0)
    try:
        decision = client.evaluate(proposal_summary=SUMMARY, novelty_score=0.9, estimated_impact="medium")
        assert decision.status == "halt" and decision.override_eligible is True
        assert decision.failing_gates == ["novelty"]
        response = httpx.post(f"{live_server.url}/api/decisions/{decision.decision_id}/override",
                              json={"justification": "Revenue-critical launch; rollback plan in PR 42"},
                              headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 201, response.text
        override_id = response.json()["workflow_id"]
        assert raw_decision(live_server, key, decision.decision_id)["override"]["status"] == "pending"

        # --- the risk lead: first key, found from the decision list ---------------------------
        login(page, live_server, "risklead", PASSWORD)
        sign(page, live_server, decision.decision_id, override_id, "Risk reviewed: acceptable with the rollback plan",
             screenshot, "1-risklead")
        expect(page.locator("#current-state")).to_have_text("Partially approved")
        seen = raw_decision(live_server, key, decision.decision_id)
        assert (seen["override"]["status"], seen["effective_status"]) == ("partial", "halt")
        logout(page)

        # --- the security lead: second key ----------------------------------------------------
        login(page, live_server, "securitylead", PASSWORD)
        sign(page, live_server, decision.decision_id, override_id, "Security reviewed: no new exposure",
             screenshot, "2-securitylead")
        expect(page.locator("#current-state")).to_have_text("Approved")
        page.goto(f"{live_server.url}/decisions/{decision.decision_id}/")
        expect(page.locator("main")).to_contain_text("proceed")
        screenshot(page, "loop-3-decision-after-override")

        # --- what the caller sees -----------------------------------------------------------
        again = client.get_decision(decision.decision_id)  # the client parses the answer
        assert again.decision_id == decision.decision_id and again.status == "halt"
        seen = raw_decision(live_server, key, decision.decision_id)
        assert seen["status"] == "halt" and seen["effective_status"] == "proceed"
        assert seen["review_state"] == "approved" and seen["override"]["status"] == "approved"
        assert sorted(a["role"] for a in seen["override"]["approvals"]) == ["risk_lead", "security_lead"]
    finally:
        client.close()

    stored = Decision.objects.get(decision_id=decision.decision_id)
    engine = DurableWorkflowEngine()
    for workflow_id in (stored.review_workflow_id, override_id):
        assert engine.verify_audit_chain(workflow_id)[0], engine.verify_audit_chain(workflow_id)
