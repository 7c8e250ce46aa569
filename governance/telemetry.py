"""Telemetry: one append-only store of typed events, and the Prometheus metrics they drive.

Every service emits through `emit()`, inside its own transaction, so an event exists
exactly when the action it describes committed; metrics are counted on commit for the
same reason. Event names come from the registry below (not free strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from django.db import transaction

from . import metrics


class Event(StrEnum):
    DECISION_MADE = "decision.made"
    CALIBRATION_PROPOSED = "calibration.proposed"
    CALIBRATION_APPROVED = "calibration.approved"
    CALIBRATION_REJECTED = "calibration.rejected"
    CALIBRATION_APPLIED = "calibration.applied"
    CALIBRATION_STALE = "calibration.stale"
    WORKFLOW_TRANSITION = "workflow.transition"
    OVERRIDE_REQUESTED = "override.requested"
    OVERRIDE_APPROVED = "override.approved"
    OVERRIDE_REJECTED = "override.rejected"
    OVERRIDE_EXPIRED = "override.expired"
    DRIFT_REPORT = "drift.report"
    BACKUP_SUCCEEDED = "backup.succeeded"
    BACKUP_FAILED = "backup.failed"
    BACKUP_RESTORED = "backup.restored"
    AUDIT_VERIFIED = "audit.verified"


@dataclass(frozen=True)
class EventSpec:
    description: str
    # Metrics to count when an event of this kind commits: f(data) -> None.
    count: Callable[[dict[str, Any]], None] | None = None


def _count_decision(data: dict[str, Any]) -> None:
    metrics.DECISIONS.labels(status=data["status"], shadow=str(bool(data["shadow"])).lower()).inc()
    for gate, passed in data["gates"].items():
        metrics.GATE_RESULTS.labels(gate=gate, result="pass" if passed else "fail").inc()
    metrics.DECISION_LATENCY.observe(data["latency_seconds"])


def _count_calibration(status: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: metrics.CALIBRATION_PROPOSALS.labels(status=status).inc()


REGISTRY: dict[Event, EventSpec] = {
    Event.DECISION_MADE: EventSpec("The engine decided a proposal (POST /evaluate).", _count_decision),
    Event.CALIBRATION_PROPOSED: EventSpec("A calibration was proposed.", _count_calibration("proposed")),
    Event.CALIBRATION_APPROVED: EventSpec("A calibration was approved (four eyes).", _count_calibration("approved")),
    Event.CALIBRATION_REJECTED: EventSpec("A calibration was rejected.", _count_calibration("rejected")),
    Event.CALIBRATION_APPLIED: EventSpec("A calibration created a configuration version.",
                                         _count_calibration("applied")),
    Event.CALIBRATION_STALE: EventSpec("A calibration became stale.", _count_calibration("stale")),
    Event.WORKFLOW_TRANSITION: EventSpec(
        "A workflow moved to a new state.",
        lambda data: metrics.WORKFLOW_TRANSITIONS.labels(workflow_type=data["workflow_type"]).inc()),
    Event.OVERRIDE_REQUESTED: EventSpec("A two-key override was requested."),
    Event.OVERRIDE_APPROVED: EventSpec("An override received both approvals."),
    Event.OVERRIDE_REJECTED: EventSpec("An override was rejected."),
    Event.OVERRIDE_EXPIRED: EventSpec("An override request expired."),
    Event.DRIFT_REPORT: EventSpec(
        "A daily drift report was stored.",
        lambda data: metrics.DRIFT_KL.labels(tenant=data["tenant"]).set(data["kl_divergence"])),
    Event.BACKUP_SUCCEEDED: EventSpec("A scheduled backup was written.",
                                      lambda data: metrics.BACKUPS.labels(result="succeeded").inc()),
    Event.BACKUP_FAILED: EventSpec("A scheduled backup failed.",
                                   lambda data: metrics.BACKUPS.labels(result="failed").inc()),
    Event.BACKUP_RESTORED: EventSpec("A backup was restored."),
    Event.AUDIT_VERIFIED: EventSpec(
        "Audit chains were verified.",
        lambda data: metrics.AUDIT_VERIFICATIONS.labels(result="valid" if data["broken"] == 0 else "broken").inc()),
}
assert set(REGISTRY) == set(Event), "every event needs a spec"


def emit(event: Event, *, actor: str = "", subject: str = "", data: dict[str, Any] | None = None,
         request_id: str = "") -> None:
    """Record `event` in the caller's transaction; count its metrics once that commits."""
    from .models import TelemetryEvent

    event = Event(event)
    data = data or {}
    limit = TelemetryEvent._meta.get_field("subject").max_length  # a long subject must not fail the action
    TelemetryEvent.objects.create(name=event, actor=actor, subject=str(subject)[:limit], data=data,
                                  request_id=request_id)
    count = REGISTRY[event].count
    if count is not None:
        transaction.on_commit(lambda: count(data))
