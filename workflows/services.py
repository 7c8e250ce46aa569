"""Workflow verbs. The only code that changes workflow state: each verb runs in one
transaction, locks the workflow row, checks the machine's sources, roles and guards,
appends the hash-chained transition and writes the checkpoint, all or nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance import telemetry
from governance.signals import send_after_commit
from ledger import services as ledger

from .chain import checkpoint_hash, transition_hash
from .machines import MACHINES, Actor, Context, Effect, Event, Machine, override_binding_hash
from .persistence.models import GENESIS_HASH, WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from .roles import ROLE_GROUPS
from .serialization import utc_iso
from .signals import workflow_transitioned
from .snapshot import checkpoint_data_of

START_EVENT = "start"
OVERRIDE_OUTCOMES = {"approved": telemetry.Event.OVERRIDE_APPROVED, "rejected": telemetry.Event.OVERRIDE_REJECTED,
                     "expired": telemetry.Event.OVERRIDE_EXPIRED}


class WorkflowError(Exception):
    """A refused or impossible workflow operation; `code` says which kind."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    INVALID = "invalid"

    def __init__(self, message: str, code: str = CONFLICT):
        super().__init__(message)
        self.message = message
        self.code = code


def actor_for(user) -> Actor:
    """The Actor for a Django user: id, username, and the roles its groups carry."""
    groups = set(user.groups.values_list("name", flat=True))
    roles = frozenset(role for role, group in ROLE_GROUPS.items() if group in groups)
    return Actor(name=user.get_username(), id=user.pk, roles=roles)


def _append(workflow: WorkflowInstance, machine: Machine, *, event: str, from_state: str, effect: Effect,
            actor: Actor, comment: str, request_id: str, now: datetime, prev_hash: str) -> WorkflowTransition:
    """Append one transition and its checkpoint; the caller holds the row lock."""
    seq = workflow.version + 1
    payload = {"event": event, "actor_id": actor.id, "request_id": request_id, **effect.payload}
    transition = WorkflowTransition(
        workflow=workflow, seq=seq, from_state=from_state, to_state=effect.target,
        triggered_by=actor.name, reason=comment, payload=payload, created_at=now, prev_hash=prev_hash)
    transition.hash = transition_hash(
        workflow_id=workflow.workflow_id, seq=seq, from_state=from_state, to_state=effect.target,
        triggered_by=actor.name, reason=comment, payload=payload, created_at=now, prev_hash=prev_hash)
    transition.save(force_insert=True)
    ledger.record_many(ledger.transition_items(workflow.workflow_id, [transition]))
    workflow.current_state = effect.target
    workflow.status = machine.status_of(effect.target)
    workflow.state_data = effect.data
    workflow.version = seq
    workflow.updated_at = now
    workflow.save(update_fields=["current_state", "status", "state_data", "version", "updated_at"])
    data = checkpoint_data_of(workflow)
    WorkflowCheckpoint.objects.create(workflow=workflow, seq=seq, checkpoint_data=data,
                                      hash=checkpoint_hash(data), created_at=now, created_by=actor.name)
    telemetry.emit(telemetry.Event.WORKFLOW_TRANSITION, actor=actor.name, subject=str(workflow.workflow_id),
                   request_id=request_id,
         data={"workflow_type": workflow.workflow_type, "event": event, "from_state": from_state,
               "to_state": effect.target, "seq": seq})
    send_after_commit(workflow_transitioned, workflow_id=str(workflow.workflow_id),
                      workflow_type=workflow.workflow_type, from_state=from_state, to_state=effect.target, seq=seq)
    return transition


