"""The override's "two different people" rule compares people by user id (`Actor.identity`),
never by username: a custodian renamed between the two approvals is still the same person,
and a new user given a former custodian's username is someone else."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from workflows import services
from workflows.machines import OVERRIDE, Actor, Context
from workflows.roles import Role
from wf_support import HALT, RISK, reload, snapshot, submit

pytestmark = pytest.mark.django_db

WE = services.WorkflowError
TWO_PEOPLE = "The two approvals must come from two different people"


def new_override():
    proposal = submit(HALT)
    return services.request_override(proposal.workflow_id, actor=RISK, justification="Launch depends on it")


def approve(override, user, comment="checked"):
    return services.fire_event(override.workflow_id, "approve", actor=services.actor_for(user), comment=comment)


def rename(user, username: str):
    user.username = username
    user.save()
    user.refresh_from_db()
    return user


def test_each_approval_records_the_custodians_identity(make_user):
    custodian = make_user("sam", Role.SECURITY_LEAD)
    override = new_override()
    approve(override, custodian)
    [approval] = reload(override).state_data["approvals"]
    assert (approval["custodian_id"], approval["custodian_identity"], approval["role"]) == (
        "sam", f"user:{custodian.pk}", "security_lead")


def test_a_custodian_renamed_between_the_approvals_cannot_give_the_second(make_user):
    bo = make_user("bo", Role.RISK_LEAD, Role.SECURITY_LEAD)  # could give either approval
    override = new_override()
    approve(override, bo, comment="as risk lead")
    before = snapshot(override)

    rename(bo, "bo-renamed")
    with pytest.raises(WE) as refused:
        approve(override, bo, comment="as security lead, under my new name")
    assert (refused.value.code, refused.value.message) == (WE.FORBIDDEN, TWO_PEOPLE)
    assert snapshot(override) == before
    assert reload(override).current_state == "partial"
    # ...and the page offers the renamed custodian no Approve button either
    assert "approve" not in {e.name for e in services.allowed_events(reload(override), services.actor_for(bo))}


def test_a_new_user_with_a_former_custodians_username_is_another_person(make_user):
    first = make_user("sam", Role.SECURITY_LEAD)
    override = new_override()
    approve(override, first)
    rename(first, "sam-who-left")
    second = make_user("sam", Role.RISK_LEAD)  # someone else, given the freed username
    assert second.pk != first.pk

    approve(override, second, comment="checked too")
    row = reload(override)
    assert row.current_state == "approved"
    assert [(a["custodian_id"], a["custodian_identity"]) for a in row.state_data["approvals"]] == [
        ("sam", f"user:{first.pk}"), ("sam", f"user:{second.pk}")]


# --- the guard itself: identities, and approvals recorded before identities existed ---------------

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
BOTH_ROLES = frozenset({Role.RISK_LEAD, Role.SECURITY_LEAD})


def custodian_refusal(approval: dict, actor: Actor) -> str | None:
    data = {"approvals": [{"role": "risk_lead", **approval}], "binding_hash": "b" * 64,
            "expires_at": "2025-01-02T00:00:00Z"}
    ctx = Context(state="partial", data=data, actor=actor, params={}, now=NOW)
    guards = {g.__name__: g for g in OVERRIDE.events["approve"].guards}
    return guards["_custodian_guard"](ctx)


@pytest.mark.parametrize(("approval", "actor", "refusal"), [
    # identities recorded: the user id decides, the name does not
    ({"custodian_id": "bo", "custodian_identity": "user:7"}, Actor("bo-renamed", id=7, roles=BOTH_ROLES),
     TWO_PEOPLE),
    ({"custodian_id": "bo", "custodian_identity": "user:7"}, Actor("bo", id=8, roles=BOTH_ROLES), None),
    ({"custodian_id": "bo", "custodian_identity": "user:7"}, Actor("bo", roles=BOTH_ROLES), None),
    ({"custodian_id": "svc", "custodian_identity": "name:svc"}, Actor("svc", roles=BOTH_ROLES), TWO_PEOPLE),
    ({"custodian_id": "svc", "custodian_identity": "name:svc"}, Actor("svc", id=3, roles=BOTH_ROLES), None),
    # an approval recorded before identities: the former rule, same name, still holds
    ({"custodian_id": "bo"}, Actor("bo", id=7, roles=BOTH_ROLES), TWO_PEOPLE),
    ({"custodian_id": "bo"}, Actor("bo", roles=BOTH_ROLES), TWO_PEOPLE),
    ({"custodian_id": "bo"}, Actor("sam", id=9, roles=BOTH_ROLES), None),
], ids=["renamed", "same-name-other-user", "same-name-no-user", "system-same-name", "user-named-like-system",
        "legacy-same-name-user", "legacy-same-name", "legacy-other-name"])
def test_the_custodian_guard_compares_identities(approval, actor, refusal):
    assert custodian_refusal(approval, actor) == refusal
