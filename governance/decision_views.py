"""Decision pages under /decisions/ (staff only): the stored decisions, filtered and
searched, newest first; one decision with its inputs, gates, answer, review, override and
the attestations that name it (their pages are attestations.views); and the buttons that request an override or approve, reject or withdraw its review.

The pages change nothing themselves: the POST views call `governance.decisions`
(`request_override`, `act`), which check who may do what, and show what they answered.

Searching encrypted summaries: `proposal_summary` and `agent_id` are PII columns encrypted
at rest with a fresh ciphertext on every write, so SQL can neither compare nor search them
and there is no plaintext index. Every other filter runs in SQL (the effective status as a
subquery on the review workflow's state); the remaining rows then stream in newest first
(`.iterator()`), are decrypted and matched here, and reading stops once the page is full
(PAGE_SIZE) or after SCAN_LIMIT rows, when "continue searching" carries on from the last
row read (keyset cursor on (created_at, id), like the telemetry page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, CharField, F, OuterRef, Q, Subquery, Value, When
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from attestations import services as attestation_services
from calibration.models import ConfigurationVersion
from workflows import services as workflow_services
from workflows.machines import MACHINES, PROPOSAL
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance
from workflows.roles import Role

from . import decisions
from .engine.decide import STATUSES
from .engine.gates import GATE_NAMES
from .engine.inputs import IMPACT_LEVELS
from .json_limits import display_json
from .models import Customer, Decision
from .telemetry_views import KeysetPagedForm, page_links
from .templatetags.aegis_format import utc_text

PAGE_SIZE = 50
# At most this many rows are read (and decrypted) per page when a filter runs in Python
# (summary search, agent), so a rare or absent match cannot make one request walk the
# whole table; "continue searching" then goes on from the last row read.
SCAN_LIMIT = 5000
_CHUNK_SIZE = 500
NO_TENANT = "none"  # the tenant filter's value for decisions a person submitted without one
OVERRIDE_ROLES = frozenset({Role.RISK_LEAD, Role.SECURITY_LEAD})
ACTED = {"approve": "Approved", "reject": "Rejected", "withdraw": "Withdrawn"}


def staff_required(view):
    """Signed in (else the login page) and staff (else a 403 page), before anything else:
    a refused person learns nothing about which decisions exist."""
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            return render(request, "governance/decisions_forbidden.html", status=403)
        return view(request, *args, **kwargs)
    return wrapped


# --- the list -----------------------------------------------------------------------------

def _choices(values, any_label="any") -> list[tuple[str, str]]:
    return [("", any_label)] + [(v, v) for v in values]


class DecisionFilterForm(KeysetPagedForm):
    """The GET filters of /decisions/. Dates are UTC days, both ends included."""

    q = forms.CharField(label="Summary contains", required=False, max_length=200)
    tenant = forms.ChoiceField(label="Tenant", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=_choices(STATUSES))
    effective = forms.ChoiceField(label="Effective status", required=False, choices=_choices(STATUSES))
    gate = forms.ChoiceField(label="Failing gate", required=False, choices=_choices(GATE_NAMES))
    impact = forms.ChoiceField(label="Impact", required=False, choices=_choices(IMPACT_LEVELS))
    agent = forms.CharField(label="Agent", required=False, max_length=200)
    shadow = forms.ChoiceField(label="Shadow", required=False,
                               choices=[("", "any"), ("no", "not shadow"), ("yes", "shadow only")])
    since = forms.DateField(label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = ([("", "any"), (NO_TENANT, "(no tenant)")] +
                                         [(c.customer_id, c.name) for c in Customer.objects.order_by("name")])

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and since > until:
            self.add_error("until", "“To” must not be earlier than “From”.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """`search_decisions` keyword arguments (call after is_valid())."""
        data = self.cleaned_data
        return {"tenant": data["tenant"] or None, "status": data["status"] or None,
                "effective": data["effective"] or None, "gate": data["gate"] or None,
                "impact": data["impact"] or None, "agent": data["agent"] or None,
                "shadow": {"yes": True, "no": False}.get(data["shadow"]),
                "since": data["since"], "until": data["until"], "text": data["q"].strip() or None,
                "before": data["cursor"]}


@dataclass(frozen=True)
class DecisionPage:
    """One page of `search_decisions`, newest first. `next_before` is the keyset of the
    next page (None: no more); `cut_short`: the scan limit stopped the search before the
    page was full, so more matches may lie further back."""

    decisions: list
    next_before: tuple[datetime, int] | None
    scanned: int
    cut_short: bool = False


def _start_of(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def with_effective_status(rows):
    """`rows` annotated with `effective_status_sql`: `decisions.effective_status` computed by
    the database from the review workflow's current state (a subquery), so it can filter."""
    state = Subquery(WorkflowInstance.objects.filter(workflow_id=OuterRef("review_workflow_id"))
                     .values("current_state")[:1])
    return rows.annotate(review_state_sql=state).annotate(effective_status_sql=Case(
        When(review_state_sql="approved", then=Value("proceed")),
        When(review_state_sql__in=("rejected", "withdrawn"), then=Value("halt")),
        default=F("status"), output_field=CharField()))


