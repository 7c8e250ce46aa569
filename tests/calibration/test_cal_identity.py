"""Four eyes compares people by user id (`Actor.identity`), never by username: a proposer
renamed after proposing is still the proposer (on the service, the API, the pages and the
admin), and a new user who was given the proposer's former username is someone else."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from cal_support import approved, events_of, make_user, messages_of, propose, state_of

from calibration import services
from calibration.services import CalibrationError, proposal_content_hash
from workflows.machines import CALIBRATION, Actor, Context
from workflows.roles import Role
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

FOUR_EYES = "Four eyes: the approver must be someone other than the proposer"
FOUR_EYES_REJECT = "Four eyes: the proposer cannot reject their own proposal; withdraw it instead"
ONLY_THE_PROPOSER = "Only the proposer may withdraw a calibration proposal; a risk lead rejects it instead"
REFUSAL = {"approve": FOUR_EYES, "reject": FOUR_EYES_REJECT}


def rename(user, username: str):
    user.username = username
    user.save()
    user.refresh_from_db()
    return user


def test_propose_records_the_proposers_identity_outside_the_content_hash(alice):
    proposal = propose(alice)
    data = proposal.workflow.state_data
    assert (data["proposed_by"], data["proposed_by_identity"]) == ("alice", f"user:{alice.pk}")
    assert proposal.proposed_by == "alice"
    # the content hash covers what it always covered, and not the identity
    assert data["content_hash"] == proposal_content_hash(data)
    assert proposal_content_hash({**data, "proposed_by_identity": "user:0"}) == data["content_hash"]
    assert proposal_content_hash({**data, "proposed_by": "mallory"}) != data["content_hash"]


def test_a_system_actor_without_a_user_is_recorded_by_name(alice):
    proposal = services.propose("tau_warning", 0.4, "KL above tau_warning for 3 days",
                                actor=Actor("drift-monitor", roles=frozenset()))
    assert proposal.workflow.state_data["proposed_by_identity"] == "name:drift-monitor"
    assert services.approve(proposal.proposal_id, actor=actor_for(alice), comment="ok").status == "approved"


# --- a renamed proposer is still the proposer ---------------------------------------------------

def step_through(channel: str, browser, user, proposal, step: str, comment: str = "I checked it myself"):
    """Take `step` as `user` through `channel`; the refusal message, or None when it was done."""
    if channel == "service":
        try:
            getattr(services, step)(proposal.proposal_id, actor=actor_for(user), comment=comment)
        except CalibrationError as exc:
            return exc.message
        return None
    if channel == "api":
        response = browser(user).post_json(f"/api/calibration/proposals/{proposal.proposal_id}/{step}",
                                           {"comment": comment})
        return None if response.status_code == 200 else response.json()["error"]
    if channel == "page":
        response = browser(user).post_form(f"/calibration/{proposal.proposal_id}/{step}/",
                                           {"comment": comment, "confirm": "on"})
    else:  # the admin
        response = browser(user).post_form(f"/admin/calibration/calibrationproposal/{proposal.pk}/step/{step}/",
                                           {"comment": comment})
    [message] = messages_of(response)
    return message.removeprefix("Refused: ") if message.startswith("Refused: ") else None


@pytest.mark.parametrize("channel", ["service", "api", "page", "admin"])
@pytest.mark.parametrize("step", ["approve", "reject"])
def test_a_proposer_renamed_after_proposing_still_cannot_approve_or_reject(step, channel, seeded, browser):
    lead = make_user("rhea", risk_lead=True, is_staff=True)
    proposal = propose(lead)
    rename(lead, "rhea-renamed")

    assert step_through(channel, browser, lead, proposal, step) == REFUSAL[step]
    assert state_of(proposal) == "proposed"
    assert events_of(proposal) == ["start"]


def test_the_renamed_proposer_is_offered_withdraw_not_approve(alice, browser):
    proposal = propose(alice)
    rename(alice, "alice-renamed")
    response = browser(alice).get(f"/calibration/{proposal.proposal_id}/")
    page = response.content.decode()
    assert (response.context["can_approve"], response.context["can_reject"], response.context["can_withdraw"]) == (
        False, False, True)
    assert 'data-action="approve"' not in page and 'data-action="reject"' not in page
    assert 'data-action="withdraw"' in page
    assert "you proposed it, and four eyes means another risk lead must approve" in page


def test_a_renamed_proposer_may_still_withdraw(alice, bob):
    proposal = propose(alice)
    rename(alice, "alice-renamed")
    assert services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment="Not needed").status == \
        "withdrawn"


# --- sharing a former username makes nobody the proposer -------------------------------------------

def test_a_new_user_given_the_proposers_former_username_is_someone_else(alice, browser):
    proposal = propose(alice)
    rename(alice, "x")
    newcomer = make_user("alice", risk_lead=True)  # another person, given the freed username
    assert newcomer.pk != alice.pk

    # the newcomer is offered the risk lead's steps, not the proposer's
    response = browser(newcomer).get(f"/calibration/{proposal.proposal_id}/")
    assert (response.context["can_approve"], response.context["can_reject"], response.context["can_withdraw"]) == (
        True, True, False)
    assert step_through("api", browser, newcomer, proposal, "withdraw") == ONLY_THE_PROPOSER

    assert step_through("api", browser, newcomer, proposal, "approve", "Checked by someone else") is None
    after = services.get_proposal(proposal.proposal_id)
    assert after.status == "approved"
    assert (after.proposed_by, after.workflow.state_data["approver_id"]) == ("alice", "alice")  # names as recorded
    assert after.workflow.state_data["proposed_by_identity"] == f"user:{alice.pk}"


def test_only_the_renamed_proposer_may_withdraw_an_approved_proposal(alice, bob):
    proposal = approved(bob, alice)
    rename(bob, "robert")
    with pytest.raises(CalibrationError) as refused:
        services.withdraw(proposal.proposal_id, actor=actor_for(alice), comment="Not mine")
    assert refused.value.message == ONLY_THE_PROPOSER
    assert services.withdraw(proposal.proposal_id, actor=actor_for(bob), comment="Mine").status == "withdrawn"


# --- the guards themselves: identities, and proposals made before identities existed --------------

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
RISK_LEAD = frozenset({Role.RISK_LEAD})


def refusal_of(event: str, data: dict, actor: Actor) -> str | None:
    ctx = Context(state="proposed", data={"content_hash": "c" * 64, **data}, actor=actor, params={}, now=NOW)
    for guard in CALIBRATION.events[event].guards:
        if message := guard(ctx):
            return message
    return None


ALICE_7 = {"proposed_by": "alice", "proposed_by_identity": "user:7"}
LEGACY_ALICE = {"proposed_by": "alice"}  # proposed before identities were recorded
DRIFT_MONITOR = {"proposed_by": "drift-monitor", "proposed_by_identity": "name:drift-monitor"}


@pytest.mark.parametrize(("data", "actor", "is_proposer"), [
    (ALICE_7, Actor("alice", id=7, roles=RISK_LEAD), True),
    (ALICE_7, Actor("alice-renamed", id=7, roles=RISK_LEAD), True),
    (ALICE_7, Actor("alice", id=8, roles=RISK_LEAD), False),
    (ALICE_7, Actor("alice", roles=RISK_LEAD), False),
    (DRIFT_MONITOR, Actor("drift-monitor", roles=RISK_LEAD), True),
    (DRIFT_MONITOR, Actor("drift-monitor", id=3, roles=RISK_LEAD), False),
    (LEGACY_ALICE, Actor("alice", id=7, roles=RISK_LEAD), True),
    (LEGACY_ALICE, Actor("alice", roles=RISK_LEAD), True),
    (LEGACY_ALICE, Actor("bob", id=9, roles=RISK_LEAD), False),
], ids=["same-user", "renamed", "same-name-other-user", "same-name-no-user", "system-actor",
        "user-named-like-the-system-actor", "legacy-same-name", "legacy-same-name-no-user", "legacy-other-name"])
@pytest.mark.parametrize("event", ["approve", "reject", "withdraw"])
def test_four_eyes_and_withdraw_compare_identities(event, data, actor, is_proposer):
    expected = {"approve": FOUR_EYES if is_proposer else None,
                "reject": FOUR_EYES_REJECT if is_proposer else None,
                "withdraw": None if is_proposer else ONLY_THE_PROPOSER}[event]
    assert refusal_of(event, data, actor) == expected
