"""The decision pages in a real browser, on a 1280 px and a 390 px wide screen: a risk lead
opens Decisions from the header, searches the (encrypted) summaries, opens a halted
decision and requests the two-key override from its page, approves a paused one, and
neither page is wider than the screen. Screenshots: test-artifacts/screenshots/decisions-*."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from governance import services
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier
from workflows.roles import RISK_LEAD_GROUP

PASSWORD = "Correct-Horse-Battery-9"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def decide(customer, inputs: dict) -> Decision:
    body = services.evaluate_proposal(services.CallContext(customer=customer, api_key=None), parse_proposal(inputs))
    return Decision.objects.get(decision_id=body["decision_id"])


def assert_fits(page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width} px wide on a {width} px screen"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_risk_lead_works_on_decisions(browser_page, live_server, login, screenshot):
    page = browser_page
    lead = get_user_model().objects.create_user("risklead", password=PASSWORD, is_staff=True)
    lead.groups.add(Group.objects.get_or_create(name=RISK_LEAD_GROUP)[0])
    team = Tier.objects.get(name="team")
    acme, _, _ = services.create_customer("Acme Payments", tier=team)
    globex, _, _ = services.create_customer("Globex Logistics", tier=team)
    decide(acme, {"proposal_summary": "Cache the currency rate table for five minutes", "agent_id": "pricing-bot"})
    decide(globex, {"proposal_summary": "Tangled rewrite of the settlement batch job", "novelty_score": 0.9,
                    "complexity_score": 0.1})
    decide(acme, {"proposal_summary": "Shadow run: novel fraud score", "novelty_score": 0.9, "shadow_mode": True})
    paused = decide(globex, {"proposal_summary": "Move the warehouse sync to the new queue",
                             "estimated_impact": "high", "agent_id": "ops-agent"})
    decide(globex, {"proposal_summary": "Novel routing model for all regions, replacing the rules engine that has "
                                        "served since 2019, with a staged roll-out per region and a kill switch",
                    "novelty_score": 0.9, "estimated_impact": "high"})
    halted = decide(acme, {"proposal_summary": "Novel payments router for card-not-present traffic",
                           "novelty_score": 0.9, "agent_id": "router-agent", "session_id": "sess-2026-03-02-17",
                           "risk_baseline": 0.12, "risk_proposed": 0.14, "metadata": {
                               "ticket": "PAY-1432", "owner": "payments-platform", "regions": ["eu", "us"]}})

    login(page, live_server, "risklead", PASSWORD)
    with page.expect_navigation():
        page.click("header a:has-text('Decisions')")
    expect(page.locator("h1")).to_have_text("Decisions")
    rows = page.locator("#decision-list tbody tr")
    expect(rows).to_have_count(6)
    screenshot(page, "decisions-01-list-1280")
    assert_fits(page, WIDE["width"])

    page.fill("#id_q", "NOVEL")
    with page.expect_navigation():
        page.click("#decision-filters button[type=submit]")
    expect(rows).to_have_count(3)
    expect(page.locator("#id_q")).to_have_value("NOVEL")
    screenshot(page, "decisions-02-search-1280")

    with page.expect_navigation():
        page.click(f"#decision-list a[href='/decisions/{halted.decision_id}/']")
    expect(page.locator("#summary")).to_have_text("Novel payments router for card-not-present traffic")
    expect(page.locator("#gates tr[data-gate=novelty]")).to_contain_text("failed")
    expect(page.locator("form[data-event]")).to_have_count(1)
    screenshot(page, "decisions-03-halt-1280")
    assert_fits(page, WIDE["width"])

    page.fill("#override-justification", "Launch depends on it; rollback plan in PR 42")
    with page.expect_navigation():
        page.click("form[data-event=request_override] button[type=submit]")
    expect(page.locator(".messages li.success")).to_contain_text(
        "Override requested: it now needs a risk lead and a security lead")
    expect(page.locator("#override")).to_contain_text("Launch depends on it; rollback plan in PR 42")
    expect(page.locator("form[data-event]")).to_have_count(0)
    screenshot(page, "decisions-04-override-requested-1280")

    # the override's workflow page shows and links back to the decision; so does the inbox
    with page.expect_navigation():
        page.click("#override-state a:has-text('override workflow')")
    expect(page.locator("#decision-summary")).to_have_text("Novel payments router for card-not-present traffic")
    expect(page.locator(f"#decision-link[href='/decisions/{halted.decision_id}/']")).to_have_count(1)
    screenshot(page, "decisions-07-override-workflow-1280")
    page.goto(f"{live_server.url}/workflows/")
    expect(page.locator(f"main a[href='/decisions/{paused.decision_id}/']").first).to_contain_text(
        "Move the warehouse sync")
    screenshot(page, "decisions-08-inbox-1280")

    page.goto(f"{live_server.url}/decisions/{paused.decision_id}/")
    page.fill("#approve-comment", "Queue capacity checked")
    with page.expect_navigation():
        page.click("form[data-event=approve] button[type=submit]")
    expect(page.locator(".messages li.success")).to_have_text(
        "Approved: the decision's effective status is now proceed.")
    expect(page.locator("#effective-status")).to_have_text("proceed")

    page.set_viewport_size(NARROW)
    page.goto(f"{live_server.url}/decisions/")
    expect(rows).to_have_count(6)
    screenshot(page, "decisions-05-list-390")
    assert_fits(page, NARROW["width"])
    page.goto(f"{live_server.url}/decisions/{halted.decision_id}/")
    screenshot(page, "decisions-06-halt-390")
    assert_fits(page, NARROW["width"])