def search_decisions(*, tenant: str | None = None, status: str | None = None, effective: str | None = None,
                     gate: str | None = None, impact: str | None = None, agent: str | None = None,
                     shadow: bool | None = None, since=None, until=None, text: str | None = None,
                     before: tuple[datetime, int] | None = None, limit: int | None = None,
                     scan_limit: int | None = None) -> DecisionPage:
    """Stored decisions, newest first, filtered; see the module docstring for how.

    `tenant` is a customer_id or NO_TENANT; `since`/`until` are UTC dates, both included;
    `agent` matches exactly, `text` case-insensitively anywhere in the summary. `before`
    is the previous page's `next_before`. `limit` and `scan_limit` default to PAGE_SIZE
    and SCAN_LIMIT (read at call time)."""
    limit = PAGE_SIZE if limit is None else limit
    scan_limit = SCAN_LIMIT if scan_limit is None else scan_limit
    if limit < 1 or scan_limit < 1:
        raise ValueError("limit and scan_limit must be at least 1")
    rows = (Decision.objects.select_related("customer").order_by("-created_at", "-id")
            .defer("metadata", "session_id", "replay_vector", "request_data"))
    if tenant == NO_TENANT:
        rows = rows.filter(customer__isnull=True)
    elif tenant:
        rows = rows.filter(customer__customer_id=tenant)
    if status:
        rows = rows.filter(status=status)
    if effective:
        rows = with_effective_status(rows).filter(effective_status_sql=effective)
    if gate:
        # failing_gates lists exactly the evaluated gates that did not pass; a key lookup
        # (unlike JSON `contains`) works on SQLite and PostgreSQL alike.
        rows = rows.filter(**{f"response__gates__{gate}__passed": False})
    if impact:
        rows = rows.filter(estimated_impact=impact)
    if shadow is not None:
        rows = rows.filter(shadow=shadow)
    if since is not None:
        rows = rows.filter(created_at__gte=_start_of(since))
    if until is not None:
        rows = rows.filter(created_at__lt=_start_of(until) + timedelta(days=1))
    if before is not None:
        created_at, pk = before
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))

    needle = text.casefold() if text else None
    in_python = needle is not None or agent is not None

    def matches(decision: Decision) -> bool:
        if agent is not None and decision.agent_id != agent:
            return False
        return needle is None or needle in (decision.proposal_summary or "").casefold()

    # Without a Python filter every row matches: read one page and one more row, no more.
    # With one, read at most `scan_limit` rows (decrypting each), even if the page is not full.
    budget = scan_limit if in_python else limit + 1
    found: list[Decision] = []
    scanned, last = 0, None
    for decision in rows[:budget].iterator(chunk_size=min(budget, _CHUNK_SIZE)):
        scanned += 1
        if matches(decision):
            if len(found) == limit:  # one match more than fits: there is a next page
                return DecisionPage(found, _keyset(found[-1]), scanned)
            found.append(decision)
        last = decision
    if in_python and scanned == budget:  # stopped by the scan limit, not by the end of the rows
        return DecisionPage(found, _keyset(last), scanned, cut_short=True)
    return DecisionPage(found, None, scanned)


def _keyset(decision: Decision) -> tuple[datetime, int]:
    return decision.created_at, decision.pk


def review_label(decision: Decision) -> str:
    workflow = decision.workflow
    if workflow is not None:
        state = PROPOSAL.states.get(workflow.current_state)
        return state.label if state else workflow.current_state
    return "recorded only (shadow)" if decision.shadow else "no review needed"


def _with_reviews(rows: list[Decision]) -> dict[str, WorkflowInstance]:
    """Attach review workflows and return the overrides by review workflow id. An override
    whose deadline passed is expired first (by `decisions.overrides_of`), which may have
    closed its review, so the reviews are read again after it."""
    decisions.attach_workflows(rows)
    overrides = decisions.overrides_of(rows)
    if overrides:
        decisions.attach_workflows(rows)
    return overrides


