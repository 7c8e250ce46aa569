"""Decision verbs: store what the engine decided (opening, in the same transaction, the
review a person must act on), read back what people did with it, request the override a
decision offers, and review a paused or escalated one. The client endpoints, the /api/
views and the pages call these; none of them changes a decision or its workflow itself.

A stored decision never changes: `status`, gates and rationale stay the engine's answer.
What people did is its review workflow's state, read into `review_state`,
`effective_status` and `override` whenever the decision is shown.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Iterable

from django.db import transaction
from django.utils import timezone

from workflows import services as workflow_services
from workflows.machines import MACHINES, PROPOSAL, Actor
from workflows.persistence.models import WorkflowInstance
from workflows.roles import Role
from workflows.serialization import utc_iso
from workflows.services import WorkflowError

from . import rows
from .engine.gates import GATE_NAMES
from .engine.inputs import ProposalInput
from .engine.replay import pack_replay
from .models import ApiKey, Customer, Decision
from .sealing import decision_digest

REVIEWED_STATUSES = frozenset({"pause", "escalate", "halt"})
REVIEW_EVENTS = ("approve", "reject", "withdraw")  # what people do on a decision's review
JUSTIFICATION_MAX_LENGTH = 4000
OVERRIDE_EVENT = PROPOSAL.events["request_override"]


def key_actor(api_key: ApiKey) -> Actor:
    """The actor a tenant's API key acts as: it may ask for the override its decisions offer."""
    return Actor(name=f"api-key:{api_key.key_id}", roles=frozenset({Role.INTEGRATION}))


def needs_review(status: str, shadow: bool) -> bool:
    """A person must act on a non-shadow pause, escalate or halt."""
    return not shadow and status in REVIEWED_STATUSES


# --- recording ----------------------------------------------------------------------------

def record(proposal: ProposalInput, body: dict[str, Any], *, drift, customer: Customer | None,
           api_key: ApiKey | None, channel: str, actor: Actor, idempotency_key: str, request_id: str,
           now: datetime, open_workflow: bool) -> Decision:
    """Store the engine's answer `body`, with its review workflow when `open_workflow`.
    The caller holds the transaction: decision and workflow commit together or not at all."""
    workflow = None
    if open_workflow:
        workflow = _open_review(proposal, body, actor=actor, customer=customer, request_id=request_id, now=now)
    decision = Decision(
        decision_id=body["decision_id"], customer=customer, api_key=api_key, channel=channel, created_at=now,
        status=body["status"], shadow=proposal.shadow_mode, config_version=body["config_version"],
        idempotency_key=idempotency_key, request_id=request_id,
        review_workflow_id=workflow.workflow_id if workflow is not None else None,
        **_decision_columns(proposal, drift, body["status"]), response=body)
    decision.workflow = workflow
    decision.content_hash = decision_digest(decision)
    return rows.insert(decision)


def _open_review(proposal: ProposalInput, body: dict[str, Any], *, actor: Actor, customer, request_id: str,
                 now: datetime) -> WorkflowInstance:
    data = {"proposal": _proposal_data(proposal), "submitted_by": actor.name,
            "submitted_by_identity": actor.identity}
    workflow = workflow_services.start_workflow("proposal", actor=actor, data=data, customer=customer,
                                                request_id=request_id, now=now)
    # A row created in this transaction: nobody else can see it, so no lock is needed.
    workflow_services.fire_locked(workflow, "evaluate", actor=Actor.system(), comment="", params={"decision": body},
                                  request_id=request_id, now=now)
    return workflow


def _proposal_data(proposal: ProposalInput) -> dict[str, Any]:
    data = {name: getattr(proposal, name) for name in proposal.__dataclass_fields__}
    data["quality_subscores"] = list(proposal.quality_subscores)
    data["utility_result"] = (None if proposal.utility_result is None else
                              {"mean": proposal.utility_result.mean, "std_error": proposal.utility_result.std_error})
    for name in ("drift_baseline_data", "drift_current_data"):
        data[name] = _as_list(data[name])
    return data


