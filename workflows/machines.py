"""The three workflow state machines, declared as data (PLATFORM.md §4).

Each machine lists its states (with their coarse status), its events (sources, possible
targets, the roles that may fire them, guards, whether a comment is required) and, where
time matters, the event the system fires when a deadline passes. `workflows.services`
is the only code that fires events; the pages, the API and docs/workflows.md read the
same declarations, so what a user is offered is exactly what the service allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from .chain import canonical_json, sha256_hex
from .persistence.models import WorkflowStatus
from .roles import Role
from .serialization import ensure_utc, utc_iso


@dataclass(frozen=True)
class Actor:
    """Who fires an event: a user (id + username) or a system actor, with its roles."""

    name: str
    id: int | None = None
    roles: frozenset[Role] = frozenset()

    @classmethod
    def system(cls, name: str = "aegis-engine") -> "Actor":
        return cls(name=name, roles=frozenset({Role.SYSTEM}))

    @property
    def identity(self) -> str:
        """Who this is, for "someone else" and "two different people" rules: a person by
        user id (a rename changes nothing), anyone else (an API key, a system actor, a
        seed-API caller naming itself) by name."""
        return f"user:{self.id}" if self.id is not None else f"name:{self.name}"


@dataclass
class Context:
    """What a guard or an event's effect sees: the workflow's state, the actor, the input."""

    state: str
    data: dict[str, Any]
    actor: Actor
    params: dict[str, Any]
    now: datetime


@dataclass(frozen=True)
class Effect:
    """An event's result: the target state, the new state_data and the transition payload."""

    target: str
    data: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)


Guard = Callable[[Context], "str | None"]  # a refusal message, or None to allow


@dataclass(frozen=True)
class State:
    name: str
    label: str
    status: WorkflowStatus
    terminal: bool = False


@dataclass(frozen=True)
class Param:
    """An input an event takes besides its comment (rendered as a form field)."""

    name: str
    label: str
    choices: tuple[str, ...] = ()  # empty: free text
    required: bool = True
    internal: bool = False  # supplied by the service layer, never by a person


@dataclass(frozen=True)
class Event:
    name: str
    label: str
    sources: frozenset[str]
    targets: frozenset[str]
    roles: frozenset[Role]  # empty: any signed-in user, subject to the guards
    effect: Callable[[Context], Effect]
    guards: tuple[Guard, ...] = ()
    requires_comment: bool = False
    params: tuple[Param, ...] = ()
    description: str = ""
    # Events only the system fires (engine results, deadlines, consequences) are never
    # offered to people.
    @property
    def system_only(self) -> bool:
        return self.roles == frozenset({Role.SYSTEM})


@dataclass(frozen=True)
class Machine:
    workflow_type: str
    label: str
    states: dict[str, State]
    initial: str
    events: dict[str, Event]
    # The event the system fires once `is_due` says a deadline has passed.
    timeout_event: str | None = None
    is_due: Callable[[str, dict[str, Any], datetime], bool] | None = None

    def status_of(self, state: str) -> WorkflowStatus:
        return self.states[state].status

    def available_events(self, state: str) -> list[Event]:
        return [event for event in self.events.values() if state in event.sources]


def _states(*states: State) -> dict[str, State]:
    return {state.name: state for state in states}


def _events(*events: Event) -> dict[str, Event]:
    return {event.name: event for event in events}


def _stay(ctx: Context, target: str, **payload: Any) -> Effect:
    return Effect(target=target, data=dict(ctx.data), payload=payload)


# --- proposal -----------------------------------------------------------------------------

# Engine status -> proposal state after evaluation.
PROPOSAL_STATE_BY_STATUS = {"proceed": "approved", "halt": "rejected", "pause": "in_review", "escalate": "in_review"}


def _record_evaluation(ctx: Context) -> Effect:
    decision = ctx.params["decision"]
    data = {**ctx.data, "decision": decision}
    return Effect(target=PROPOSAL_STATE_BY_STATUS[decision["status"]], data=data,
                  payload={"decision_id": decision["decision_id"], "status": decision["status"],
                           "failing_gates": decision["failing_gates"],
                           "config_version": decision.get("config_version")})


