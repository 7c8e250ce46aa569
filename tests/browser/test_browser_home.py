"""The home page of each role in real Chromium, on a server with real waiting items: a
paused decision and a halt made by the tenant's integration through the API, an override
the integration requests with its key, and a calibration proposal by the first risk lead.
Each reviewer signs in, lands on the home page, sees what waits for them (and not what
does not), opens a row, acts on the page it opens, and sees the row leave the list."""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calibration import services as calibration
from governance import services
from governance.models import Tier
from workflows.operations import verify_all_chains
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP
from workflows.services import actor_for

PASSWORD = "Correct-Horse-Battery-9"
PAUSED = "Move the warehouse sync to hourly"
HALTED = "Novel payments router for card-not-present traffic"


def make_user(username: str, *groups: str, superuser: bool = False):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])  # made by a migration; flushes empty it
    return user


def evaluate(live_server, key: str, body: dict) -> dict:
    response = httpx.post(f"{live_server.url}/evaluate", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def row(page, workflow_id: str):
    return page.locator(f"#waiting tr[data-workflow-id='{workflow_id}']")


def open_row(page, workflow_id: str, expected_path: str) -> None:
    with page.expect_navigation():
        row(page, workflow_id).locator("a.open-row").click()
    assert page.url.endswith(expected_path), page.url


def approve_event(page, comment: str) -> None:
    """Comment on and submit the page's `approve` event form (decision or workflow page)."""
    page.fill("#approve-comment", comment)
    with page.expect_navigation():
        page.click("form[data-event=approve] button[type=submit]")


def go_home(page, live_server) -> None:
    with page.expect_navigation():
        page.click("#nav-home")
    assert page.url == f"{live_server.url}/"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_role_sees_and_clears_what_waits_for_them(browser_page, live_server, login, logout, screenshot):
    page = browser_page
    rita = make_user("risklead", RISK_LEAD_GROUP)
    make_user("risklead2", RISK_LEAD_GROUP)
    make_user("securitylead", SECURITY_LEAD_GROUP)
    make_user("admin", superuser=True)
    _, _, key = services.create_customer("Acme Payments", tier=Tier.objects.get_or_create(
        name="team", defaults={"display_name": "Team", "monthly_evaluations": 10_000, "rate_per_minute": 600,
                               "max_keys": 5})[0])
    paused = evaluate(live_server, key, {"proposal_summary": PAUSED, "estimated_impact": "high"})
    halted = evaluate(live_server, key, {"proposal_summary": HALTED, "novelty_score": 0.9})
    assert (paused["status"], halted["status"]) == ("pause", "halt")
    response = httpx.post(f"{live_server.url}/api/decisions/{halted['decision_id']}/override",
                          json={"justification": "Revenue-critical launch; rollback plan in PR 42"},
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    override_id = response.json()["workflow_id"]
    proposal = calibration.propose("novelty_threshold", 0.9, "Too many false halts on novelty this month",
                                   actor=actor_for(rita))
    calibration_id = str(proposal.workflow.workflow_id)
    paused_review = httpx.get(f"{live_server.url}/customer/decisions/{paused['decision_id']}",
                              headers={"Authorization": f"Bearer {key}"}).json()["decision"]["workflow_id"]

    # --- the first risk lead: the paused review and the override, never their own proposal --
    login(page, live_server, "risklead", PASSWORD)
    assert page.url == f"{live_server.url}/"
    expect(page.locator("#nav-waiting-count")).to_have_text("2")
    expect(page.locator("#waiting tbody tr")).to_have_count(2)
    expect(row(page, paused_review)).to_contain_text(PAUSED)
    expect(row(page, paused_review)).to_contain_text("Acme Payments")
    expect(row(page, paused_review)).to_contain_text("engine: pause")
    expect(row(page, override_id)).to_contain_text("needs a risk lead and a security lead signature")
    expect(row(page, override_id)).to_contain_text("novelty 0.8808 (threshold 0.8) failed")
    expect(row(page, calibration_id)).to_have_count(0)
    expect(page.locator("#recent")).to_contain_text(HALTED)
    screenshot(page, "home-01-risklead")
    open_row(page, override_id, f"/workflows/{override_id}/")
    approve_event(page, "Risk reviewed: acceptable with the rollback plan")
    expect(page.locator(".messages li.success")).to_contain_text("Approve: done.")
    go_home(page, live_server)
    expect(row(page, override_id)).to_have_count(0)
    expect(page.locator("#nav-waiting-count")).to_have_text("1")
    screenshot(page, "home-02-risklead-after-signing")
    logout(page)

    # --- the second risk lead: the calibration proposal and the paused review ----------------
    login(page, live_server, "risklead2", PASSWORD)
    expect(page.locator("#waiting tbody tr")).to_have_count(2)
    expect(row(page, calibration_id)).to_contain_text("novelty_threshold 0.8 → 0.9")
    expect(row(page, calibration_id)).to_contain_text("proposed by risklead")
    expect(row(page, override_id)).to_have_count(0)  # the risk lead key is given
    screenshot(page, "home-03-risklead2")
    open_row(page, calibration_id, f"/calibration/{proposal.proposal_id}/")
    page.fill("#approve-comment", "Checked against last month's halts")
    page.check("#approve-confirm")
    page.once("dialog", lambda dialog: dialog.accept())  # the page asks "Approve novelty_threshold = 0.9?"
    with page.expect_navigation():
        page.click("form[data-action=approve] button[type=submit]")
    expect(page.locator(".messages li.success")).to_contain_text("Approved")
    go_home(page, live_server)
    expect(row(page, calibration_id)).to_have_count(0)
    open_row(page, paused_review, f"/decisions/{paused['decision_id']}/")
    approve_event(page, "Queue capacity checked")
    expect(page.locator(".messages li.success")).to_contain_text("effective status is now proceed")
    go_home(page, live_server)
    expect(page.locator("#nothing-waiting")).to_be_visible()
    expect(page.locator("#nav-waiting-count")).to_have_count(0)
    screenshot(page, "home-04-risklead2-all-done")
    logout(page)

    # --- the security lead: the override, now needing their signature -----------------------
    login(page, live_server, "securitylead", PASSWORD)
    expect(page.locator("#waiting tbody tr")).to_have_count(1)
    expect(row(page, override_id)).to_contain_text("needs a security lead signature")
    expect(row(page, override_id)).to_contain_text("signed: risk lead (risklead)")
    screenshot(page, "home-05-securitylead")
    open_row(page, override_id, f"/workflows/{override_id}/")
    approve_event(page, "Security reviewed: no new exposure")
    expect(page.locator("#current-state")).to_have_text("Approved")
    go_home(page, live_server)
    expect(page.locator("#nothing-waiting")).to_be_visible()
    logout(page)

    # --- the administrator: no role, so nothing waits; the halts and the operations ----------
    run = verify_all_chains()
    login(page, live_server, "admin", PASSWORD)
    expect(page.locator("#nothing-waiting")).to_be_visible()
    recent = page.locator(f"#recent tr[data-decision-id='{halted['decision_id']}']")
    expect(recent).to_contain_text("proceed")  # the override was granted
    expect(page.locator("#drift")).to_contain_text("Acme Payments")
    expect(page.locator("#last-verification")).to_contain_text(f"all valid of {run.checked} checked")
    screenshot(page, "home-06-admin")
    with page.expect_navigation():
        page.click("#last-verification a")
    assert page.url == f"{live_server.url}/admin/workflows/chainverificationrun/{run.pk}/change/"
    page.goto(f"{live_server.url}/admin/")
    with page.expect_navigation():
        page.click("text=View site")
    assert page.url == f"{live_server.url}/"