def _decision_columns(proposal: ProposalInput, drift, status: str) -> dict[str, Any]:
    utility = proposal.utility_result
    return {
        "proposal_summary": proposal.proposal_summary,
        "agent_id": proposal.agent_id,
        "session_id": proposal.session_id,
        "metadata": proposal.metadata,
        "estimated_impact": proposal.estimated_impact,
        "requires_human_approval": proposal.requires_human_approval,
        "risk_baseline": proposal.risk_baseline,
        "risk_proposed": proposal.risk_proposed,
        "profit_baseline": proposal.profit_baseline,
        "profit_proposed": proposal.profit_proposed,
        "novelty_score": proposal.novelty_score,
        "complexity_score": proposal.complexity_score,
        "quality_score": proposal.quality_score,
        "has_zero_subscore": any(s == 0.0 for s in proposal.quality_subscores),
        "utility_mean": utility.mean if utility else None,
        "utility_std_error": utility.std_error if utility else None,
        "drift_status": drift.status if drift is not None else "",
        "replay_vector": pack_replay(proposal, status, drift.kl_divergence if drift is not None else None),
        "request_data": {
            "phase": proposal.phase,
            "change_type": proposal.change_type,
            "quality_subscores": list(proposal.quality_subscores),
            "time_sensitive": proposal.time_sensitive,
            "reversible": proposal.reversible,
            "shadow_mode": proposal.shadow_mode,
            "drift_baseline_data": _as_list(proposal.drift_baseline_data),
            "drift_current_data": _as_list(proposal.drift_current_data),
        },
    }


def _as_list(values):
    return None if values is None else list(values)


# --- reading ------------------------------------------------------------------------------

def find_by_decision_id(rows, decision_id, *, customer: Customer | None, what: str):
    """The row of `rows` whose `decision_id` is `decision_id` (any spelling of a UUID). With
    `customer` (a tenant's key) only that tenant's rows exist: another tenant's id answers
    exactly like a missing one (WorkflowError NOT_FOUND). Without it (a signed-in person)
    every row is visible."""
    try:
        wanted = uuid.UUID(str(decision_id))
    except ValueError:
        wanted = None
    if customer is not None:
        rows = rows.filter(customer=customer)
    found = rows.filter(decision_id=wanted).first() if wanted else None
    if found is None:
        raise WorkflowError(f"No {what} {decision_id}", WorkflowError.NOT_FOUND)
    return found


def find(decision_id, *, customer: Customer | None) -> Decision:
    """A decision by id, scoped to `customer` as `find_by_decision_id` says."""
    return find_by_decision_id(Decision.objects.select_related("customer", "api_key"), decision_id,
                               customer=customer, what="decision")


def attach_workflows(decisions: list[Decision]) -> list[Decision]:
    """Load the review workflows of many decisions in one query."""
    wanted = [d.review_workflow_id for d in decisions if d.review_workflow_id is not None]
    found = {w.workflow_id: w for w in WorkflowInstance.objects.filter(workflow_id__in=wanted)} if wanted else {}
    for decision in decisions:
        decision.workflow = found.get(decision.review_workflow_id)
    return decisions


def overrides_of(decisions: Iterable[Decision]) -> dict[str, WorkflowInstance]:
    """The override workflow of each decision that has one, by the decision's workflow id;
    a passed deadline is applied first, so an expired request shows as expired."""
    wanted = {str(d.workflow.workflow_id): d.workflow.state_data.get("override_workflow_id")
              for d in decisions if d.workflow is not None}
    wanted = {proposal: override for proposal, override in wanted.items() if override}
    if not wanted:
        return {}
    found = {str(w.workflow_id): w for w in WorkflowInstance.objects.filter(workflow_id__in=wanted.values())}
    now = timezone.now()
    machine = MACHINES["override"]
    for override_id, override in list(found.items()):
        if machine.is_due(override.current_state, override.state_data, now):
            workflow_services.expire_if_due(override_id, now=now)
            found[override_id] = WorkflowInstance.objects.get(workflow_id=override_id)
    return {proposal: found[override] for proposal, override in wanted.items() if override in found}


def effective_status(decision: Decision) -> str:
    """The status after people acted: an approved review or override → proceed; a
    rejection, a withdrawal, a denied or expired override → halt; otherwise the engine's."""
    state = decision.workflow.current_state if decision.workflow is not None else None
    if state == "approved":
        return "proceed"
    if state in ("rejected", "withdrawn"):
        return "halt"
    return decision.status


def review_fields(decision: Decision, override: WorkflowInstance | None) -> dict[str, Any]:
    """The keys beyond the hosted service's Decision (the official client ignores them)."""
    workflow = decision.workflow
    return {"workflow_id": str(workflow.workflow_id) if workflow is not None else None,
            "review_state": workflow.current_state if workflow is not None else None,
            "effective_status": effective_status(decision),
            "override": override_view(override) if override is not None else None}


