"""Reviewer pages: my pending workflows, a workflow's timeline and the buttons I may press."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from governance import decisions as decision_verbs

from . import services, waiting
from .machines import MACHINES
from .persistence.durable import DurableWorkflowEngine
from .persistence.models import WorkflowInstance, WorkflowStatus


@login_required
def inbox(request):
    rows = WorkflowInstance.objects.all()
    status, kind = request.GET.get("status", ""), request.GET.get("type", "")
    if status in WorkflowStatus.values:
        rows = rows.filter(status=status)
    if kind in MACHINES:
        rows = rows.filter(workflow_type=kind)
    page = Paginator(rows.select_related("customer"), 50).get_page(request.GET.get("page"))
    return render(request, "workflows/inbox.html", {
        "waiting": waiting.waiting_rows(request), "page": page,
        "rows": waiting.rows_of(page, staff=request.user.is_staff), "status": status, "type": kind,
        "statuses": WorkflowStatus.values, "types": list(MACHINES)})


def _decision_card(workflow: WorkflowInstance) -> dict | None:
    """What the workflow page shows of the decision behind a proposal or override workflow."""
    decision = waiting.decisions_of([workflow]).get(str(workflow.workflow_id))
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
    # A calibration is decided on its review page (with its impact preview): the generic
    # form would be refused there, so the page links to it instead.
    calibration_id = workflow.state_data.get("proposal_id") if workflow.workflow_type == "calibration" else None
    events = [] if calibration_id else [{"event": e, "params": [p for p in e.params if not p.internal]}
                                        for e in services.allowed_events(workflow, actor)]
    return render(request, "workflows/detail.html", {
        "workflow": workflow, "machine": machine, "state": machine.states.get(workflow.current_state),
        "transitions": workflow.transitions.order_by("seq"), "checkpoint": checkpoint, "report": report,
        "events": events, "data": workflow.state_data, "about": _decision_card(workflow),
        "calibration_id": calibration_id})


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