def start_workflow(workflow_type: str, *, actor: Actor, data: dict[str, Any], customer=None,
                   comment: str = "", request_id: str = "", now: datetime | None = None) -> WorkflowInstance:
    """Create a workflow in its machine's initial state; the creation is transition 1."""
    machine = MACHINES[workflow_type]
    now = now or timezone.now()
    with transaction.atomic():
        workflow = WorkflowInstance.objects.create(
            workflow_type=workflow_type, current_state="", status=machine.status_of(machine.initial),
            state_data={}, version=0, customer=customer, created_at=now, updated_at=now)
        ledger.record(*ledger.workflow_item(workflow))
        _append(workflow, machine, event=START_EVENT, from_state="", effect=Effect(machine.initial, data),
                actor=actor, comment=comment, request_id=request_id, now=now, prev_hash=GENESIS_HASH)
    return workflow


def lock_workflow(workflow_id) -> WorkflowInstance:
    """The workflow row, locked until the surrounding transaction ends."""
    try:
        return WorkflowInstance.objects.select_for_update().get(workflow_id=workflow_id)
    except (WorkflowInstance.DoesNotExist, ValueError, TypeError, ValidationError):
        raise WorkflowError(f"No workflow {workflow_id}", WorkflowError.NOT_FOUND) from None


def _last_hash(workflow: WorkflowInstance) -> str:
    if workflow.version == 0:
        return GENESIS_HASH
    return WorkflowTransition.objects.filter(workflow=workflow, seq=workflow.version).values_list(
        "hash", flat=True).get()


def fire_locked(workflow: WorkflowInstance, event_name: str, *, actor: Actor, comment: str,
                 params: dict[str, Any], request_id: str, now: datetime, trusted: bool = True) -> WorkflowTransition:
    """Fire an event on a workflow the caller has locked (`lock_workflow`) inside its own
    transaction; `trusted` callers (service verbs) may pass internal params."""
    machine = MACHINES[workflow.workflow_type]
    event = machine.events.get(event_name)
    if event is None:
        raise WorkflowError(f"{machine.label} workflows have no event {event_name!r}", WorkflowError.INVALID)
    if workflow.current_state not in event.sources:
        raise WorkflowError(f"Cannot {event.label.lower()} a {machine.label.lower()} workflow in state "
                            f"{workflow.current_state!r}", WorkflowError.CONFLICT)
    if event.roles and not (event.roles & actor.roles):
        needed = " or ".join(sorted(event.roles))
        raise WorkflowError(f"{event.label} needs the role {needed}", WorkflowError.FORBIDDEN)
    if event.requires_comment and not comment.strip():
        raise WorkflowError(f"{event.label} needs a comment", WorkflowError.INVALID)
    params = _checked_params(event, params, trusted=trusted)
    ctx = Context(state=workflow.current_state, data=dict(workflow.state_data), actor=actor,
                  params=params, now=now)
    refusal = _refusal(event, ctx)
    if refusal:
        raise WorkflowError(refusal, WorkflowError.FORBIDDEN)
    effect = event.effect(ctx)
    assert effect.target in event.targets, (event_name, effect.target)
    transition = _append(workflow, machine, event=event_name, from_state=workflow.current_state, effect=effect,
                         actor=actor, comment=comment.strip(), request_id=request_id, now=now,
                         prev_hash=_last_hash(workflow))
    _after_transition(workflow, transition, now=now, request_id=request_id)
    return transition


def _checked_params(event: Event, params: dict[str, Any], *, trusted: bool) -> dict[str, Any]:
    """Only the declared params, each present if required and one of its choices; internal
    params only from the service layer itself (`trusted`)."""
    declared = {p.name: p for p in event.params if trusted or not p.internal}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise WorkflowError(f"{event.label} takes no parameter(s) {', '.join(unknown)}", WorkflowError.INVALID)
    checked = dict(params)
    for param in declared.values():
        value = params.get(param.name)
        if value in (None, ""):
            if param.required:
                raise WorkflowError(f"{param.name} is required for {event.label.lower()}", WorkflowError.INVALID)
            checked.pop(param.name, None)
        elif param.choices and value not in param.choices:
            raise WorkflowError(f"{param.name} must be one of {', '.join(param.choices)}", WorkflowError.INVALID)
    return checked


def _refusal(event: Event, ctx: Context) -> str | None:
    for guard in event.guards:
        refusal = guard(ctx)
        if refusal:
            return refusal
    return None


