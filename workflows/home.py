"""The home page (/): what waits for the signed-in staff member, recent halts and
escalations, drift per tenant, and the last chain verification and backup. It only reads;
every row links to the page where one acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from governance import decisions as decision_verbs
from governance.models import Customer, Decision, DriftReport

from .operations import latest_verification
from .persistence.models import BackupRun
from .waiting import decision_numbers, waiting_rows

RECENT_DAYS = 7
RECENT_LIMIT = 20
RECENT_STATUSES = ("halt", "escalate")


@dataclass
class RecentDecision:
    """A recent halt or escalation: its numbers and what can (or cannot) be done next."""

    decision: Decision
    effective: str
    numbers: list[str]
    next_steps: list[str]
    override_workflow_id: str | None
    override_refusal: str | None


def recent_halts_and_escalations(*, now=None) -> list[RecentDecision]:
    """The newest RECENT_LIMIT non-shadow halts and escalations of the last RECENT_DAYS days."""
    since = (now or timezone.now()) - timedelta(days=RECENT_DAYS)
    found = list(Decision.objects.filter(status__in=RECENT_STATUSES, shadow=False, created_at__gte=since)
                 .select_related("customer").defer("metadata", "session_id", "replay_vector", "request_data")
                 .order_by("-created_at", "-id")[:RECENT_LIMIT])
    decision_verbs.attach_workflows(found)
    rows = []
    for decision in found:
        workflow = decision.workflow
        override_id = workflow.state_data.get("override_workflow_id") if workflow is not None else None
        rows.append(RecentDecision(
            decision=decision, effective=decision_verbs.effective_status(decision),
            numbers=decision_numbers(decision), next_steps=list(decision.response.get("next_steps") or []),
            override_workflow_id=override_id,
            override_refusal=None if override_id else decision_verbs.override_refusal(decision)))
    return rows


def drift_by_tenant() -> list[tuple[Customer, DriftReport | None]]:
    """Every tenant with its newest drift report (None: none yet), in two queries."""
    newest = DriftReport.objects.filter(customer=OuterRef("pk")).order_by("-day").values("pk")[:1]
    customers = list(Customer.objects.annotate(newest_report=Subquery(newest)).order_by("name"))
    reports = DriftReport.objects.in_bulk([c.newest_report for c in customers if c.newest_report])
    return [(customer, reports.get(customer.newest_report)) for customer in customers]


@login_required
def home(request):
    if not request.user.is_staff:
        raise PermissionDenied("The home page needs staff status: your account is not a staff member. "
                               "Ask an administrator for it; your reviews are at /workflows/.")
    return render(request, "workflows/home.html", {
        "waiting": waiting_rows(request), "recent": recent_halts_and_escalations(),
        "recent_days": RECENT_DAYS, "recent_limit": RECENT_LIMIT, "drift": drift_by_tenant(),
        "verification": latest_verification(), "backup": BackupRun.objects.order_by("-day").first()})


class SignInView(LoginView):
    """Signing in lands staff on the home page, anyone else (who may not open it) on their
    inbox, unless the sign-in asked for another page (`next`)."""

    def get_default_redirect_url(self):
        return reverse("home" if self.request.user.is_staff else "workflows:inbox")
