"""The two-key override journey in a real browser: a risk lead and then a security lead
approve an override from their inbox; the override and its proposal end Approved with
valid audit chains, and nobody is offered a button they may not press."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from governance.engine.inputs import parse_proposal
from workflows import services
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP
from governance import services as governance_services

PASSWORD = "Correct-Horse-Battery-9"
APPROVE_FORM = "form[data-event=approve]"
APPROVE_BUTTON = f"{APPROVE_FORM} button[type=submit]"


def make_user(username: str, group: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=group)[0])  # made by a migration; flushes empty it
    return user


def waiting_row(page, workflow_id):
    """The inbox's "Waiting for you" row linking to `workflow_id`."""
    table = page.locator("h1:has-text('Waiting for you') + table")
    return table.locator(f"tr:has(a[href='/workflows/{workflow_id}/'])")


def approve_from_inbox(page, live_server, override_id, comment, screenshot, first_step, who):
    """Open the override from the inbox and approve it; screenshots `first_step` and the next."""
    page.goto(f"{live_server.url}/workflows/")
    expect(page.locator("h1").first).to_have_text("Waiting for you")
    row = waiting_row(page, override_id)
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("override")  # after the workflow link and what it is about
    expect(row.locator("td").nth(4)).to_contain_text("Approve")
    screenshot(page, f"override-{first_step:02d}-{who}-inbox")

    row.locator(f"a.row-link[href='/workflows/{override_id}/']").click()  # the summary, linked to where one signs
    page.wait_for_url(f"{live_server.url}/workflows/{override_id}/")
    expect(page.locator(APPROVE_BUTTON)).to_have_count(1)
    page.fill("#approve-comment", comment)
    screenshot(page, f"override-{first_step + 1:02d}-{who}-approve-comment-filled")
    with page.expect_navigation():
        page.click(APPROVE_BUTTON)
    page.wait_for_url(f"{live_server.url}/workflows/{override_id}/")
    expect(page.locator(".messages li.success")).to_contain_text("Approve: done.")
    expect(page.locator(".messages li.error")).to_have_count(0)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_custodians_approve_an_override_in_the_browser(browser_page, live_server, login, logout, screenshot):
    page = browser_page
    risk = make_user("risklead", RISK_LEAD_GROUP)
    make_user("securitylead", SECURITY_LEAD_GROUP)
    risk_actor = services.actor_for(risk)
    proposal = governance_services.submit_proposal(
        parse_proposal({"proposal_summary": "Ship the novel ranking model", "novelty_score": 0.9}), actor=risk_actor)
    proposal.refresh_from_db()
    assert proposal.current_state == "rejected", proposal.state_data.get("decision")
    override = services.request_override(proposal.workflow_id, actor=risk_actor,
                                          justification="Revenue-critical; rollback plan reviewed")
    override_id, proposal_id = override.workflow_id, proposal.workflow_id

    # --- the risk lead: first key -----------------------------------------------------------
    login(page, live_server, "risklead", PASSWORD)
    assert page.url == f"{live_server.url}/workflows/"
    approve_from_inbox(page, live_server, override_id, "Risk reviewed: acceptable with the rollback plan",
                       screenshot, 1, "risklead")
    expect(page.locator("#current-state")).to_have_text("Partially approved")
    expect(page.locator("#chain-status")).to_have_text("valid")
    expect(page.locator("dl.kv").first).to_contain_text("risklead as risk_lead")  # the workflow's own card
    # Having approved, the risk lead may not approve again (the second key is another role).
    expect(page.locator(APPROVE_FORM)).to_have_count(0)
    screenshot(page, "override-03-risklead-partially-approved")
    page.reload()
    expect(page.locator(APPROVE_FORM)).to_have_count(0)
    expect(page.locator("#current-state")).to_have_text("Partially approved")
    page.goto(f"{live_server.url}/workflows/")
    # signed: no longer waiting for the risk lead (who could still reject it), but for a security lead
    expect(waiting_row(page, override_id)).to_have_count(0)
    listed = page.locator(f"h2:has-text('All workflows') ~ table tr:has(a[href='/workflows/{override_id}/'])")
    expect(listed).to_contain_text("needs a security lead signature")
    screenshot(page, "override-04-risklead-inbox-after-approving")

    logout(page)
    assert page.url.startswith(f"{live_server.url}/accounts/login/")
    expect(page.locator("header")).not_to_contain_text("risklead")
    screenshot(page, "override-05-logged-out")

    # --- the security lead: second key ------------------------------------------------------
    login(page, live_server, "securitylead", PASSWORD)
    approve_from_inbox(page, live_server, override_id, "Security reviewed: no new exposure",
                       screenshot, 6, "securitylead")
    expect(page.locator("#current-state")).to_have_text("Approved")
    expect(page.locator("#chain-status")).to_have_text("valid")
    expect(page.locator(APPROVE_FORM)).to_have_count(0)
    expect(page.locator("p.card.muted")).to_have_text("There is nothing you can do on this workflow now.")
    screenshot(page, "override-08-securitylead-override-approved")

    # The proposal, reached through the override page's link, was approved by the override.
    with page.expect_navigation():
        page.click(f"dl.kv a[href='/workflows/{proposal_id}/']")
    expect(page.locator("#current-state")).to_have_text("Approved")
    expect(page.locator("#chain-status")).to_have_text("valid")
    expect(page.locator(".timeline")).to_contain_text("override_granted")
    screenshot(page, "override-09-proposal-approved")

    # And the database agrees with the pages.
    assert WorkflowInstance.objects.get(workflow_id=override_id).current_state == "approved"
    assert WorkflowInstance.objects.get(workflow_id=proposal_id).current_state == "approved"
    engine = DurableWorkflowEngine()
    for workflow_id in (override_id, proposal_id):
        assert engine.verify_audit_chain(workflow_id)[0], engine.verify_audit_chain(workflow_id)
