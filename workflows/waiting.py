"""What waits for a person, and what each workflow row is about: pure reads (nothing here
changes state) shared by the home page, the navigation count and the inbox.

A workflow waits for someone when its machine lets them fire the event that moves it on
(WAITING_EVENT) now: the same `services.allowed_events` the pages and the API offer, so
a row appears exactly when the page it links to lets this person act. The database is
asked only for the types, states and roles the machines declare for those events; the
guards (four eyes, two different custodians, named reviewers, deadlines) run here.

Queries are bounded whatever the number of rows: one for the candidates (with their
tenants), one for the decisions behind proposal and override rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from governance.models import Customer, Decision

from . import services
from .machines import CUSTODIAN_ROLES, MACHINES, Actor, Event
from .persistence.models import WorkflowInstance
from .serialization import TimestampError, ensure_utc

# workflow type -> the event that means "this waits for you" (its other events, such as
# rejecting an override one has signed or withdrawing one's own proposal, do not).
WAITING_EVENT = {"proposal": "approve", "override": "approve", "consensus": "vote", "calibration": "approve"}
KIND = {"proposal": "Decision review", "override": "Override signature", "consensus": "Consensus vote",
        "calibration": "Calibration approval"}
# The oldest this many candidates are considered (per person, per page): a backlog larger
# than that is a problem the page cannot hide, and reading more would slow every page.
CANDIDATE_LIMIT = 500


def role_label(role) -> str:
    return str(role).replace("_", " ")


# --- what waits ---------------------------------------------------------------------------

def _candidates(actor: Actor):
    """Open workflows in a state where the waiting event may fire, of the types whose event
    this actor holds a role for (oldest first)."""
    wanted = Q()
    for workflow_type, event_name in WAITING_EVENT.items():
        event = MACHINES[workflow_type].events[event_name]
        if event.roles and not event.roles & actor.roles:
            continue
        wanted |= Q(workflow_type=workflow_type, current_state__in=sorted(event.sources))
    if not wanted:
        return WorkflowInstance.objects.none()
    return (WorkflowInstance.objects.filter(wanted).select_related("customer")
            .order_by("updated_at", "id")[:CANDIDATE_LIMIT])


def waiting_for(actor: Actor, *, now: datetime | None = None) -> list[tuple[WorkflowInstance, list[Event]]]:
    """(workflow, every event the actor may fire on it) for each workflow waiting for them."""
    now = now or timezone.now()
    found = []
    for workflow in _candidates(actor):
        events = services.allowed_events(workflow, actor, now=now)
        if any(event.name == WAITING_EVENT[workflow.workflow_type] for event in events):
            found.append((workflow, events))
    return found


def waiting_for_request(request) -> list[tuple[WorkflowInstance, list[Event]]]:
    """`waiting_for` the signed-in user, computed once per request (the navigation count and
    the page itself share it)."""
    cached = getattr(request, "_aegis_waiting", None)
    if cached is None:
        cached = waiting_for(actor_of_request(request))
        request._aegis_waiting = cached
    return cached


def actor_of_request(request) -> Actor:
    """`services.actor_for` the signed-in user, once per request."""
    actor = getattr(request, "_aegis_actor", None)
    if actor is None:
        actor = request._aegis_actor = services.actor_for(request.user)
    return actor


# --- what each row is about ---------------------------------------------------------------

@dataclass
class Row:
    """One workflow as a list row: what it is, for which tenant, the numbers that matter,
    how long it has waited and until when, what it still needs, and THE page to act on it."""

    workflow: WorkflowInstance
    kind: str
    tenant: str
    summary: str
    link: str  # where one acts on it
    record: str  # its own page with the audit timeline (a calibration's review page has both)
    since: datetime
    deadline: datetime | None = None
    numbers: list[str] = field(default_factory=list)
    needs: str = ""
    blocked: str = ""  # why nobody can move it on (a complexity halt), from the decision itself
    decision: Decision | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def event_labels(self) -> str:
        return ", ".join(event.label for event in self.events)


def decisions_of(workflows: Iterable[WorkflowInstance]) -> dict[str, Decision]:
    """The decision each proposal workflow reviews and each override workflow would let
    proceed, by the workflow's id, in one query: both are found by the decision's
    `review_workflow_id` (an override names its proposal workflow in its state)."""
    review_ids = {}
    for workflow in workflows:
        if workflow.workflow_type == "proposal":
            review_ids[str(workflow.workflow_id)] = str(workflow.workflow_id)
        elif workflow.workflow_type == "override":
            review_ids[str(workflow.workflow_id)] = str(workflow.state_data.get("proposal_workflow_id", ""))
    wanted = set()
    for value in review_ids.values():
        try:
            wanted.add(uuid.UUID(value))
        except ValueError:
            continue
    if not wanted:
        return {}
    found = {str(d.review_workflow_id): d for d in Decision.objects.filter(review_workflow_id__in=wanted)
             .select_related("customer").defer("metadata", "session_id", "replay_vector", "request_data")}
    return {workflow_id: found[review] for workflow_id, review in review_ids.items() if review in found}


def rows_of(workflows: Iterable[WorkflowInstance], *, staff: bool,
            events: dict[str, list[Event]] | None = None) -> list[Row]:
    """A Row for each workflow; `events` (by workflow id) are what the reader may do on it.
    `staff` readers are sent to the decision page of a decision review (staff only)."""
    workflows = list(workflows)
    found = decisions_of(workflows)
    events = events or {}
    return [_row(w, found.get(str(w.workflow_id)), staff=staff, events=events.get(str(w.workflow_id), []))
            for w in workflows]


def waiting_rows(request) -> list[Row]:
    """The rows of what waits for the signed-in user."""
    waiting = waiting_for_request(request)
    return rows_of([workflow for workflow, _ in waiting], staff=request.user.is_staff,
                   events={str(workflow.workflow_id): events for workflow, events in waiting})


def _row(workflow: WorkflowInstance, decision: Decision | None, *, staff: bool, events: list[Event]) -> Row:
    data = workflow.state_data
    tenant = _tenant_name(decision.customer if decision is not None and decision.customer else workflow.customer)
    waits = any(event.name == WAITING_EVENT[workflow.workflow_type] for event in events)
    kind = KIND[workflow.workflow_type] if waits else MACHINES[workflow.workflow_type].label
    own_page = reverse("workflows:detail", args=[workflow.workflow_id])
    row = Row(workflow=workflow, kind=kind, tenant=tenant, summary="", link=own_page, record=own_page,
              since=workflow.updated_at,
              decision=decision, events=events)
    build = {"proposal": _proposal, "override": _override, "consensus": _consensus, "calibration": _calibration}
    build[workflow.workflow_type](row, data, staff=staff)
    return row


def _tenant_name(customer: Customer | None) -> str:
    return customer.name if customer is not None else ""


def _g(value: Any) -> str:
    return format(value, "g") if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def decision_numbers(decision: Decision) -> list[str]:
    """The decision's status, risk and profit, and each failing gate with its value."""
    gates = decision.response.get("gates") or {}
    numbers = [f"engine: {decision.status}",
               f"risk {_g(decision.risk_baseline)} → {_g(decision.risk_proposed)}",
               f"profit {_g(decision.profit_baseline)} → {_g(decision.profit_proposed)}"]
    for name in decision.response.get("failing_gates", []):
        gate = gates.get(name) or {}
        numbers.append(f"{name} {_g(gate.get('value', '?'))} (threshold {_g(gate.get('threshold', '?'))}) failed")
    return numbers