def _list_row(decision: Decision, override: WorkflowInstance | None) -> dict[str, Any]:
    return {"id": decision.decision_id, "created_at": decision.created_at, "tenant": decision.customer,
            "summary": decision.proposal_summary, "status": decision.status,
            "effective": decisions.effective_status(decision),
            "failing": decision.response.get("failing_gates", []), "impact": decision.estimated_impact,
            "shadow": decision.shadow, "review": review_label(decision),
            "review_state": decision.workflow.current_state if decision.workflow else "",
            "override": override.current_state if override is not None else None}


@staff_required
def decision_list(request):
    form = DecisionFilterForm(request.GET if request.GET else None)
    page = None
    if not form.is_bound:
        page = search_decisions()
    elif form.is_valid():
        page = search_decisions(**form.filters())
    rows = []
    if page is not None:
        overrides = _with_reviews(page.decisions)
        rows = [_list_row(d, overrides.get(str(d.review_workflow_id)) if d.review_workflow_id else None)
                for d in page.decisions]
    next_query, first_query = page_links(request, page.next_before if page is not None else None)
    return render(request, "governance/decisions.html", {
        "form": form, "page": page, "rows": rows, "next_query": next_query, "first_query": first_query,
        "page_size": PAGE_SIZE, "scan_limit": SCAN_LIMIT})


# --- one decision -------------------------------------------------------------------------

def _decision_or_404(decision_id) -> Decision:
    try:
        return decisions.find(decision_id, customer=None)
    except workflow_services.WorkflowError:
        raise Http404("No such decision") from None


def _number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _inputs(decision: Decision) -> dict[str, Any]:
    request_data = decision.request_data or {}
    numbers = [
        ("Risk, baseline", "risk_baseline", decision.risk_baseline),
        ("Risk, proposed", "risk_proposed", decision.risk_proposed),
        ("Profit, baseline", "profit_baseline", decision.profit_baseline),
        ("Profit, proposed", "profit_proposed", decision.profit_proposed),
        ("Novelty", "novelty_score", decision.novelty_score),
        ("Complexity", "complexity_score", decision.complexity_score),
        ("Quality", "quality_score", decision.quality_score),
        ("Quality subscores", "quality_subscores",
         ", ".join(_number(s) for s in request_data.get("quality_subscores") or []) or None),
        ("Utility, mean", "utility_result.mean", decision.utility_mean),
        ("Utility, standard error", "utility_result.std_error", decision.utility_std_error),
    ]
    baseline, current = request_data.get("drift_baseline_data"), request_data.get("drift_current_data")
    flags = [
        ("Estimated impact", "estimated_impact", decision.estimated_impact),
        ("Requires human approval", "requires_human_approval", decision.requires_human_approval),
        ("Has a zero subscore", "quality_subscores", decision.has_zero_subscore),
        ("Time-sensitive", "time_sensitive", request_data.get("time_sensitive")),
        ("Reversible", "reversible", request_data.get("reversible")),
        ("Shadow mode", "shadow_mode", decision.shadow),
        ("Phase", "phase", request_data.get("phase")),
        ("Change type", "change_type", request_data.get("change_type")),
        ("Drift data", "drift_*_data",
         f"{len(baseline)} baseline, {len(current)} current values" if baseline and current else
         "not given" if not baseline and not current else
         f"{len(baseline or [])} baseline, {len(current or [])} current values"),
    ]
    return {"numbers": [(label, name, _number(value)) for label, name, value in numbers],
            "flags": [(label, name, _number(value)) for label, name, value in flags],
            "metadata": display_json(decision.metadata) if decision.metadata else ""}


def _gates(response: dict[str, Any]) -> list[dict[str, Any]]:
    gates = response.get("gates") or {}
    skipped = set(response.get("gates_skipped", []))
    # In the engine's order: PostgreSQL's jsonb does not keep the stored key order.
    rows = [{"name": name, **gates[name]} if name in gates else {"name": name, "skipped": True}
            for name in GATE_NAMES if name in gates or name in skipped]
    return rows


def _config_version(number: int) -> dict[str, Any]:
    version = ConfigurationVersion.objects.select_related("parent").filter(version=number).first()
    active = ConfigurationVersion.objects.order_by("-version").values_list("version", flat=True).first()
    parent = version.parent.version if version is not None and version.parent is not None else None
    return {"number": number, "exists": version is not None, "parent": parent, "active": active,
            "source": version.get_source_display() if version is not None else ""}


