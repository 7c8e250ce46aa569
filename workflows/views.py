"""Reviewer pages: my pending workflows, a workflow's timeline and the buttons I may press."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from governance import decisions as decision_verbs
from governance.models import Decision

from . import services
from .machines import MACHINES
from .persistence.durable import DurableWorkflowEngine
from .persistence.models import WorkflowInstance, WorkflowStatus

OPEN_STATUSES = (WorkflowStatus.PENDING, WorkflowStatus.ACTIVE)


@login_required
def inbox(request):
    actor = services.actor_for(request.user)
    open_workflows = (WorkflowInstance.objects.filter(status__in=OPEN_STATUSES).select_related("customer")
                      .order_by("updated_at"))
    waiting = [(workflow, events) for workflow in open_workflows[:500]
               if (events := services.allowed_events(workflow, actor))]
    rows = WorkflowInstance.objects.all()
    status, kind = request.GET.get("status", ""), request.GET.get("type", "")
    if status in WorkflowStatus.values:
        rows = rows.filter(status=status)
    if kind in MACHINES:
        rows = rows.filter(workflow_type=kind)
    page = Paginator(rows.select_related("customer"), 50).get_page(request.GET.get("page"))
    _say_what_each_is_about([workflow for workflow, _ in waiting] + list(page))
    return render(request, "workflows/inbox.html", {
        "waiting": waiting, "page": page, "status": status, "type": kind,
        "statuses": WorkflowStatus.values, "types": list(MACHINES)})


def decisions_of(workflows) -> dict[str, Decision]:
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


def _say_what_each_is_about(workflows) -> None:
    """Set `workflow.about` for the inbox rows: {text, tenant, decision_id, link}."""
    found = decisions_of(workflows)
    for workflow in workflows:
        decision = found.get(str(workflow.workflow_id))
        data = workflow.state_data
        about = {"text": "", "tenant": workflow.customer, "decision_id": None, "calibration_id": None}
        if decision is not None:
            about.update(text=decision.proposal_summary, tenant=decision.customer or workflow.customer,
                         decision_id=decision.decision_id)
        elif workflow.workflow_type == "proposal":
            about["text"] = (data.get("proposal") or {}).get("proposal_summary", "")
        elif workflow.workflow_type == "consensus":
            about["text"] = data.get("subject", "")
        elif workflow.workflow_type == "calibration":
            about.update(text=f"{data.get('parameter', '')} → {data.get('proposed_value', '')}",
                         calibration_id=data.get("proposal_id"))
        if workflow.workflow_type == "override" and about["text"]:
            about["text"] = f"Override of: {about['text']}"
        workflow.about = about


def _decision_card(workflow: WorkflowInstance) -> dict | None:
    """What the workflow page shows of the decision behind a proposal or override workflow."""
    decision = decisions_of([workflow]).get(str(workflow.workflow_id))
    if decision is None:
        return None
    if workflow.workflow_type == "proposal":
        decision.workflow = workflow
    else:
        decision_verbs.attach_workflows([decision])
    return {"decision": decision, "effective": decision_verbs.effective_status(decision),
            "failing": decision.response.get("failing_gates", [])}


def _workflow_or_404(workflow_id) -> WorkflowInstance:
    try:
        return services.get_workflow(workflow_id)
    except services.WorkflowError:
        raise Http404("No such workflow") from None


@login_required
def detail(request, workflow_id):
    workflow = _workflow_or_404(workflow_id)
    actor = services.actor_for(request.user)
    machine = MACHINES[workflow.workflow_type]
    report = DurableWorkflowEngine().report(workflow.workflow_id)
    checkpoint = workflow.checkpoints.order_by("-seq").first()
    events = [{"event": e, "params": [p for p in e.params if not p.internal]}
              for e in services.allowed_events(workflow, actor)]
    return render(request, "workflows/detail.html", {
        "workflow": workflow, "machine": machine, "state": machine.states.get(workflow.current_state),
        "transitions": workflow.transitions.order_by("seq"), "checkpoint": checkpoint, "report": report,
        "events": events, "data": workflow.state_data, "about": _decision_card(workflow)})


@login_required
@require_POST
def fire(request, workflow_id, event):
    workflow = _workflow_or_404(workflow_id)
    machine = MACHINES[workflow.workflow_type]
    declared = machine.events.get(event)
    params = {}
    if declared is not None:
        params = {p.name: request.POST.get(p.name, "") for p in declared.params if not p.internal}
    try:
        services.perform(workflow.workflow_id, event, actor=services.actor_for(request.user),
                         comment=request.POST.get("comment", ""), params=params,
                         request_id=getattr(request, "aegis_request_id", ""))
    except services.WorkflowError as exc:
        messages.error(request, f"Refused: {exc.message}")
    else:
        label = declared.label if declared else event
        workflow.refresh_from_db()
        state = machine.states.get(workflow.current_state)
        messages.success(request, f"{label}: done. The workflow is now "
                                  f"{state.label.lower() if state else workflow.current_state}.")
    return redirect("workflows:detail", workflow_id=workflow.workflow_id)
