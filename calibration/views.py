"""The risk lead's calibration pages: queue, propose, review (chart + impact preview +
approve/reject, withdraw for the proposer, apply), version history with diffs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from governance.models import Decision
from workflows import services as workflow_services
from workflows.persistence.durable import DurableWorkflowEngine

from . import services
from .api import PROPOSAL_STATUSES, filtered_proposals, version_diff
from .charts import drift_chart_svg
from .forms import ProposeForm, StepForm, WithdrawForm
from .models import CalibrationProposal, ConfigurationVersion
from .versions import active_config, configuration_status

TAU_PARAMETERS = ("tau_warning", "tau_critical")


@login_required
def queue(request):
    params = request.GET.copy()
    status = params.get("status", "open")
    if status == "open":
        params.pop("status", None)
    elif status.upper() not in PROPOSAL_STATUSES:
        status = "open"
        params.pop("status", None)
    rows = filtered_proposals(params, open_only=status == "open")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    version, _ = active_config()
    return render(request, "calibration/queue.html", {
        "page": page, "status": status, "statuses": PROPOSAL_STATUSES, "parameter": params.get("parameter", ""),
        "proposer": params.get("proposer", ""), "parameters": sorted(services.CALIBRATABLE_PARAMETERS),
        "active_version": version, "rejected_versions": configuration_status().rejected, "now": timezone.now()})


@login_required
def propose(request):
    form = ProposeForm(request.POST or None, initial={"parameter": request.GET.get("parameter")})
    if request.method == "POST" and form.is_valid():
        try:
            proposal = services.propose(form.cleaned_data["parameter"], form.cleaned_data["new_value"],
                                        form.cleaned_data["justification"],
                                        actor=workflow_services.actor_for(request.user),
                                        request_id=getattr(request, "aegis_request_id", ""))
        except services.CalibrationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Proposed {proposal.parameter}: {proposal.current_value:g} → "
                                      f"{proposal.proposed_value:g}. Another risk lead must approve it.")
            return redirect("calibration:review", proposal_id=proposal.proposal_id)
    version, config = active_config()
    return render(request, "calibration/propose.html", {
        "form": form, "active_version": version, "current_values": {
            name: getattr(config, name) for name in sorted(services.CALIBRATABLE_PARAMETERS)}})


def _proposal_or_404(proposal_id) -> CalibrationProposal:
    try:
        return services.get_proposal(proposal_id)
    except services.CalibrationError:
        raise Http404("No such calibration proposal") from None


def _preview_rows(preview) -> list[tuple[str, int, list[Decision]]]:
    """The preview's (change, count, example ids) with each example as its Decision (one
    query), so the page can link it by tenant and summary; an id no longer stored is dropped."""
    wanted = {example for _, _, ids in preview.rows for example in ids}
    found = {str(d.decision_id): d for d in Decision.objects.filter(decision_id__in=wanted).select_related("customer")
             .only("decision_id", "status", "proposal_summary", "customer__name")}
    return [(change, count, [found[i] for i in ids if i in found]) for change, count, ids in preview.rows]


@login_required
def review(request, proposal_id):
    proposal = _proposal_or_404(proposal_id)
    actor = workflow_services.actor_for(request.user)
    version, config = active_config()
    workflow = proposal.workflow
    allowed = {event.name for event in workflow_services.allowed_events(workflow, actor)}
    preview = services.preview(proposal.proposal_id) if workflow.current_state in services.OPEN_STATES else None
    proposed_taus = ({proposal.parameter: proposal.proposed_value} if proposal.parameter in TAU_PARAMETERS else {})
    chart = drift_chart_svg(services.drift_history(), tau_warning=config.tau_warning,
                            tau_critical=config.tau_critical, proposed=proposed_taus)
    return render(request, "calibration/review.html", {
        "proposal": proposal, "workflow": workflow, "data": workflow.state_data, "status": workflow.current_state.upper(),
        "active_value": getattr(config, proposal.parameter), "active_version": version, "preview": preview,
        "preview_rows": _preview_rows(preview) if preview else [],
        "chart": mark_safe(chart), "can_approve": "approve" in allowed, "can_reject": "reject" in allowed,
        "can_withdraw": "withdraw" in allowed, "can_apply": "apply" in allowed, "step_form": StepForm(),
        "is_proposer": services.is_proposer(proposal, actor),
        "chain": DurableWorkflowEngine().report(workflow.workflow_id),
        "transitions": workflow.transitions.order_by("seq")})


@login_required
@require_POST
def step(request, proposal_id, action):
    proposal = _proposal_or_404(proposal_id)
    actor = workflow_services.actor_for(request.user)
    request_id = getattr(request, "aegis_request_id", "")
    try:
        if action == "apply":
            created = services.apply(proposal.proposal_id, actor=actor, request_id=request_id)
            messages.success(request, f"Applied: configuration v{created.version} is now active "
                                      f"({proposal.parameter} = {proposal.proposed_value:g}).")
        elif action in ("approve", "reject", "withdraw"):
            form = (WithdrawForm if action == "withdraw" else StepForm)(request.POST)
            if not form.is_valid():
                problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
                messages.error(request, f"Refused: {problems}")
                return redirect("calibration:review", proposal_id=proposal.proposal_id)
            getattr(services, action)(proposal.proposal_id, actor=actor, comment=form.cleaned_data["comment"],
                                      request_id=request_id)
            messages.success(request, f"{services.STEP_DONE[action]}: the proposal is now "
                                      f"{services.get_proposal(proposal.proposal_id).status.upper()}.")
        else:
            raise Http404("No such action")
    except services.CalibrationError as exc:
        messages.error(request, f"Refused: {exc.message}")
    return redirect("calibration:review", proposal_id=proposal.proposal_id)


@login_required
def versions(request):
    rows = ConfigurationVersion.objects.select_related("parent")
    numbers = list(rows.values_list("version", flat=True))
    diff = None
    a, b = request.GET.get("a"), request.GET.get("b")
    if a and b:
        try:
            first, second = rows.get(version=int(a)), rows.get(version=int(b))
            diff = {"a": first, "b": second, "changes": version_diff(first, second)}
        except (ConfigurationVersion.DoesNotExist, ValueError):
            messages.error(request, "Choose two existing versions to compare.")
    applied = {p.applied_version_id: p for p in CalibrationProposal.objects.filter(applied_version__isnull=False)}
    return render(request, "calibration/versions.html", {
        "versions": [(v, applied.get(v.id)) for v in rows[:200]], "numbers": numbers, "diff": diff,
        "a": a or (numbers[1] if len(numbers) > 1 else ""), "b": b or (numbers[0] if numbers else "")})