def allowed_events(workflow: WorkflowInstance, actor: Actor, *, now: datetime | None = None) -> list[Event]:
    """The events `actor` may fire on `workflow` now: what the pages and the API offer."""
    machine = MACHINES[workflow.workflow_type]
    ctx = Context(state=workflow.current_state, data=dict(workflow.state_data), actor=actor, params={},
                  now=now or timezone.now())
    return [event for event in machine.available_events(workflow.current_state)
            if not event.system_only and (not event.roles or event.roles & actor.roles)
            and _refusal(event, ctx) is None]


def perform(workflow_id, event_name: str, *, actor: Actor, comment: str = "",
            params: dict[str, Any] | None = None, request_id: str = "") -> WorkflowInstance:
    """What a person's button or API call does: fire the event, through the verb that owns
    it where one does (a requested override also creates the override workflow)."""
    if event_name == "request_override":
        request_override(workflow_id, actor=actor, justification=comment, request_id=request_id)
        return get_workflow(workflow_id)
    if WorkflowInstance.objects.filter(workflow_id=_as_uuid(workflow_id), workflow_type="calibration").exists():
        raise WorkflowError("Calibration proposals are approved, rejected, withdrawn and applied on the calibration "
                            "pages or through /api/calibration/proposals", WorkflowError.INVALID)
    return fire_event(workflow_id, event_name, actor=actor, comment=comment, params=params,
                      request_id=request_id)


def _as_uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def fire_event(workflow_id, event_name: str, *, actor: Actor, comment: str = "",
               params: dict[str, Any] | None = None, request_id: str = "",
               now: datetime | None = None) -> WorkflowInstance:
    """Fire `event_name` on a workflow as `actor`, or raise WorkflowError saying why not.
    A deadline that has passed is applied first, so an expired request cannot be approved."""
    now = now or timezone.now()
    expire_if_due(workflow_id, now=now)
    with transaction.atomic():
        workflow = lock_workflow(workflow_id)
        fire_locked(workflow, event_name, actor=actor, comment=comment, params=params or {},
                     request_id=request_id, now=now, trusted=False)
    return workflow


def expire_if_due(workflow_id, *, now: datetime | None = None) -> bool:
    """Fire the machine's timeout event if its deadline has passed; True if it fired."""
    now = now or timezone.now()
    with transaction.atomic():
        workflow = lock_workflow(workflow_id)
        machine = MACHINES[workflow.workflow_type]
        if machine.timeout_event is None or not machine.is_due(workflow.current_state, workflow.state_data, now):
            return False
        fire_locked(workflow, machine.timeout_event, actor=Actor.system("aegis-scheduler"), comment="",
                     params={}, request_id="", now=now)
    return True


def expire_due_workflows(*, now: datetime | None = None) -> int:
    """Apply every passed deadline (the periodic job); returns how many fired."""
    now = now or timezone.now()
    candidates = WorkflowInstance.objects.filter(
        workflow_type__in=[m.workflow_type for m in MACHINES.values() if m.timeout_event],
        status__in=["pending", "active"]).values_list("workflow_id", flat=True)
    return sum(expire_if_due(workflow_id, now=now) for workflow_id in list(candidates))


def get_workflow(workflow_id) -> WorkflowInstance:
    """Load a workflow for reading, applying a passed deadline first."""
    try:
        expire_if_due(workflow_id)
        return WorkflowInstance.objects.get(workflow_id=workflow_id)
    except (WorkflowInstance.DoesNotExist, ValueError, ValidationError):
        raise WorkflowError(f"No workflow {workflow_id}", WorkflowError.NOT_FOUND) from None


# --- consequences of reaching a state -------------------------------------------------------