def _override_allowed(ctx: Context) -> str | None:
    decision = ctx.data.get("decision") or {}
    if "complexity" in decision.get("failing_gates", []):
        return "An override of a complexity failure is refused: redesign the proposal instead"
    if not decision.get("override_eligible"):
        return "This decision is not eligible for an override"
    if ctx.data.get("override_workflow_id"):
        return "An override was already requested for this decision"
    return None


def _submitted_by(ctx: Context) -> bool:
    return ctx.data.get("submitted_by_identity") == ctx.actor.identity


def _not_the_submitter(ctx: Context) -> str | None:
    if _submitted_by(ctx):
        return "Four eyes: a proposal you submitted is reviewed by someone else (you may withdraw it)"
    return None


def _only_the_submitter(ctx: Context) -> str | None:
    if not _submitted_by(ctx):
        return "Only the one who submitted a proposal may withdraw it"
    return None


def _record_override_request(ctx: Context) -> Effect:
    return Effect(target="override_requested", data={**ctx.data, "override_workflow_id": ctx.params["override_workflow_id"]},
                  payload={"override_workflow_id": ctx.params["override_workflow_id"]})


PROPOSAL = Machine(
    workflow_type="proposal",
    label="Proposal",
    initial="submitted",
    states=_states(
        State("submitted", "Submitted", WorkflowStatus.PENDING),
        State("in_review", "In review", WorkflowStatus.PENDING),
        State("override_requested", "Override requested", WorkflowStatus.ACTIVE),
        State("approved", "Approved", WorkflowStatus.COMPLETED, terminal=True),
        State("rejected", "Rejected", WorkflowStatus.REJECTED),
        State("withdrawn", "Withdrawn", WorkflowStatus.REJECTED, terminal=True),
    ),
    events=_events(
        Event("evaluate", "Evaluate", frozenset({"submitted"}),
              frozenset({"approved", "rejected", "in_review"}), frozenset({Role.SYSTEM}), _record_evaluation,
              params=(Param("decision", "Engine decision", internal=True),),
              description="The engine decides: proceed → approved, halt → rejected, pause/escalate → in review."),
        Event("approve", "Approve", frozenset({"in_review"}), frozenset({"approved"}),
              frozenset({Role.RISK_LEAD}), lambda ctx: _stay(ctx, "approved"), guards=(_not_the_submitter,),
              requires_comment=True,
              description="A risk lead (not the person who submitted it) approves a paused or escalated proposal."),
        Event("reject", "Reject", frozenset({"in_review"}), frozenset({"rejected"}),
              frozenset({Role.RISK_LEAD}), lambda ctx: _stay(ctx, "rejected"), guards=(_not_the_submitter,),
              requires_comment=True,
              description="A risk lead (not the person who submitted it) rejects a paused or escalated proposal."),
        Event("withdraw", "Withdraw", frozenset({"in_review"}), frozenset({"withdrawn"}), frozenset(),
              lambda ctx: _stay(ctx, "withdrawn"), guards=(_only_the_submitter,), requires_comment=True,
              description="The one who submitted a proposal in review takes it back; it will not proceed."),
        Event("request_override", "Request override", frozenset({"rejected", "in_review"}),
              frozenset({"override_requested"}), frozenset({Role.RISK_LEAD, Role.SECURITY_LEAD, Role.INTEGRATION}),
              _record_override_request, guards=(_override_allowed,), requires_comment=True,
              params=(Param("override_workflow_id", "Override workflow", internal=True),),
              description="Hand an override-eligible proposal (a gate failed, not complexity) to a two-key "
                          "override, once; the comment is the justification. The tenant's API key may ask too."),
        Event("override_granted", "Override granted", frozenset({"override_requested"}), frozenset({"approved"}),
              frozenset({Role.SYSTEM}), lambda ctx: _stay(ctx, "approved"),
              description="Fired when the override workflow is approved."),
        Event("override_denied", "Override denied", frozenset({"override_requested"}), frozenset({"rejected"}),
              frozenset({Role.SYSTEM}), lambda ctx: _stay(ctx, "rejected"),
              description="Fired when the override workflow is rejected or expires."),
    ),
)


