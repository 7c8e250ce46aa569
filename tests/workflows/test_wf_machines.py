"""Every state machine's allowed and refused transitions, through the service layer
(workflows.services is the only code that changes workflow state)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workflows import services
from workflows.machines import Actor, override_binding_hash
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance, WorkflowTransition
from workflows.roles import Role
from workflows.serialization import ensure_utc
from wf_support import (BOTH, ESCALATE, HALT, HALT_COMPLEXITY, NOBODY, PAUSE, PROCEED, RISK, RISK_2, SECURITY,
                        consensus, db_counts, reload, snapshot, submit, utcnow)

pytestmark = pytest.mark.django_db

WE = services.WorkflowError


def fire(workflow, event, actor, comment="", params=None, now=None):
    return services.fire_event(workflow.workflow_id, event, actor=actor, comment=comment, params=params, now=now)


def refused(code, text, call, *args, **kwargs) -> WE:
    with pytest.raises(WE) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value.message
    assert text in info.value.message
    return info.value


def last_transition(workflow) -> WorkflowTransition:
    return WorkflowTransition.objects.filter(workflow__workflow_id=workflow.workflow_id).order_by("-seq").first()


def assert_chain_valid(*workflows):
    for workflow in workflows:
        ok, message = DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id)
        assert ok, message


# --- proposal --------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, engine_status, state, status", [
    (PROCEED, "proceed", "approved", "completed"),
    (HALT, "halt", "rejected", "rejected"),
    (HALT_COMPLEXITY, "halt", "rejected", "rejected"),
    (PAUSE, "pause", "in_review", "pending"),
    (ESCALATE, "escalate", "in_review", "pending"),
], ids=["proceed", "halt", "halt-complexity", "pause", "escalate"])
def test_engine_decision_moves_the_proposal(inputs, engine_status, state, status):
    proposal = submit(inputs)
    row = reload(proposal)
    assert (row.current_state, row.status, row.version) == (state, status, 2)
    assert row.state_data["decision"]["status"] == engine_status
    start, evaluate = WorkflowTransition.objects.filter(workflow=row).order_by("seq")
    assert (start.seq, start.from_state, start.to_state, start.triggered_by) == (1, "", "submitted", "submitter")
    assert (evaluate.seq, evaluate.from_state, evaluate.to_state) == (2, "submitted", state)
    assert evaluate.triggered_by == "aegis-engine" and evaluate.payload["event"] == "evaluate"
    assert evaluate.payload["status"] == engine_status
    assert evaluate.prev_hash == start.hash
    assert_chain_valid(row)


@pytest.mark.parametrize("inputs", [PAUSE, ESCALATE], ids=["pause", "escalate"])
@pytest.mark.parametrize("event, target, status", [("approve", "approved", "completed"),
                                                    ("reject", "rejected", "rejected")])
def test_risk_lead_decides_a_proposal_in_review_with_a_comment(inputs, event, target, status):
    proposal = submit(inputs)
    fire(proposal, event, RISK, comment="  Looked at the rollout plan  ")
    row = reload(proposal)
    assert (row.current_state, row.status, row.version) == (target, status, 3)
    transition = last_transition(row)
    assert (transition.from_state, transition.to_state, transition.triggered_by) == ("in_review", target, "rita")
    assert transition.reason == "Looked at the rollout plan"  # stripped
    assert transition.payload["event"] == event
    assert_chain_valid(row)


@pytest.mark.parametrize("event", ["approve", "reject"])
@pytest.mark.parametrize("actor, comment, code, text", [
    (SECURITY, "fine by me", WE.FORBIDDEN, "needs the role risk_lead"),
    (NOBODY, "fine by me", WE.FORBIDDEN, "needs the role risk_lead"),
    (Actor.system(), "fine by me", WE.FORBIDDEN, "needs the role risk_lead"),
    (RISK, "", WE.INVALID, "needs a comment"),
    (RISK, "   ", WE.INVALID, "needs a comment"),
], ids=["security-lead", "no-role", "system", "no-comment", "blank-comment"])
def test_reviewer_decision_needs_a_risk_lead_and_a_comment(event, actor, comment, code, text):
    proposal = submit(PAUSE)
    before = snapshot(proposal)
    refused(code, text, fire, proposal, event, actor, comment=comment)
    assert snapshot(proposal) == before


@pytest.mark.parametrize("inputs", [PROCEED, HALT], ids=["approved", "rejected"])
@pytest.mark.parametrize("event", ["approve", "reject"])
def test_reviewer_decision_outside_review_is_a_conflict(inputs, event):
    proposal = submit(inputs)
    before = snapshot(proposal)
    refused(WE.CONFLICT, "Cannot", fire, proposal, event, RISK, comment="too late")
    assert snapshot(proposal) == before


@pytest.mark.parametrize("event, inputs", [
    ("evaluate", None), ("override_granted", HALT), ("override_denied", HALT)])
@pytest.mark.parametrize("actor", [RISK, SECURITY, BOTH, NOBODY], ids=lambda a: a.name)
def test_system_events_cannot_be_fired_by_people(event, inputs, actor):
    if inputs is None:  # evaluate: a proposal still in `submitted`
        proposal = services.start_workflow("proposal", actor=NOBODY, data={"proposal": {}})
    else:
        proposal = submit(inputs)
        services.request_override(proposal.workflow_id, actor=RISK, justification="Needed for the launch")
    before = snapshot(proposal)
    refused(WE.FORBIDDEN, "needs the role system", fire, proposal, event, actor, comment="c")
    assert snapshot(proposal) == before


def test_internal_params_are_refused_from_callers():
    proposal = services.start_workflow("proposal", actor=NOBODY, data={"proposal": {}})
    refused(WE.FORBIDDEN, "needs the role system", fire, proposal, "evaluate", RISK,
            params={"decision": {"status": "proceed"}})
    # even a system actor cannot smuggle a decision in through fire_event: internal params
    # come only from the service verbs themselves
    refused(WE.INVALID, "takes no parameter(s) decision", fire, proposal, "evaluate", Actor.system(),
            params={"decision": {"status": "proceed", "decision_id": "x", "failing_gates": []}})
    assert reload(proposal).current_state == "submitted" and reload(proposal).version == 1


def test_unknown_event_and_unknown_workflow_are_refused():
    proposal = submit(PAUSE)
    refused(WE.INVALID, "no event 'vote'", fire, proposal, "vote", RISK)
    refused(WE.NOT_FOUND, "No workflow", services.fire_event, "00000000-0000-0000-0000-000000000000",
            "approve", actor=RISK, comment="x")
    refused(WE.NOT_FOUND, "No workflow", services.get_workflow, "00000000-0000-0000-0000-000000000000")


# --- request_override ------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, from_state", [(HALT, "rejected"), (ESCALATE, "in_review")],
                         ids=["halt", "escalate"])
@pytest.mark.parametrize("actor", [RISK, SECURITY], ids=lambda a: a.name)
def test_request_override_creates_a_pending_override(inputs, from_state, actor):
    proposal = submit(inputs)
    now = utcnow()
    override = services.request_override(proposal.workflow_id, actor=actor, justification=" Launch depends on it ",
                                         now=now)
    proposal_row, override_row = reload(proposal), reload(override)
    assert proposal_row.current_state == "override_requested" and proposal_row.status == "active"
    assert proposal_row.state_data["override_workflow_id"] == str(override.workflow_id)
    assert last_transition(proposal_row).from_state == from_state
    data = override_row.state_data
    assert (override_row.workflow_type, override_row.current_state, override_row.status) == (
        "override", "pending", "pending")
    assert data["proposal_workflow_id"] == str(proposal.workflow_id)
    assert data["justification"] == "Launch depends on it" and data["requested_by"] == actor.name
    assert data["failed_gates"] == proposal_row.state_data["decision"]["failing_gates"]
    assert ensure_utc(data["expires_at"]) == now + timedelta(hours=24)
    assert data["binding_hash"] == override_binding_hash(data["proposal_id"], data["justification"],
                                                         data["failed_gates"])
    assert data["approvals"] == []
    assert_chain_valid(proposal_row, override_row)


@pytest.mark.parametrize("inputs, actor, justification, code, text", [
    (HALT_COMPLEXITY, RISK, "Please", WE.FORBIDDEN, "complexity failure is refused"),
    (HALT_COMPLEXITY, SECURITY, "Please", WE.FORBIDDEN, "complexity failure is refused"),
    (HALT, NOBODY, "Please", WE.FORBIDDEN, "needs the role"),
    (HALT, RISK, "  ", WE.INVALID, "needs a comment"),
    (PROCEED, RISK, "Please", WE.CONFLICT, "Cannot request override"),
], ids=["complexity-risk", "complexity-security", "no-role", "no-justification", "approved-proposal"])
def test_refused_override_request_creates_nothing(inputs, actor, justification, code, text):
    proposal = submit(inputs)
    before, counts = snapshot(proposal), db_counts()
    refused(code, text, services.request_override, proposal.workflow_id, actor=actor, justification=justification)
    assert snapshot(proposal) == before
    assert db_counts() == counts
    assert not WorkflowInstance.objects.filter(workflow_type="override").exists()


@pytest.mark.parametrize("reviewed", [False, True], ids=["in-review", "rejected-by-a-reviewer"])
def test_a_paused_proposal_is_not_eligible_for_an_override(reviewed):
    proposal = submit(PAUSE)
    if reviewed:
        fire(proposal, "reject", RISK, comment="no")
    counts = db_counts()
    refused(WE.FORBIDDEN, "not eligible for an override", services.request_override, proposal.workflow_id,
            actor=RISK, justification="please")
    assert db_counts() == counts


def test_complexity_halt_offers_no_override_to_anyone():
    proposal = submit(HALT_COMPLEXITY)
    assert reload(proposal).state_data["decision"]["failing_gates"] == ["complexity"]
    for actor in (RISK, SECURITY, BOTH):
        assert services.allowed_events(reload(proposal), actor) == []


def test_second_override_request_on_the_same_proposal_is_a_conflict():
    proposal = submit(HALT)
    services.request_override(proposal.workflow_id, actor=RISK, justification="first")
    counts = db_counts()
    refused(WE.CONFLICT, "override_requested", services.request_override, proposal.workflow_id, actor=SECURITY,
            justification="second")
    assert db_counts() == counts


def test_only_proposals_can_be_overridden():
    vote = consensus(["a", "b"])
    refused(WE.INVALID, "Only proposal workflows", services.request_override, vote.workflow_id, actor=RISK,
            justification="x")


# --- override --------------------------------------------------------------------------------

def new_override(inputs=HALT, now=None):
    proposal = submit(inputs, now=now)
    override = services.request_override(proposal.workflow_id, actor=RISK, justification="Launch depends on it",
                                         now=now)
    return proposal, override


@pytest.mark.parametrize("first, second", [(RISK, SECURITY), (SECURITY, RISK)], ids=["risk-first", "security-first"])
def test_two_custodians_of_different_roles_approve_and_the_proposal_is_approved(first, second):
    proposal, override = new_override()
    fire(override, "approve", first, comment="checked")
    row = reload(override)
    assert (row.current_state, row.status) == ("partial", "active")
    assert reload(proposal).current_state == "override_requested"
    fire(override, "approve", second, comment="checked too")
    row = reload(override)
    assert (row.current_state, row.status) == ("approved", "completed")
    approvals = row.state_data["approvals"]
    assert [(a["custodian_id"], a["role"]) for a in approvals] == [
        (first.name, str(next(iter(first.roles)))), (second.name, str(next(iter(second.roles))))]
    assert all(a["binding_hash"] == row.state_data["binding_hash"] for a in approvals)
    proposal_row = reload(proposal)
    assert (proposal_row.current_state, proposal_row.status) == ("approved", "completed")
    granted = last_transition(proposal_row)
    assert (granted.from_state, granted.to_state, granted.triggered_by) == (
        "override_requested", "approved", "aegis-override")
    assert granted.payload["event"] == "override_granted"
    assert str(override.workflow_id) in granted.reason
    assert_chain_valid(proposal_row, row)


@pytest.mark.parametrize("inputs", [HALT, ESCALATE], ids=["halt", "escalate"])
@pytest.mark.parametrize("approved_first", [False, True], ids=["from-pending", "from-partial"])
@pytest.mark.parametrize("rejecter", [RISK_2, SECURITY], ids=lambda a: a.name)
def test_rejected_override_rejects_the_proposal(inputs, approved_first, rejecter):
    proposal, override = new_override(inputs)
    if approved_first:
        fire(override, "approve", RISK, comment="ok")
    fire(override, "reject", rejecter, comment="not convinced")
    assert (reload(override).current_state, reload(override).status) == ("rejected", "rejected")
    proposal_row = reload(proposal)
    assert (proposal_row.current_state, proposal_row.status) == ("rejected", "rejected")
    assert last_transition(proposal_row).payload["event"] == "override_denied"
    assert_chain_valid(proposal_row, override)


def test_the_same_person_cannot_be_both_custodians():
    proposal, override = new_override()
    fire(override, "approve", BOTH, comment="as risk lead")
    assert reload(override).state_data["approvals"][0]["role"] == "risk_lead"
    before = snapshot(override)
    refused(WE.FORBIDDEN, "two different people", fire, override, "approve", BOTH, comment="again")
    refused(WE.FORBIDDEN, "two different people", fire, override, "approve", BOTH, comment="again",
            params={"role": "security_lead"})
    assert snapshot(override) == before
    assert reload(proposal).current_state == "override_requested"
    assert [e.name for e in services.allowed_events(reload(override), BOTH)] == ["reject"]


@pytest.mark.parametrize("first, second", [(RISK, RISK_2), (SECURITY, Actor("sue", roles=frozenset({Role.SECURITY_LEAD})))],
                         ids=["two-risk-leads", "two-security-leads"])
def test_a_second_approval_from_the_same_role_is_refused(first, second):
    _, override = new_override()
    fire(override, "approve", first, comment="ok")
    before = snapshot(override)
    refused(WE.FORBIDDEN, "already given", fire, override, "approve", second, comment="me too")
    assert snapshot(override) == before


@pytest.mark.parametrize("actor, params, code, text", [
    (NOBODY, {}, WE.FORBIDDEN, "needs the role risk_lead or security_lead"),
    (Actor.system(), {}, WE.FORBIDDEN, "needs the role"),
    (RISK, {"role": "security_lead"}, WE.FORBIDDEN, "do not hold the role 'security_lead'"),
    (RISK, {"role": "auditor"}, WE.INVALID, "role must be one of"),
    (RISK, {"binding_hash": "0" * 64}, WE.FORBIDDEN, "binding hash mismatch"),
    (RISK, {"surprise": 1}, WE.INVALID, "takes no parameter"),
], ids=["no-role", "system", "role-not-held", "unknown-role", "stale-binding-hash", "unknown-param"])
def test_wrong_custodian_approvals_are_refused(actor, params, code, text):
    _, override = new_override()
    before = snapshot(override)
    refused(code, text, fire, override, "approve", actor, comment="ok", params=params)
    assert snapshot(override) == before


def test_approval_with_the_reviewed_binding_hash_and_a_comment():
    _, override = new_override()
    refused(WE.INVALID, "needs a comment", fire, override, "approve", RISK)
    fire(override, "approve", RISK, comment="ok", params={"binding_hash": reload(override).state_data["binding_hash"]})
    assert reload(override).current_state == "partial"


@pytest.mark.parametrize("event, actor", [("approve", SECURITY), ("reject", SECURITY)])
@pytest.mark.parametrize("partial", [False, True], ids=["pending", "partial"])
def test_expired_override_refuses_and_rejects_the_proposal(event, actor, partial):
    start = utcnow() - timedelta(hours=30)
    proposal, override = new_override(now=start)
    if partial:
        fire(override, "approve", RISK, comment="ok", now=start + timedelta(hours=1))
    # still open while the deadline has not passed, whatever the stored state says
    assert services.expire_if_due(override.workflow_id, now=start + timedelta(hours=23, minutes=59)) is False
    later = start + timedelta(hours=24)
    refused(WE.CONFLICT, "in state 'expired'", fire, override, event, actor, comment="late", now=later)
    row = reload(override)
    assert (row.current_state, row.status) == ("expired", "expired")
    expiry = last_transition(row)
    assert (expiry.triggered_by, expiry.payload["event"], expiry.created_at) == ("aegis-scheduler", "expire", later)
    proposal_row = reload(proposal)
    assert (proposal_row.current_state, proposal_row.status) == ("rejected", "rejected")
    assert last_transition(proposal_row).payload["event"] == "override_denied"
    assert_chain_valid(row, proposal_row)


def test_expiry_is_applied_on_every_read(settings):
    settings.AEGIS_OVERRIDE_EXPIRY_HOURS = 1
    proposal, override = new_override(now=utcnow() - timedelta(hours=2))
    # the stored row still says pending, but nobody is offered anything on an expired request
    assert reload(override).current_state == "pending"
    assert services.allowed_events(reload(override), RISK) == []
    assert services.get_workflow(override.workflow_id).current_state == "expired"
    assert reload(proposal).current_state == "rejected"


def test_expiry_hours_come_from_settings(settings):
    settings.AEGIS_OVERRIDE_EXPIRY_HOURS = 3
    now = utcnow()
    _, override = new_override(now=now)
    assert ensure_utc(reload(override).state_data["expires_at"]) == now + timedelta(hours=3)
    fire(override, "approve", RISK, comment="in time", now=now + timedelta(hours=2, minutes=59))
    refused(WE.CONFLICT, "expired", fire, override, "approve", SECURITY, comment="late",
            now=now + timedelta(hours=3))


def test_expire_due_workflows_applies_every_passed_deadline():
    start = utcnow() - timedelta(days=3)
    _, pending = new_override(now=start)
    _, partial = new_override(now=start)
    fire(partial, "approve", RISK, comment="ok", now=start + timedelta(hours=1))
    _, fresh = new_override()
    vote = consensus(["a", "b"], now=start, deadline=start + timedelta(days=1))
    open_vote = consensus(["a", "b"])
    assert services.expire_due_workflows(now=utcnow()) == 3
    assert [reload(w).current_state for w in (pending, partial, fresh, vote, open_vote)] == [
        "expired", "expired", "pending", "no_quorum", "voting"]
    assert services.expire_due_workflows(now=utcnow()) == 0


# --- consensus -------------------------------------------------------------------------------

REVIEWERS = ["ann", "ben", "cat"]


def voter(name):
    return Actor(name)


@pytest.mark.parametrize("votes, threshold, outcome, status", [
    (["approve", "approve", "approve"], 0.5, "approved", "completed"),
    (["approve", "approve", "reject"], 0.5, "approved", "completed"),
    (["approve", "reject", "reject"], 0.5, "rejected", "rejected"),
    (["approve", "approve", "reject"], 1.0, "rejected", "rejected"),
    (["reject", "reject", "reject"], 0.3, "rejected", "rejected"),
])
def test_the_last_vote_closes_the_consensus(votes, threshold, outcome, status):
    vote = consensus(REVIEWERS, quorum=2, threshold=threshold)
    for name, choice in zip(REVIEWERS[:-1], votes[:-1]):
        fire(vote, "vote", voter(name), params={"vote": choice})
        assert reload(vote).current_state == "voting"
    fire(vote, "vote", voter(REVIEWERS[-1]), params={"vote": votes[-1]})
    row = reload(vote)
    assert (row.current_state, row.status, row.version) == (outcome, status, 4)
    assert row.state_data["votes"] == dict(zip(REVIEWERS, votes))
    payload = last_transition(row).payload
    assert (payload["event"], payload["reviewer"], payload["vote"]) == ("vote", "cat", votes[-1])
    assert_chain_valid(row)


@pytest.mark.parametrize("votes, quorum, outcome, status", [
    ({"ann": "approve", "ben": "approve"}, 2, "approved", "completed"),
    ({"ann": "approve", "ben": "reject"}, 2, "approved", "completed"),  # 1/2 >= 0.5
    ({"ann": "reject", "ben": "reject"}, 2, "rejected", "rejected"),
    ({"ann": "approve"}, 2, "no_quorum", "expired"),
    ({}, 1, "no_quorum", "expired"),
])
def test_consensus_closes_at_the_deadline(votes, quorum, outcome, status):
    now = utcnow()
    deadline = now + timedelta(hours=1)
    vote = consensus(REVIEWERS, quorum=quorum, deadline=deadline, now=now)
    for name, choice in votes.items():
        fire(vote, "vote", voter(name), params={"vote": choice}, now=now + timedelta(minutes=5))
    assert services.expire_if_due(vote.workflow_id, now=deadline - timedelta(microseconds=1)) is False
    assert reload(vote).current_state == "voting"
    assert services.expire_if_due(vote.workflow_id, now=deadline + timedelta(minutes=1)) is True
    row = reload(vote)
    assert (row.current_state, row.status) == (outcome, status)
    close = last_transition(row)
    assert (close.triggered_by, close.payload["event"], close.from_state) == ("aegis-scheduler", "close", "voting")
    assert services.expire_if_due(vote.workflow_id, now=deadline + timedelta(days=1)) is False
    assert_chain_valid(row)


def test_vote_after_the_deadline_is_refused_and_the_vote_closes():
    now = utcnow()
    vote = consensus(REVIEWERS, quorum=1, deadline=now + timedelta(hours=1), now=now)
    fire(vote, "vote", voter("ann"), params={"vote": "approve"}, now=now + timedelta(minutes=1))
    refused(WE.CONFLICT, "in state 'approved'", fire, vote, "vote", voter("ben"), params={"vote": "reject"},
            now=now + timedelta(hours=1))
    row = reload(vote)
    assert row.current_state == "approved" and row.state_data["votes"] == {"ann": "approve"}
    assert row.version == 3  # start, ann's vote, the close — ben's vote is not recorded


def test_double_vote_is_refused():
    vote = consensus(REVIEWERS)
    fire(vote, "vote", voter("ann"), params={"vote": "approve"})
    before = snapshot(vote)
    refused(WE.FORBIDDEN, "already voted", fire, vote, "vote", voter("ann"), params={"vote": "reject"})
    refused(WE.FORBIDDEN, "already voted", fire, vote, "vote", voter("ann"), params={"vote": "approve"})
    assert snapshot(vote) == before
    assert services.allowed_events(reload(vote), voter("ann")) == []
    assert [e.name for e in services.allowed_events(reload(vote), voter("ben"))] == ["vote"]


@pytest.mark.parametrize("actor", [NOBODY, RISK, Actor("ann2"), Actor("ANN")], ids=lambda a: a.name)
def test_non_reviewer_vote_is_refused(actor):
    vote = consensus(REVIEWERS)
    before = snapshot(vote)
    refused(WE.FORBIDDEN, "Only the named reviewers", fire, vote, "vote", actor, params={"vote": "approve"})
    assert snapshot(vote) == before
    assert services.allowed_events(reload(vote), actor) == []


@pytest.mark.parametrize("params, text", [({}, "vote is required"), ({"vote": "abstain"}, "vote must be one of"),
                                          ({"vote": "approve", "weight": 2}, "takes no parameter")])
def test_malformed_vote_is_refused(params, text):
    vote = consensus(REVIEWERS)
    before = snapshot(vote)
    refused(WE.INVALID, text, fire, vote, "vote", voter("ann"), params=params)
    assert snapshot(vote) == before


def test_only_the_system_closes_a_consensus():
    vote = consensus(REVIEWERS)
    refused(WE.FORBIDDEN, "needs the role system", fire, vote, "close", RISK)


@pytest.mark.parametrize("changes, text", [
    ({"reviewers": []}, "name at least one reviewer"),
    ({"reviewers": ["", "  "]}, "name at least one reviewer"),
    ({"quorum": 0}, "quorum must be between 1 and"),
    ({"quorum": 4}, "quorum must be between 1 and"),
    ({"approval_threshold": 0}, "approval_threshold"),
    ({"approval_threshold": 1.5}, "approval_threshold"),
    ({"deadline": "past"}, "deadline must be in the future"),
    ({"subject": "  "}, "subject is required"),
])
def test_start_consensus_validates_its_spec(changes, text):
    now = utcnow()
    values = {"subject": "s", "reviewers": REVIEWERS, "quorum": 2, "approval_threshold": 0.5,
              "deadline": now + timedelta(days=1)}
    values.update(changes)
    if values["deadline"] == "past":
        values["deadline"] = now - timedelta(seconds=1)
    counts = db_counts()
    refused(WE.INVALID, text, services.start_consensus, services.ConsensusSpec(**values), actor=NOBODY, now=now)
    assert db_counts() == counts


def test_duplicate_reviewers_count_once():
    vote = consensus(["ann", "ann ", "ben"], quorum=2)
    assert reload(vote).state_data["reviewers"] == ["ann", "ben"]


# --- what each actor is offered --------------------------------------------------------------

@pytest.mark.parametrize("actor, offered", [
    (RISK, ["approve", "reject", "request_override"]),
    (SECURITY, ["request_override"]),
    (BOTH, ["approve", "reject", "request_override"]),
    (NOBODY, []),
])
def test_allowed_events_for_a_proposal_in_review(actor, offered):
    assert [e.name for e in services.allowed_events(reload(submit(ESCALATE)), actor)] == offered


@pytest.mark.parametrize("actor, pending, partial", [
    (RISK, ["approve", "reject"], ["reject"]),             # rita gave the first approval
    (RISK_2, ["approve", "reject"], ["reject"]),           # another risk lead: role already used
    (SECURITY, ["approve", "reject"], ["approve", "reject"]),
    (NOBODY, [], []),
])
def test_allowed_events_for_an_override(actor, pending, partial):
    _, override = new_override()
    assert [e.name for e in services.allowed_events(reload(override), actor)] == pending
    fire(override, "approve", RISK, comment="first")
    assert [e.name for e in services.allowed_events(reload(override), actor)] == partial
