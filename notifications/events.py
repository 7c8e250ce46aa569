"""What each notification says and who receives it, built from the stored thing that
started waiting (a workflow) or went wrong (a drift report, a verification run, a backup).

Who receives a workflow item is asked of the workflow machine itself: the active staff
users for whom `allowed_events` offers the item's answering event, exactly what the pages
offer them (so the proposer of a calibration, the submitter of a decision and the
custodian who already signed are never asked)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from calibration.models import CalibrationProposal
from governance.models import Decision, DriftReport
from workflows import services as workflow_services
from workflows.machines import CUSTODIAN_ROLES
from workflows.persistence.models import BackupRun, ChainVerificationRun, WorkflowInstance
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP
from workflows.serialization import ensure_utc, utc_iso

from .models import NotificationEvent

Kind = NotificationEvent.Kind
SUMMARY_LENGTH = 200

# workflow type -> (the states in which it waits for a person, the event that answers it,
# the kind of notification). Entering such a state from another one announces it.
WAITING = {
    "proposal": ({"in_review"}, "approve", Kind.REVIEW_WAITING),
    "override": ({"pending", "partial"}, "approve", Kind.OVERRIDE_WAITING),
    "consensus": ({"voting"}, "vote", Kind.CONSENSUS_WAITING),
    "calibration": ({"proposed"}, "approve", Kind.CALIBRATION_WAITING),
}
# Who is told when something goes wrong (docs/decisions.md, "Notifications").
DRIFT_GROUPS = (RISK_LEAD_GROUP,)
OPERATIONS_GROUPS = (SECURITY_LEAD_GROUP, RISK_LEAD_GROUP)


@dataclass
class Announcement:
    """One notification before it is stored: `payload()` is the webhook body."""

    key: str
    kind: str
    subject: str
    summary: str
    path: str  # the page where the reader acts, below AEGIS_PUBLIC_URL
    tenant: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)
    deadline: datetime | None = None
    recipients: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return absolute_url(self.path)

    def payload(self, occurred_at: datetime) -> dict[str, Any]:
        return {"event": self.kind, "occurred_at": utc_iso(occurred_at), "subject": self.subject, "url": self.url,
                "summary": self.summary, "tenant": self.tenant or None, "numbers": self.numbers,
                "deadline": utc_iso(self.deadline) if self.deadline else None,
                "text": f"AEGIS: {self.subject} {self.url}"}


def absolute_url(path: str) -> str:
    return settings.AEGIS_PUBLIC_URL.rstrip("/") + path


def _shortened(text: str) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= SUMMARY_LENGTH else text[:SUMMARY_LENGTH - 1] + "…"


def _tenant(customer) -> str:
    return f"{customer.name} ({customer.customer_id})" if customer is not None else ""


def _for_tenant(customer) -> str:
    return f" for {customer.name}" if customer is not None else ""


# --- recipients ---------------------------------------------------------------------------

def staff():
    return get_user_model().objects.filter(is_active=True, is_staff=True).order_by("pk")


def members_of(groups: tuple[str, ...]) -> list:
    return list(staff().filter(groups__name__in=groups).distinct())


def who_can_answer(workflow: WorkflowInstance, event_name: str) -> list:
    """The active staff users the pages would offer `event_name` on `workflow` now."""
    return [user for user in staff() if any(
        event.name == event_name for event in workflow_services.allowed_events(
            workflow, workflow_services.actor_for(user)))]


# --- workflow items -----------------------------------------------------------------------

def waiting_announcement(workflow_id: str, *, workflow_type: str, from_state: str, to_state: str,
                         seq: int) -> Announcement | None:
    """The announcement of a workflow that has just started waiting for someone; None if
    this transition does not make it wait (or it has moved on since)."""
    states, answer, kind = WAITING.get(workflow_type, ((), "", ""))
    if to_state not in states or from_state == to_state:
        return None
    workflow = WorkflowInstance.objects.select_related("customer").filter(workflow_id=workflow_id).first()
    if workflow is None or workflow.current_state != to_state:
        return None
    describe = {"proposal": _review, "override": _override, "consensus": _consensus,
                "calibration": _calibration}[workflow.workflow_type]
    return describe(workflow, {"key": f"workflow:{workflow.workflow_id}:{seq}", "kind": kind,
                               "recipients": who_can_answer(workflow, answer)})


def _decision_numbers(decision: Decision) -> dict[str, Any]:
    return {"status": decision.status, "failing_gates": list(decision.response.get("failing_gates", [])),
            "risk_baseline": decision.risk_baseline, "risk_proposed": decision.risk_proposed,
            "novelty_score": decision.novelty_score, "complexity_score": decision.complexity_score,
            "quality_score": decision.quality_score}


def _review(workflow: WorkflowInstance, common: dict[str, Any]) -> Announcement | None:
    decision = Decision.objects.select_related("customer").filter(review_workflow_id=workflow.workflow_id).first()
    if decision is None:
        return None
    numbers = _decision_numbers(decision)
    gates = ", ".join(numbers["failing_gates"]) or "none"
    return Announcement(
        **common,
        subject=f"Decision {str(decision.decision_id)[:8]}{_for_tenant(decision.customer)} waits for review "
                f"({decision.status}; gates failed: {gates})",
        summary=_shortened(decision.proposal_summary),
        path=reverse("decisions:detail", args=[decision.decision_id]),
        tenant=_tenant(decision.customer), numbers=numbers)


def _override(workflow: WorkflowInstance, common: dict[str, Any]) -> Announcement:
    data = workflow.state_data
    given = {approval["role"] for approval in data.get("approvals", [])}
    missing = [str(role) for role in CUSTODIAN_ROLES if str(role) not in given]
    decision = Decision.objects.select_related("customer").filter(
        review_workflow_id=data.get("proposal_workflow_id")).first()
    customer = decision.customer if decision is not None else workflow.customer
    return Announcement(
        **common,
        subject=f"Override of decision {str(data.get('proposal_id', ''))[:8]}{_for_tenant(customer)} needs a "
                f"{' or '.join(missing)} signature",
        summary=_shortened(f"Justification: {data.get('justification', '')}"),
        path=reverse("workflows:detail", args=[workflow.workflow_id]),
        tenant=_tenant(customer),
        numbers={"failed_gates": list(data.get("failed_gates", [])),
                 "signatures": f"{len(given)} of {len(CUSTODIAN_ROLES)}", "missing_roles": missing,
                 **({"risk_proposed": decision.risk_proposed} if decision is not None else {})},
        deadline=ensure_utc(data["expires_at"]))


def _consensus(workflow: WorkflowInstance, common: dict[str, Any]) -> Announcement:
    data = workflow.state_data
    return Announcement(
        **common,
        subject=f"Consensus vote{_for_tenant(workflow.customer)}: {_shortened(data['subject'])}",
        summary=_shortened(data["subject"]),
        path=reverse("workflows:detail", args=[workflow.workflow_id]),
        tenant=_tenant(workflow.customer),
        numbers={"reviewers": len(data["reviewers"]), "quorum": data["quorum"],
                 "approval_threshold": data["approval_threshold"], "votes": len(data.get("votes", {}))},
        deadline=ensure_utc(data["deadline"]))


def _calibration(workflow: WorkflowInstance, common: dict[str, Any]) -> Announcement | None:
    proposal = CalibrationProposal.objects.filter(workflow=workflow).first()
    if proposal is None:
        return None
    changes = {name: {"from": before, "to": proposal.changes[name]}
               for name, before in proposal.values_when_proposed.items()}
    shown = ", ".join(f"{name} {change['from']:g} → {change['to']:g}" for name, change in changes.items())
    return Announcement(
        **common,
        subject=f"Calibration proposal waits for approval: {shown}",
        summary=_shortened(proposal.justification),
        path=reverse("calibration:review", args=[proposal.proposal_id]),
        tenant="all tenants", numbers={"changes": changes, "base_version": proposal.base_version.version})


# --- things that went wrong ---------------------------------------------------------------

def drift_announcement(report_id: int) -> Announcement | None:
    report = DriftReport.objects.select_related("customer").filter(pk=report_id).first()
    if report is None or report.status != "critical":
        return None
    customer = report.customer
    return Announcement(
        key=f"drift-report:{report.pk}", kind=Kind.DRIFT_CRITICAL,
        subject=f"Drift critical for {customer.name} on {report.day}: KL {report.kl_divergence:.4f} "
                f"≥ tau_critical {report.tau_critical:g}",
        summary=_shortened(report.message),
        path=reverse("drift:tenant", args=[customer.customer_id]), tenant=_tenant(customer),
        numbers={"day": report.day.isoformat(), "kl_divergence": report.kl_divergence,
                 "tau_warning": report.tau_warning, "tau_critical": report.tau_critical,
                 "n_current": report.n_current, "n_baseline": report.n_baseline},
        recipients=members_of(DRIFT_GROUPS))


def verification_announcement(run_id: int) -> Announcement | None:
    run = ChainVerificationRun.objects.filter(pk=run_id).first()
    if run is None or run.finished_at is None or run.broken == 0:
        return None
    first = [failure.get("workflow_id") or failure.get("decision_id")
             or (f"attestation {failure['attestation_id']}" if failure.get("attestation_id") else None)
             or (f"configuration v{failure['configuration_version']}" if failure.get("configuration_version") else None)
             or f"seal block {failure.get('block')}" for failure in run.failures[:3]]
    return Announcement(
        key=f"chain-verification:{run.pk}", kind=Kind.VERIFICATION_FAILED,
        subject=f"Audit chain verification failed: {run.broken} of {run.checked} records broken",
        summary=_shortened("First broken: " + ", ".join(str(item) for item in first)),
        path=reverse("admin:workflows_chainverificationrun_change", args=[run.pk]),
        numbers={"checked": run.checked, "broken": run.broken}, recipients=members_of(OPERATIONS_GROUPS))


def backup_announcement(run_id: int) -> Announcement | None:
    run = BackupRun.objects.filter(pk=run_id).first()
    if run is None or run.outcome != BackupRun.Outcome.FAILED:
        return None
    return Announcement(
        key=f"backup-run:{run.pk}", kind=Kind.BACKUP_FAILED,
        subject=f"Scheduled backup of {run.day} failed",
        summary=_shortened(run.error),
        path=reverse("admin:workflows_backuprun_change", args=[run.pk]),
        numbers={"day": run.day.isoformat()}, recipients=members_of(OPERATIONS_GROUPS))