# --- override -----------------------------------------------------------------------------

CUSTODIAN_ROLES = (Role.RISK_LEAD, Role.SECURITY_LEAD)


def is_recorded_person(actor: Actor, identity: str | None, name: str) -> bool:
    """Whether `actor` is the person a workflow recorded (as an approving custodian, as a
    calibration's proposer): by `Actor.identity` (user id, so a rename changes nothing and a
    new user given an old username is someone else). Records made before identities were
    stored carry only the name; for those the old rule, same name, still holds."""
    if identity is not None:
        return actor.identity == identity
    return actor.name == name


def override_binding_hash(proposal_id: str, justification: str, failed_gates: list[str]) -> str:
    """What each custodian's approval covers: SHA-256 of the canonical (proposal id,
    justification, failed gates). A change to any of them invalidates earlier approvals."""
    return sha256_hex(canonical_json({"proposal_id": str(proposal_id), "justification": justification,
                                      "failed_gates": list(failed_gates)}))


def _custodian_role(ctx: Context) -> Role | None:
    """The role the actor approves as: the one asked for, else the first custodian role
    they hold that has not approved yet."""
    held = [role for role in CUSTODIAN_ROLES if role in ctx.actor.roles]
    asked = ctx.params.get("role")
    if asked:
        return Role(asked) if asked in held else None
    given = {a["role"] for a in ctx.data.get("approvals", [])}
    return next((role for role in held if role not in given), held[0] if held else None)


def _custodian_guard(ctx: Context) -> str | None:
    role = _custodian_role(ctx)
    if role is None:
        return f"You do not hold the role {ctx.params.get('role')!r}"
    approvals = ctx.data.get("approvals", [])
    if any(is_recorded_person(ctx.actor, a.get("custodian_identity"), a["custodian_id"]) for a in approvals):
        return "The two approvals must come from two different people"
    if any(a["role"] == role for a in approvals):
        return f"The {role} approval is already given; the second approval must come from the other role"
    return None


def _binding_guard(ctx: Context) -> str | None:
    given = ctx.params.get("binding_hash")
    if given is not None and given != ctx.data["binding_hash"]:
        return "The override changed since you reviewed it (binding hash mismatch); review it again"
    return None


def _not_expired(ctx: Context) -> str | None:
    if ctx.now >= ensure_utc(ctx.data["expires_at"]):
        return "This override request has expired"
    return None


def _record_approval(ctx: Context) -> Effect:
    role = _custodian_role(ctx)
    approval = {"custodian_id": ctx.actor.name, "custodian_identity": ctx.actor.identity, "role": str(role),
                "binding_hash": ctx.data["binding_hash"], "approved_at": utc_iso(ctx.now)}
    approvals = [*ctx.data.get("approvals", []), approval]
    target = "approved" if len(approvals) == len(CUSTODIAN_ROLES) else "partial"
    return Effect(target=target, data={**ctx.data, "approvals": approvals}, payload=approval)


def _override_due(state: str, data: dict[str, Any], now: datetime) -> bool:
    return state in {"pending", "partial"} and now >= ensure_utc(data["expires_at"])


