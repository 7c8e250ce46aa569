"""The calibration journey in a real browser: a risk lead proposes a threshold change
(validated live); a second risk lead opens the queue, reviews the drift chart and the
impact preview, approves with a comment and confirmation, and applies; the next /evaluate
is decided under the new configuration version."""

from __future__ import annotations

import json
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calibration.models import CalibrationProposal, ConfigurationVersion
from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.models import Tier
from workflows.roles import RISK_LEAD_GROUP

PASSWORD = "Correct-Horse-Battery-9"


def make_risk_lead(username: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=RISK_LEAD_GROUP)[0])
    return user


def evaluate(live_server, key: str, body: dict) -> dict:
    request = urllib.request.Request(f"{live_server.url}/evaluate", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_risk_leads_propose_review_approve_and_apply_in_the_browser(
        browser_page, live_server, login, logout, screenshot):
    page = browser_page
    make_risk_lead("alice")
    make_risk_lead("bob")
    customer, _, key = governance_services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    context = governance_services.CallContext(customer=customer, api_key=None)
    for novelty in (0.5, 0.82, 0.85, 0.9):  # 0.82 and 0.85 halt at threshold 0.8, proceed at 0.9
        governance_services.evaluate_proposal(context, parse_proposal({"proposal_summary": "x",
                                                                       "novelty_score": novelty}))
    novel = {"proposal_summary": "A novel feature", "novelty_score": 0.85, "risk_baseline": 0.02,
             "risk_proposed": 0.05, "profit_baseline": 0.98, "profit_proposed": 0.98, "complexity_score": 0.8,
             "quality_score": 0.85}
    before = evaluate(live_server, key, novel)
    assert before["status"] == "halt" and before["config_version"] == 1

    # --- alice proposes, with live validation ----------------------------------------------
    login(page, live_server, "alice", PASSWORD)
    page.goto(f"{live_server.url}/calibration/new/")
    page.select_option("#id_parameter", "novelty_threshold")
    expect(page.locator("#current-value")).to_have_text("0.8")
    page.fill("#id_new_value", "1.5")
    expect(page.locator("#validation")).to_contain_text("must be in (0, 1)")
    screenshot(page, "calibration-01-alice-live-validation-refuses")
    page.fill("#id_new_value", "0.9")
    expect(page.locator("#validation")).to_contain_text("0.8 → 0.9 is valid")
    page.fill("#id_justification", "Too many novel but sound proposals are halted")
    screenshot(page, "calibration-02-alice-proposal-filled")
    with page.expect_navigation():
        page.click("#propose-form button[type=submit]")
    expect(page.locator(".messages li.success")).to_contain_text("Another risk lead must approve it")
    expect(page.locator("#proposal-status")).to_have_text("PROPOSED")
    expect(page.locator("form[data-action=approve]")).to_have_count(0)  # four eyes
    expect(page.locator("#cannot-approve")).to_contain_text("four eyes")
    screenshot(page, "calibration-03-alice-cannot-approve-own")
    logout(page)

    # --- bob reviews and approves ----------------------------------------------------------
    login(page, live_server, "bob", PASSWORD)
    page.goto(f"{live_server.url}/calibration/")
    row = page.locator("#proposal-queue tbody tr", has_text="novelty_threshold")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("alice")
    screenshot(page, "calibration-04-bob-queue")
    row.locator("a", has_text="Review").click()
    expect(page.locator("#drift-chart svg [data-threshold=tau_warning]")).to_have_count(1)
    expect(page.locator("#preview-decisions")).to_have_text("5")
    expect(page.locator("#preview-changed")).to_have_text("3")  # 0.82, 0.85 and the halted request
    expect(page.locator("#impact-preview")).to_contain_text("halt → proceed")
    screenshot(page, "calibration-05-bob-review-preview-and-chart")
    page.fill("#approve-comment", "Preview shows only halts turning into proceeds; agreed")
    page.check("#approve-confirm")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("form[data-action=approve] button[type=submit]")
    expect(page.locator(".messages li.success")).to_contain_text("APPROVED")
    expect(page.locator("#proposal-status")).to_have_text("APPROVED")
    screenshot(page, "calibration-06-bob-approved")

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("form[data-action=apply] button[type=submit]")
    expect(page.locator(".messages li.success")).to_contain_text("configuration v2 is now active")
    expect(page.locator("#proposal-status")).to_have_text("APPLIED")
    screenshot(page, "calibration-07-bob-applied")
    page.goto(f"{live_server.url}/calibration/versions/?a=1&b=2")
    expect(page.locator("#version-diff")).to_contain_text("novelty_threshold")
    screenshot(page, "calibration-08-versions-diff")

    # --- the next decision uses the new version ---------------------------------------------
    assert ConfigurationVersion.objects.order_by("-version").first().parameters["novelty_threshold"] == 0.9
    assert CalibrationProposal.objects.get().applied_version.version == 2
    after = evaluate(live_server, key, novel)
    assert after["config_version"] == 2
    assert after["gates"]["novelty"]["threshold"] == 0.9
    assert after["status"] == "proceed"


# --- the confirmation dialog ------------------------------------------------------------------
# The approve and reject forms hold a checkbox named "confirm"; inside an inline onsubmit
# handler a form's fields are in scope, so a bare confirm(...) would call the checkbox (a
# TypeError) and the form would submit without asking. The handlers call window.confirm.

@pytest.mark.parametrize(("action", "actor", "question", "done"), [
    ("approve", "bob", "Approve novelty_threshold = 0.9?", "approved"),
    ("reject", "bob", "Reject this proposal?", "rejected"),
    ("withdraw", "alice", "Withdraw this proposal? It can then no longer be approved or applied.", "withdrawn"),
])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_decision_form_asks_for_confirmation_and_dismissing_keeps_the_proposal(
        action, actor, question, done, browser_page, live_server, login, screenshot):
    from calibration import services as calibration_services
    from workflows.services import actor_for

    page = browser_page
    alice, _ = make_risk_lead("alice"), make_risk_lead("bob")
    proposal = calibration_services.propose("novelty_threshold", 0.9, "Too many sound proposals are halted",
                                            actor=actor_for(alice))

    def state() -> str:
        return CalibrationProposal.objects.select_related("workflow").get(pk=proposal.pk).workflow.current_state

    login(page, live_server, actor, PASSWORD)
    review_url = f"{live_server.url}/calibration/{proposal.proposal_id}/"
    page.goto(review_url)
    form = page.locator(f"form[data-action={action}]")
    expect(form).to_have_count(1)
    form.locator("textarea[name=comment]").fill("Checked in the browser")
    if action != "withdraw":
        form.locator("input[type=checkbox][name=confirm]").check()

    # dismissed: the dialog was shown, nothing was submitted
    asked: list[tuple[str, str]] = []

    def dismiss(dialog):
        asked.append((dialog.type, dialog.message))
        dialog.dismiss()

    page.once("dialog", dismiss)
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.readyState === 'complete'")
    assert asked == [("confirm", question)]
    assert page.url == review_url
    expect(form.locator("textarea[name=comment]")).to_have_value("Checked in the browser")  # no reload
    expect(page.locator("#proposal-status")).to_have_text("PROPOSED")
    assert state() == "proposed"
    screenshot(page, f"calibration-confirm-{action}-dismissed")

    # accepted: submitted
    accepted: list[str] = []

    def accept(dialog):
        accepted.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert accepted == [question]
    expect(page.locator("#proposal-status")).to_have_text(done.upper())
    expect(page.locator(".messages li.success")).to_contain_text(f"the proposal is now {done.upper()}")
    assert state() == done
    screenshot(page, f"calibration-confirm-{action}-accepted")