def override_view(override: WorkflowInstance) -> dict[str, Any]:
    data = override.state_data
    terminal = MACHINES["override"].states[override.current_state].terminal
    return {"workflow_id": str(override.workflow_id), "status": override.current_state,
            "requested_at": utc_iso(override.created_at), "expires_at": data["expires_at"],
            "decided_at": utc_iso(override.updated_at) if terminal else None,
            "approvals": [{"role": a["role"], "at": a["approved_at"]} for a in data.get("approvals", [])]}


def as_json(decisions: list[Decision]) -> list[dict[str, Any]]:
    """Each decision's Decision JSON: the engine's stored answer plus what people did."""
    overrides = overrides_of(attach_workflows(decisions))
    return [{**d.response, "gates": _in_engine_order(d.response["gates"]),
             **review_fields(d, overrides.get(str(d.workflow.workflow_id)) if d.workflow else None)}
            for d in decisions]


def _in_engine_order(gates: dict[str, Any]) -> dict[str, Any]:
    """The gates as the engine listed them (PostgreSQL's jsonb stores keys in its own order)."""
    return {name: gates[name] for name in GATE_NAMES if name in gates}


# --- acting -------------------------------------------------------------------------------

def override_refusal(decision: Decision) -> str | None:
    """Why no override can be requested for `decision` now, or None if one can."""
    workflow = decision.workflow
    if decision.shadow:
        return "Shadow decisions are recorded only; they never open an override"
    if workflow is None or decision.status == "proceed":
        return "This decision proceeded; there is nothing to override"
    failing = decision.response.get("failing_gates", [])
    if "complexity" in failing:
        return "An override of a complexity failure is refused: redesign the proposal instead"
    if not decision.response.get("override_eligible"):
        return (f"A {decision.status} decision is not eligible for an override (only a failed gate other than "
                f"complexity is); a risk lead reviews it instead")
    if workflow.state_data.get("override_workflow_id"):
        return f"An override of this decision was already requested (workflow {workflow.state_data['override_workflow_id']})"
    if workflow.current_state not in OVERRIDE_EVENT.sources:
        label = PROPOSAL.states[workflow.current_state].label.lower()
        return f"The review of this decision is closed ({label}); an override can no longer be requested"
    return None


def checked_justification(justification: Any) -> str:
    if not isinstance(justification, str) or not justification.strip():
        raise WorkflowError("justification is required: say why the decision should be overridden",
                            WorkflowError.INVALID)
    text = justification.strip()
    if len(text) > JUSTIFICATION_MAX_LENGTH:
        raise WorkflowError(f"justification must be at most {JUSTIFICATION_MAX_LENGTH} characters, got {len(text)}",
                            WorkflowError.INVALID)
    return text


def request_override(decision_id, *, actor: Actor, customer: Customer | None, justification: Any,
                     request_id: str = "") -> dict[str, Any]:
    """Open the two-key override a decision offers (once); returns its summary."""
    text = checked_justification(justification)
    if not OVERRIDE_EVENT.roles & actor.roles:
        raise WorkflowError("Requesting an override needs the role risk_lead or security_lead, or the tenant's "
                            "API key", WorkflowError.FORBIDDEN)
    with transaction.atomic():
        decision = find(decision_id, customer=customer)
        if decision.review_workflow_id is not None:
            decision.workflow = workflow_services.lock_workflow(decision.review_workflow_id)
        refusal = override_refusal(decision)
        if refusal:
            raise WorkflowError(refusal, WorkflowError.CONFLICT)
        override = workflow_services.request_override(decision.workflow.workflow_id, actor=actor,
                                                      justification=text, request_id=request_id)
    return {"decision_id": str(decision.decision_id), "workflow_id": str(override.workflow_id),
            "status": override.current_state, "expires_at": override.state_data["expires_at"],
            "binding_hash": override.state_data["binding_hash"]}


def act(decision_id, event: str, *, actor: Actor, comment: str, customer: Customer | None = None,
        request_id: str = "") -> Decision:
    """Approve, reject (a risk lead, not the submitter) or withdraw (the submitter) a
    decision's open review; the state machine says who may and when."""
    if event not in REVIEW_EVENTS:
        raise WorkflowError(f"event must be one of {', '.join(REVIEW_EVENTS)}", WorkflowError.INVALID)
    decision = find(decision_id, customer=customer)
    if decision.workflow is None:
        raise WorkflowError("This decision opened no review (it proceeded, or it is a shadow decision)",
                            WorkflowError.CONFLICT)
    workflow_services.fire_event(decision.workflow.workflow_id, event, actor=actor, comment=comment,
                                 request_id=request_id)
    return find(decision_id, customer=customer)