OVERRIDE = Machine(
    workflow_type="override",
    label="Override",
    initial="pending",
    states=_states(
        State("pending", "Pending", WorkflowStatus.PENDING),
        State("partial", "Partially approved", WorkflowStatus.ACTIVE),
        State("approved", "Approved", WorkflowStatus.COMPLETED, terminal=True),
        State("rejected", "Rejected", WorkflowStatus.REJECTED, terminal=True),
        State("expired", "Expired", WorkflowStatus.EXPIRED, terminal=True),
    ),
    events=_events(
        Event("approve", "Approve", frozenset({"pending", "partial"}), frozenset({"partial", "approved"}),
              frozenset(CUSTODIAN_ROLES), _record_approval, guards=(_not_expired, _custodian_guard, _binding_guard),
              requires_comment=True,
              params=(Param("role", "Approve as", tuple(CUSTODIAN_ROLES), required=False),
                      Param("binding_hash", "Binding hash you reviewed", required=False)),
              description="A custodian approves; the second must hold the other role and be another person."),
        Event("reject", "Reject", frozenset({"pending", "partial"}), frozenset({"rejected"}),
              frozenset(CUSTODIAN_ROLES), lambda ctx: _stay(ctx, "rejected"), guards=(_not_expired,),
              requires_comment=True, description="Either custodian rejects the override."),
        Event("expire", "Expire", frozenset({"pending", "partial"}), frozenset({"expired"}),
              frozenset({Role.SYSTEM}), lambda ctx: _stay(ctx, "expired"),
              description="Fired by the system once the request is older than AEGIS_OVERRIDE_EXPIRY_HOURS."),
    ),
    timeout_event="expire",
    is_due=_override_due,
)


# --- consensus ----------------------------------------------------------------------------

VOTE_CHOICES = ("approve", "reject")


def consensus_outcome(data: dict[str, Any]) -> str:
    """approved / rejected / no_quorum from the votes cast so far."""
    votes = data.get("votes", {})
    if len(votes) < data["quorum"]:
        return "no_quorum"
    approvals = sum(1 for vote in votes.values() if vote == "approve")
    return "approved" if approvals / len(votes) >= data["approval_threshold"] else "rejected"


def _named_reviewer(ctx: Context) -> str | None:
    if ctx.actor.name not in ctx.data["reviewers"]:
        return "Only the named reviewers of this consensus may vote"
    if ctx.actor.name in ctx.data.get("votes", {}):
        return "You have already voted; each reviewer votes once"
    return None


def _before_deadline(ctx: Context) -> str | None:
    if ctx.now >= ensure_utc(ctx.data["deadline"]):
        return "The voting deadline has passed"
    return None


def _record_vote(ctx: Context) -> Effect:
    votes = {**ctx.data.get("votes", {}), ctx.actor.name: ctx.params["vote"]}
    data = {**ctx.data, "votes": votes}
    target = consensus_outcome(data) if len(votes) == len(data["reviewers"]) else "voting"
    return Effect(target=target, data=data, payload={"reviewer": ctx.actor.name, "vote": ctx.params["vote"]})


def _close(ctx: Context) -> Effect:
    return _stay(ctx, consensus_outcome(ctx.data))


def _consensus_due(state: str, data: dict[str, Any], now: datetime) -> bool:
    return state == "voting" and now >= ensure_utc(data["deadline"])


CONSENSUS = Machine(
    workflow_type="consensus",
    label="Consensus",
    initial="voting",
    states=_states(
        State("voting", "Voting", WorkflowStatus.ACTIVE),
        State("approved", "Approved", WorkflowStatus.COMPLETED, terminal=True),
        State("rejected", "Rejected", WorkflowStatus.REJECTED, terminal=True),
        State("no_quorum", "No quorum", WorkflowStatus.EXPIRED, terminal=True),
    ),
    events=_events(
        Event("vote", "Vote", frozenset({"voting"}), frozenset({"voting", "approved", "rejected"}),
              frozenset(), _record_vote, guards=(_before_deadline, _named_reviewer),
              params=(Param("vote", "Vote", VOTE_CHOICES),),
              description="A named reviewer votes approve or reject, once; the last vote closes it."),
        Event("close", "Close", frozenset({"voting"}), frozenset({"approved", "rejected", "no_quorum"}),
              frozenset({Role.SYSTEM}), _close,
              description="Fired by the system at the deadline: the votes cast decide, or no quorum."),
    ),
    timeout_event="close",
    is_due=_consensus_due,
)


# --- calibration --------------------------------------------------------------------------