def _proposal(row: Row, data: dict[str, Any], *, staff: bool) -> None:
    decision = row.decision
    if decision is None:
        row.summary = (data.get("proposal") or {}).get("proposal_summary", "")
        return
    row.summary = decision.proposal_summary
    row.numbers = decision_numbers(decision)
    if staff:
        row.link = reverse("decisions:detail", args=[decision.decision_id])
    if row.workflow.current_state == "in_review":
        row.needs = "needs a risk lead's review (someone other than the submitter)"
    elif row.workflow.current_state == "override_requested":
        row.needs = "an override is requested: it needs its two signatures"
    response = decision.response
    if decision.status == "halt" and not response.get("override_eligible") and not decision.shadow:
        row.blocked = "; ".join(response.get("next_steps") or []) or response.get("rationale", "")


def _override(row: Row, data: dict[str, Any], *, staff: bool) -> None:
    decision = row.decision
    row.summary = f"Override of: {decision.proposal_summary if decision is not None else data.get('proposal_id', '')}"
    row.deadline = _when(data.get("expires_at"))
    approvals = data.get("approvals", [])
    if decision is not None:
        row.numbers = decision_numbers(decision)
    row.numbers.append("signed: " + (", ".join(f"{role_label(a['role'])} ({a['custodian_id']})" for a in approvals)
                                     or "nobody yet"))
    given = {a["role"] for a in approvals}
    missing = [role_label(role) for role in CUSTODIAN_ROLES if str(role) not in given]
    if row.workflow.current_state in ("pending", "partial") and missing:
        row.needs = f"needs a {' and a '.join(missing)} signature"


def _consensus(row: Row, data: dict[str, Any], *, staff: bool) -> None:
    votes, reviewers = data.get("votes", {}), data.get("reviewers", [])
    row.summary = data.get("subject", "")
    row.deadline = _when(data.get("deadline"))
    approving = sum(1 for vote in votes.values() if vote == "approve")
    row.numbers = [f"{len(votes)} of {len(reviewers)} voted ({approving} approve)",
                   f"quorum {data.get('quorum')}, approval ≥ {_g(data.get('approval_threshold'))}"]
    still = [name for name in reviewers if name not in votes]
    if row.workflow.current_state == "voting" and still:
        row.needs = f"waiting for the votes of {', '.join(still)}"


def _calibration(row: Row, data: dict[str, Any], *, staff: bool) -> None:
    row.tenant = "every tenant (global configuration)"
    row.summary = data.get("justification", "")
    if data.get("proposal_id"):
        row.link = row.record = reverse("calibration:review", args=[data["proposal_id"]])
    row.numbers = [f"{data.get('parameter', '?')} {_g(data.get('current_value', '?'))} → "
                   f"{_g(data.get('proposed_value', '?'))}"]
    row.numbers += [f"{name} {_g(change['from'])} → {_g(change['to'])}"
                    for name, change in sorted((data.get("companion_changes") or {}).items())]
    row.numbers.append(f"proposed by {data.get('proposed_by', '?')} on configuration v{data.get('base_version', '?')}")
    if row.workflow.current_state == "proposed":
        row.needs = "needs a risk lead other than the proposer"
    elif row.workflow.current_state == "approved":
        row.needs = f"approved by {data.get('approver_id', '?')}; ready to apply"


def _when(value) -> datetime | None:
    try:
        return ensure_utc(value) if value else None
    except TimestampError:
        return None