def _after_transition(workflow: WorkflowInstance, transition: WorkflowTransition, *, now, request_id) -> None:
    """An override's outcome moves its proposal on, in the same transaction."""
    if workflow.workflow_type != "override" or transition.to_state not in {"approved", "rejected", "expired"}:
        return
    telemetry.emit(OVERRIDE_OUTCOMES[transition.to_state], actor=transition.triggered_by,
                   subject=str(workflow.workflow_id),
         request_id=request_id, data={"proposal_workflow_id": workflow.state_data["proposal_workflow_id"]})
    proposal = lock_workflow(workflow.state_data["proposal_workflow_id"])
    event = "override_granted" if transition.to_state == "approved" else "override_denied"
    if proposal.current_state == "override_requested":
        fire_locked(proposal, event, actor=Actor.system("aegis-override"),
                     comment=f"Override {workflow.workflow_id} {transition.to_state}", params={},
                     request_id=request_id, now=now)


# --- override verbs (proposal workflows are opened by governance.decisions) ----------------

def override_expiry() -> timedelta:
    return timedelta(hours=settings.AEGIS_OVERRIDE_EXPIRY_HOURS)


def request_override(proposal_workflow_id, *, actor: Actor, justification: str, request_id: str = "",
                     now: datetime | None = None) -> WorkflowInstance:
    """Hand a halted or escalated proposal to a two-key override; returns the override workflow."""
    now = now or timezone.now()
    with transaction.atomic():
        proposal = lock_workflow(proposal_workflow_id)
        if proposal.workflow_type != "proposal":
            raise WorkflowError("Only proposal workflows can be overridden", WorkflowError.INVALID)
        decision = proposal.state_data.get("decision") or {}
        failed = list(decision.get("failing_gates", []))
        data = {
            "proposal_workflow_id": str(proposal.workflow_id),
            "proposal_id": decision.get("decision_id", str(proposal.workflow_id)),
            "justification": justification.strip(),
            "failed_gates": failed,
            "requested_by": actor.name,
            "expires_at": utc_iso(now + override_expiry()),
            "approvals": [],
        }
        data["binding_hash"] = override_binding_hash(data["proposal_id"], data["justification"], failed)
        override = start_workflow("override", actor=actor, data=data, customer=proposal.customer,
                                  comment=justification, request_id=request_id, now=now)
        fire_locked(proposal, "request_override", actor=actor, comment=justification,
                     params={"override_workflow_id": str(override.workflow_id)}, request_id=request_id, now=now)
        telemetry.emit(telemetry.Event.OVERRIDE_REQUESTED, actor=actor.name, subject=str(override.workflow_id),
                       request_id=request_id,
             data={"proposal_workflow_id": str(proposal.workflow_id), "failed_gates": failed})
    return override


@dataclass(frozen=True)
class ConsensusSpec:
    subject: str
    reviewers: list[str]
    quorum: int
    approval_threshold: float
    deadline: datetime


def start_consensus(spec: ConsensusSpec, *, actor: Actor, customer=None, request_id: str = "",
                    now: datetime | None = None) -> WorkflowInstance:
    now = now or timezone.now()
    reviewers = list(dict.fromkeys(r.strip() for r in spec.reviewers if r and r.strip()))
    if not spec.subject.strip():
        raise WorkflowError("subject is required", WorkflowError.INVALID)
    if not reviewers:
        raise WorkflowError("reviewers: name at least one reviewer", WorkflowError.INVALID)
    if not 1 <= spec.quorum <= len(reviewers):
        raise WorkflowError(f"quorum must be between 1 and the number of reviewers ({len(reviewers)})",
                            WorkflowError.INVALID)
    if not 0 < spec.approval_threshold <= 1:
        raise WorkflowError("approval_threshold must be in (0, 1]", WorkflowError.INVALID)
    if spec.deadline <= now:
        raise WorkflowError("deadline must be in the future", WorkflowError.INVALID)
    data = {"subject": spec.subject.strip(), "reviewers": reviewers, "quorum": spec.quorum,
            "approval_threshold": spec.approval_threshold, "deadline": utc_iso(spec.deadline), "votes": {}}
    return start_workflow("consensus", actor=actor, data=data, customer=customer, request_id=request_id, now=now)