def _is_the_proposer(ctx: Context) -> bool:
    return is_recorded_person(ctx.actor, ctx.data.get("proposed_by_identity"), ctx.data["proposed_by"])


def _four_eyes_guard(message: str) -> Guard:
    def _four_eyes(ctx: Context) -> str | None:
        return message if _is_the_proposer(ctx) else None
    return _four_eyes


# Only a risk lead other than the proposer decides a proposal; the proposer withdraws it.
_four_eyes = _four_eyes_guard("Four eyes: the approver must be someone other than the proposer")
_four_eyes_on_reject = _four_eyes_guard("Four eyes: the proposer cannot reject their own proposal; withdraw it "
                                        "instead")


def _proposer_only(ctx: Context) -> str | None:
    if not _is_the_proposer(ctx):
        return "Only the proposer may withdraw a calibration proposal; a risk lead rejects it instead"
    return None


def _record_calibration_step(target: str) -> Callable[[Context], Effect]:
    def effect(ctx: Context) -> Effect:
        data = dict(ctx.data)
        payload: dict[str, Any] = {}
        if target == "approved":
            data.update(approver_id=ctx.actor.name, approved_at=utc_iso(ctx.now))
            payload = {"approver_id": ctx.actor.name, "content_hash": data["content_hash"]}
        elif target == "applied":
            data.update(applied_version=ctx.params["applied_version"], applied_at=utc_iso(ctx.now))
            payload = {"applied_version": ctx.params["applied_version"]}
        elif target == "stale":
            payload = {"active_value": ctx.params["active_value"]}
        return Effect(target=target, data=data, payload=payload)
    return effect


CALIBRATION = Machine(
    workflow_type="calibration",
    label="Calibration",
    initial="proposed",
    states=_states(
        State("proposed", "Proposed", WorkflowStatus.PENDING),
        State("approved", "Approved", WorkflowStatus.ACTIVE),
        State("applied", "Applied", WorkflowStatus.COMPLETED, terminal=True),
        State("rejected", "Rejected", WorkflowStatus.REJECTED, terminal=True),
        State("stale", "Stale", WorkflowStatus.EXPIRED, terminal=True),
        State("withdrawn", "Withdrawn", WorkflowStatus.REJECTED, terminal=True),
    ),
    events=_events(
        Event("approve", "Approve", frozenset({"proposed"}), frozenset({"approved"}), frozenset({Role.RISK_LEAD}),
              _record_calibration_step("approved"), guards=(_four_eyes,), requires_comment=True,
              description="A risk lead other than the proposer approves; the approval covers the proposal's "
                          "content hash."),
        Event("reject", "Reject", frozenset({"proposed", "approved"}), frozenset({"rejected"}),
              frozenset({Role.RISK_LEAD}), _record_calibration_step("rejected"), guards=(_four_eyes_on_reject,),
              requires_comment=True,
              description="A risk lead other than the proposer rejects the proposal, with the reason."),
        Event("withdraw", "Withdraw", frozenset({"proposed", "approved"}), frozenset({"withdrawn"}), frozenset(),
              _record_calibration_step("withdrawn"), guards=(_proposer_only,), requires_comment=True,
              description="The proposer takes the proposal back (never rejects it), with the reason; it can no "
                          "longer be approved or applied."),
        Event("apply", "Apply", frozenset({"approved"}), frozenset({"applied"}), frozenset(),
              _record_calibration_step("applied"),
              params=(Param("applied_version", "New configuration version", internal=True),),
              description="Creates exactly one new configuration version with the proposed value."),
        Event("mark_stale", "Mark stale", frozenset({"proposed", "approved"}), frozenset({"stale"}),
              frozenset({Role.SYSTEM}), _record_calibration_step("stale"),
              params=(Param("active_value", "Active value", internal=True),),
              description="Fired when the parameter changed after the proposal was made; it can no longer be "
                          "applied."),
    ),
)


MACHINES: dict[str, Machine] = {machine.workflow_type: machine
                                for machine in (PROPOSAL, CONSENSUS, OVERRIDE, CALIBRATION)}
