"""A proposer withdraws a calibration proposal (its own event, with a reason); only a risk
lead other than the proposer approves or rejects it (docs/decisions.md, Calibration). The
same rules on the service, the REST API, the review page and the admin; the past-tense
message each step leaves on the pages and in the admin."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from cal_support import (JUSTIFICATION, approved, assert_chains_valid, events_of, latest_version, make_user,
                         messages_of, propose, state_of)

from calibration import services
from calibration.calibrator import Calibrator
from calibration.services import CalibrationError
from governance.models import TelemetryEvent
from workflows.persistence.models import WorkflowStatus, WorkflowTransition
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

FOUR_EYES_REJECT = "Four eyes: the proposer cannot reject their own proposal; withdraw it instead"
ONLY_THE_PROPOSER = "Only the proposer may withdraw a calibration proposal; a risk lead rejects it instead"


def api_step(browser, user, proposal, step, body=None):
    return browser(user).post_json(f"/api/calibration/proposals/{proposal.proposal_id}/{step}", body)


def page_step(browser, user, proposal, step, form):
    return browser(user).post_form(f"/calibration/{proposal.proposal_id}/{step}/", form)


def review(browser, user, proposal):
    response = browser(user).get(f"/calibration/{proposal.proposal_id}/")
    assert response.status_code == 200
    return response


def open_proposal(state: str, proposer, approver):
    return propose(proposer) if state == "proposed" else approved(proposer, approver)


# --- the proposer withdraws ---------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["service", "api", "page", "calibrator"])
@pytest.mark.parametrize("state", ["proposed", "approved"])
def test_the_proposer_withdraws_an_open_proposal(state, channel, alice, bob, browser):
    proposal = open_proposal(state, alice, bob)
    reason = "The drift was a data-pipeline fault, not a real shift"
    if channel == "service":
        services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment=reason)
    elif channel == "api":
        response = api_step(browser, alice, proposal, "withdraw", {"comment": reason})
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "WITHDRAWN"
    elif channel == "page":
        response = page_step(browser, alice, proposal, "withdraw", {"comment": reason})
        assert response.status_code == 302 and response["Location"] == f"/calibration/{proposal.proposal_id}/"
        assert messages_of(response) == ["Withdrawn: the proposal is now WITHDRAWN."]
    else:
        assert Calibrator(actor_id="alice").withdraw(proposal.proposal_id, reason).status == "WITHDRAWN"

    after = services.get_proposal(proposal.proposal_id)
    assert (after.status, after.workflow.status) == ("withdrawn", WorkflowStatus.REJECTED)
    transition = WorkflowTransition.objects.filter(workflow=after.workflow).order_by("-seq").first()
    assert (transition.from_state, transition.to_state, transition.triggered_by, transition.reason) == (
        state, "withdrawn", "alice", reason)
    assert events_of(proposal)[-1] == "withdraw"
    [event] = TelemetryEvent.objects.filter(name="calibration.withdrawn")
    assert (event.actor, event.subject, event.data["comment"]) == ("alice", str(proposal.proposal_id), reason)
    assert_chains_valid()


def test_a_withdrawal_counts_in_the_calibration_metric(alice, django_capture_on_commit_callbacks):
    proposal = propose(alice)

    def withdrawn() -> float:
        return REGISTRY.get_sample_value("aegis_calibration_proposals_total", {"status": "withdrawn"}) or 0.0

    before = withdrawn()
    with django_capture_on_commit_callbacks(execute=True):
        services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment="Not needed after all")
    assert withdrawn() == before + 1


@pytest.mark.parametrize("who", ["bob", "carol"])
@pytest.mark.parametrize("state", ["proposed", "approved"])
def test_nobody_but_the_proposer_may_withdraw(state, who, alice, bob, carol, browser):
    proposal = open_proposal(state, alice, bob)
    user = {"bob": bob, "carol": carol}[who]
    response = api_step(browser, user, proposal, "withdraw", {"comment": "Not yours to withdraw"})
    assert response.status_code == 403
    assert response.json()["error"] == ONLY_THE_PROPOSER
    with pytest.raises(CalibrationError) as refused:
        services.withdraw(proposal.proposal_id, actor=actor_for(user), comment="Not yours to withdraw")
    assert (refused.value.code, refused.value.message) == ("forbidden", ONLY_THE_PROPOSER)
    assert state_of(proposal) == state
    assert not TelemetryEvent.objects.filter(name="calibration.withdrawn").exists()


@pytest.mark.parametrize(("channel", "form"), [("api", {"comment": "  "}), ("api", None), ("page", {}),
                                               ("page", {"comment": "   "})])
def test_withdraw_needs_a_reason(channel, form, alice, browser):
    proposal = propose(alice)
    if channel == "api":
        response = api_step(browser, alice, proposal, "withdraw", form)
        assert response.status_code == 400
        assert response.json()["error"] == "Withdraw needs a comment"
    else:
        [message] = messages_of(page_step(browser, alice, proposal, "withdraw", form))
        assert message.startswith("Refused: comment:")
    assert state_of(proposal) == "proposed"
    assert events_of(proposal) == ["start"]


@pytest.mark.parametrize("state", ["proposed", "approved"])
def test_the_proposer_cannot_reject_their_own_proposal(state, alice, bob, browser):
    proposal = open_proposal(state, alice, bob)
    response = api_step(browser, alice, proposal, "reject", {"comment": "Changed my mind"})
    assert response.status_code == 403
    assert response.json()["error"] == FOUR_EYES_REJECT
    [message] = messages_of(page_step(browser, alice, proposal, "reject", {"comment": "Changed my mind",
                                                                           "confirm": "on"}))
    assert message == f"Refused: {FOUR_EYES_REJECT}"
    assert state_of(proposal) == state


def test_a_withdrawn_proposal_can_no_longer_be_approved_rejected_withdrawn_or_applied(alice, bob, browser):
    proposal = propose(alice)
    services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment="Not needed")
    for user, step, error in (
            (bob, "approve", "Cannot approve a calibration workflow in state 'withdrawn'"),
            (bob, "reject", "Cannot reject a calibration workflow in state 'withdrawn'"),
            (alice, "withdraw", "Cannot withdraw a calibration workflow in state 'withdrawn'"),
            (alice, "apply", "Apply needs an APPROVED proposal; this one is WITHDRAWN")):
        response = api_step(browser, user, proposal, step, None if step == "apply" else {"comment": "again"})
        assert response.status_code == 409, (step, response.content)
        assert response.json()["error"] == error
    assert events_of(proposal) == ["start", "withdraw"]
    assert latest_version().version == 1


@pytest.mark.parametrize("state", ["applied", "rejected"])
def test_a_decided_proposal_cannot_be_withdrawn(state, alice, bob, browser):
    proposal = approved(alice, bob)
    if state == "applied":
        services.apply(proposal.proposal_id, actor=actor_for(alice))
    else:
        services.reject(proposal.proposal_id, actor=actor_for(bob), comment="No")
    response = api_step(browser, alice, proposal, "withdraw", {"comment": "Too late"})
    assert response.status_code == 409
    assert response.json()["error"] == f"Cannot withdraw a calibration workflow in state '{state}'"
    assert state_of(proposal) == state


def test_withdrawn_proposals_are_listed_under_their_own_status(alice, bob, browser):
    withdrawn = propose(alice, "novelty_threshold", 0.9)
    services.withdraw(withdrawn.proposal_id, actor=actor_for(alice), comment="Not needed")
    still_open = propose(bob, "complexity_floor", 0.6)

    body = browser(bob).get("/api/calibration/proposals", status="WITHDRAWN").json()
    assert [p["proposal_id"] for p in body["proposals"]] == [str(withdrawn.proposal_id)]
    assert body["proposals"][0]["status"] == "WITHDRAWN"
    queue = browser(bob).get("/calibration/", status="WITHDRAWN")
    assert [p.proposal_id for p in queue.context["page"]] == [withdrawn.proposal_id]
    assert '<option value="WITHDRAWN" selected>' in queue.content.decode()
    assert [p.proposal_id for p in browser(bob).get("/calibration/").context["page"]] == [still_open.proposal_id]


# --- what the review page offers whom -----------------------------------------------------------

@pytest.mark.parametrize(("state", "who", "actions"), [
    ("proposed", "alice", {"withdraw"}),
    ("proposed", "bob", {"approve", "reject"}),
    ("proposed", "carol", set()),
    ("approved", "alice", {"withdraw", "apply"}),
    ("approved", "bob", {"reject", "apply"}),
    ("approved", "carol", {"apply"}),
])
def test_the_review_page_offers_the_proposer_withdraw_and_other_risk_leads_approve_and_reject(
        state, who, actions, alice, bob, carol, browser):
    proposal = open_proposal(state, alice, bob)
    page = review(browser, {"alice": alice, "bob": bob, "carol": carol}[who], proposal).content.decode()
    shown = {action for action in ("approve", "reject", "withdraw", "apply") if f'data-action="{action}"' in page}
    assert shown == actions
    if "withdraw" in actions:
        assert 'id="withdraw-comment"' in page and "window.confirm('Withdraw this proposal?" in page


def test_the_review_page_of_a_withdrawn_proposal(alice, bob, browser):
    proposal = propose(alice)
    services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment="The evidence did not hold up")
    page = review(browser, bob, proposal).content.decode()
    assert '<span class="badge withdrawn" id="proposal-status">WITHDRAWN</span>' in page
    assert "This proposal is WITHDRAWN; nothing is left to decide." in page
    assert "“The evidence did not hold up”" in page
    assert 'id="impact-preview"' not in page and "data-action=" not in page


# --- past-tense messages (pages and admin) ------------------------------------------------------

@pytest.mark.parametrize(("step", "who", "message"), [
    ("approve", "bob", "Approved: the proposal is now APPROVED."),
    ("reject", "bob", "Rejected: the proposal is now REJECTED."),
    ("withdraw", "alice", "Withdrawn: the proposal is now WITHDRAWN."),
])
def test_the_page_says_what_was_done(step, who, message, alice, bob, browser):
    proposal = propose(alice)
    response = page_step(browser, {"alice": alice, "bob": bob}[who], proposal, step,
                         {"comment": "Reviewed", "confirm": "on"})
    assert messages_of(response) == [message]


ADMIN = "/admin/calibration/calibrationproposal/"


@pytest.mark.parametrize(("step", "by", "message", "state"), [
    ("approve", "reviewer", "Approved.", "approved"),
    ("reject", "reviewer", "Rejected.", "rejected"),
    ("withdraw", "proposer", "Withdrawn.", "withdrawn"),
    ("apply", "proposer", "Applied: configuration v2 is active.", "applied"),
])
def test_the_admin_says_what_was_done_in_the_past_tense(step, by, message, state, seeded, browser):
    people = {"proposer": make_user("rhea", risk_lead=True, is_staff=True),
              "reviewer": make_user("rex", risk_lead=True, is_staff=True)}
    proposal = (approved if step == "apply" else lambda p, _r: propose(p))(people["proposer"], people["reviewer"])
    response = browser(people[by]).post_form(f"{ADMIN}{proposal.pk}/step/{step}/", {"comment": "Reviewed"})
    assert response.status_code == 302
    assert messages_of(response) == [message]
    assert state_of(proposal) == state


@pytest.mark.parametrize(("by", "steps"), [("proposer", ["withdraw"]), ("reviewer", ["approve", "reject"])])
def test_the_admin_offers_the_proposer_withdraw_and_the_reviewer_approve_and_reject(by, steps, seeded, browser):
    people = {"proposer": make_user("rhea", risk_lead=True, is_staff=True),
              "reviewer": make_user("rex", risk_lead=True, is_staff=True)}
    proposal = services.propose("novelty_threshold", 0.9, JUSTIFICATION, actor=actor_for(people["proposer"]))
    change = browser(people[by]).get(f"{ADMIN}{proposal.pk}/change/")
    assert change.context["calibration_steps"] == steps
    page = change.content.decode()
    assert all(f'data-step="{step}"' in page for step in steps)
    assert sum(f'data-step="{step}"' in page for step in ("approve", "reject", "withdraw", "apply")) == len(steps)