def _timeline(workflow: WorkflowInstance) -> list[dict[str, Any]]:
    return [{"seq": t.seq, "event": t.payload.get("event", ""), "from": t.from_state, "to": t.to_state,
             "by": t.triggered_by, "at": t.created_at, "reason": t.reason}
            for t in workflow.transitions.order_by("seq")]


def _override_view(override: WorkflowInstance, actor) -> dict[str, Any]:
    data = override.state_data
    state = MACHINES["override"].states.get(override.current_state)
    return {"workflow_id": override.workflow_id, "state": override.current_state,
            "label": state.label if state else override.current_state,
            "terminal": bool(state and state.terminal),
            "requested_at": override.created_at, "expires_at": data.get("expires_at"),
            "decided_at": override.updated_at if state and state.terminal else None,
            "justification": data.get("justification", ""), "requested_by": data.get("requested_by", ""),
            "failed_gates": data.get("failed_gates", []), "binding_hash": data.get("binding_hash", ""),
            "approvals": [{"custodian": a.get("custodian_id", ""), "role": a.get("role", ""),
                           "at": a.get("approved_at")} for a in data.get("approvals", [])],
            "chain": DurableWorkflowEngine().report(override.workflow_id),
            "your_events": [e.label for e in workflow_services.allowed_events(override, actor)]}


def _actions(decision: Decision, actor) -> dict[str, Any]:
    refusal = decisions.override_refusal(decision)
    may_override = bool(OVERRIDE_ROLES & actor.roles)
    events = []
    if decision.workflow is not None:
        events = [e for e in workflow_services.allowed_events(decision.workflow, actor)
                  if e.name in decisions.REVIEW_EVENTS]
    if refusal is None and not may_override:
        refusal = "Requesting an override needs the role risk_lead or security_lead"
    return {"override": refusal is None, "override_refusal": refusal, "events": events}


@staff_required
def decision_detail(request, decision_id):
    decision = _decision_or_404(decision_id)
    actor = workflow_services.actor_for(request.user)
    override = _with_reviews([decision]).get(str(decision.review_workflow_id)) if decision.review_workflow_id else None
    workflow = decision.workflow
    response = decision.response
    return render(request, "governance/decision_detail.html", {
        "decision": decision, "summary": decision.proposal_summary, "created_at": decision.created_at,
        "effective": decisions.effective_status(decision), "review": review_label(decision),
        "inputs": _inputs(decision), "gates": _gates(response), "response": response,
        "drift": response.get("drift"), "config": _config_version(decision.config_version),
        "workflow": workflow, "timeline": _timeline(workflow) if workflow is not None else [],
        "chain": DurableWorkflowEngine().report(workflow.workflow_id) if workflow is not None else None,
        "override": _override_view(override, actor) if override is not None else None,
        "actions": _actions(decision, actor), "justification_max": decisions.JUSTIFICATION_MAX_LENGTH,
        "attestations": attestation_services.attestations_of_decision(decision)})


# --- acting (through the decision verbs) --------------------------------------------------

def _refused_or_404(request, exc: workflow_services.WorkflowError) -> None:
    if exc.code == workflow_services.WorkflowError.NOT_FOUND:
        raise Http404("No such decision")
    messages.error(request, f"Refused: {exc.message}")


@staff_required
@require_POST
def request_override(request, decision_id):
    try:
        body = decisions.request_override(decision_id, actor=workflow_services.actor_for(request.user),
                                          customer=None, justification=request.POST.get("justification", ""),
                                          request_id=getattr(request, "aegis_request_id", ""))
    except workflow_services.WorkflowError as exc:
        _refused_or_404(request, exc)
    else:
        messages.success(request, "Override requested: it now needs a risk lead and a security lead "
                                  f"(two people) before {utc_text(body['expires_at'])}.")
    return redirect("decisions:detail", decision_id=decision_id)


@staff_required
@require_POST
def review_event(request, decision_id, event):
    try:
        decision = decisions.act(decision_id, event, actor=workflow_services.actor_for(request.user),
                                 comment=request.POST.get("comment", ""),
                                 request_id=getattr(request, "aegis_request_id", ""))
    except workflow_services.WorkflowError as exc:
        _refused_or_404(request, exc)
    else:
        messages.success(request, f"{ACTED[event]}: the decision's effective status is now "
                                  f"{decisions.effective_status(decision)}.")
    return redirect("decisions:detail", decision_id=decision_id)
