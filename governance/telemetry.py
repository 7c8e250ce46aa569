"""Telemetry: one append-only store of typed events, and the Prometheus metrics they drive.

Every service emits through `emit()`, inside its own transaction, so an event exists
exactly when the action it describes committed; metrics are counted on commit for the
same reason. Event names come from the registry below (not free strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q

from . import metrics, rows


class Event(StrEnum):
    DECISION_MADE = "decision.made"
    CALIBRATION_PROPOSED = "calibration.proposed"
    CALIBRATION_APPROVED = "calibration.approved"
    CALIBRATION_REJECTED = "calibration.rejected"
    CALIBRATION_APPLIED = "calibration.applied"
    CALIBRATION_STALE = "calibration.stale"
    CALIBRATION_WITHDRAWN = "calibration.withdrawn"
    WORKFLOW_TRANSITION = "workflow.transition"
    OVERRIDE_REQUESTED = "override.requested"
    OVERRIDE_APPROVED = "override.approved"
    OVERRIDE_REJECTED = "override.rejected"
    OVERRIDE_EXPIRED = "override.expired"
    DRIFT_REPORT = "drift.report"
    DRIFT_REPORT_REPLACED = "drift.report_replaced"
    BACKUP_SUCCEEDED = "backup.succeeded"
    BACKUP_FAILED = "backup.failed"
    BACKUP_RESTORED = "backup.restored"
    AUDIT_VERIFIED = "audit.verified"
    KEYS_ROTATED = "keys.rotated"
    DECISIONS_SEALED = "decisions.sealed"
    NOTIFICATION_PREFERENCE_CHANGED = "notifications.preference"
    ATTESTATION_ISSUED = "attestation.issued"
    ATTESTATION_VERIFIED = "attestation.verified"
    ATTESTATION_PAIR_GENERATED = "attestation.pair_generated"


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
    Event.CALIBRATION_WITHDRAWN: EventSpec("A calibration was withdrawn by its proposer.",
                                           _count_calibration("withdrawn")),
    Event.WORKFLOW_TRANSITION: EventSpec(
        "A workflow moved to a new state.",
        lambda data: metrics.WORKFLOW_TRANSITIONS.labels(workflow_type=data["workflow_type"]).inc()),
    Event.OVERRIDE_REQUESTED: EventSpec("A two-key override was requested."),
    Event.OVERRIDE_APPROVED: EventSpec("An override received both approvals."),
    Event.OVERRIDE_REJECTED: EventSpec("An override was rejected."),
    Event.OVERRIDE_EXPIRED: EventSpec("An override request expired."),
    # Drift, backup and verification metrics are read from the database at scrape time
    # (metrics.StoredWorkCollector): these events happen in Celery workers, not the web server.
    Event.DRIFT_REPORT: EventSpec("A daily drift report was stored."),
    Event.DRIFT_REPORT_REPLACED: EventSpec("A day's drift report was recomputed and replaced (old and new status, KL)."),
    Event.BACKUP_SUCCEEDED: EventSpec("A scheduled backup was written."),
    Event.BACKUP_FAILED: EventSpec("A scheduled backup failed."),
    Event.BACKUP_RESTORED: EventSpec("A backup was restored."),
    Event.AUDIT_VERIFIED: EventSpec("Audit chains were verified."),
    Event.KEYS_ROTATED: EventSpec("Encrypted values were re-encrypted under the first of FERNET_KEYS."),
    Event.DECISIONS_SEALED: EventSpec("Stored decisions were sealed into a hash-chained block."),
    Event.NOTIFICATION_PREFERENCE_CHANGED: EventSpec("A user turned their email notifications on or off."),
    Event.ATTESTATION_ISSUED: EventSpec("An artifact attestation was signed (POST /attest).",
                                        lambda data: metrics.ATTESTATIONS.labels(result="issued").inc()),
    Event.ATTESTATION_VERIFIED: EventSpec(
        "An envelope was verified (POST /attestations/verify): valid, or the error class.",
        lambda data: metrics.ATTESTATIONS.labels(result="valid" if data["valid"] else "invalid").inc()),
    Event.ATTESTATION_PAIR_GENERATED: EventSpec(
        "A new attestation signing pair signs from now on; the pairs it retired keep verifying."),
}
assert set(REGISTRY) == set(Event), "every event needs a spec"


def emit(event: Event, *, actor: str = "", subject: str = "", data: dict[str, Any] | None = None,
         request_id: str = "") -> None:
    """Record `event` in the caller's transaction; count its metrics once that commits."""
    from .models import TelemetryEvent

    event = Event(event)
    data = data or {}
    limit = TelemetryEvent._meta.get_field("subject").max_length  # a long subject must not fail the action
    rows.insert(TelemetryEvent(name=event, actor=actor, subject=str(subject)[:limit], data=data,
                               request_id=request_id))
    count = REGISTRY[event].count
    if count is not None:
        transaction.on_commit(lambda: count(data))


# --- reading events ---------------------------------------------------------------------------

VIEW_EVENTS_PERMISSION = "governance.view_telemetryevent"
PAGE_SIZE = 50
# At most this many rows are read (and decrypted) per call when filtering by actor, so a rare
# or absent actor cannot make one request walk the whole table: the search then stops and
# `EventPage.next_before` continues it on the next page.
SCAN_LIMIT = 5000
_CHUNK_SIZE = 500


def check_can_view_events(user) -> None:
    """Raise PermissionDenied unless `user` may read telemetry events (anonymous and inactive
    users never may; superusers always may)."""
    if user is None or not user.has_perm(VIEW_EVENTS_PERMISSION):
        raise PermissionDenied(f"/telemetry/ needs the permission {VIEW_EVENTS_PERMISSION} "
                               f"({holders_of(VIEW_EVENTS_PERMISSION)}).")


def holders_of(permission: str) -> str:
    """Which groups hold `permission`, for a refusal that tells the reader whom to ask."""
    app_label, codename = permission.split(".")
    names = list(Group.objects.filter(permissions__content_type__app_label=app_label,
                                      permissions__codename=codename).order_by("name").values_list("name", flat=True))
    if not names:
        return "no group has it; an administrator can grant it to your account"
    return f"{' and '.join(names)} group{'s' if len(names) > 1 else ''} {'have' if len(names) > 1 else 'has'} it"


@dataclass(frozen=True)
class EventPage:
    """One page of `list_events`, newest first.

    `next_before` is the keyset `(occurred_at, id)` to pass as `before=` for the next page,
    or None when there is none. `scanned` counts the rows read; `cut_short` says that the
    scan limit ended the search before the page was full (more matches may follow).
    """

    events: list
    next_before: tuple[datetime, int] | None
    scanned: int
    cut_short: bool = False


def list_events(*, actor_user, event_type: Event | str | None = None, actor: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                before: tuple[datetime, int] | None = None, limit: int = PAGE_SIZE,
                scan_limit: int = SCAN_LIMIT) -> EventPage:
    """Telemetry events that `actor_user` may read, newest first, filtered and paginated.

    Refuses (PermissionDenied) users without `governance.view_telemetryevent`.

    - `event_type`: one registered `Event` (ValueError for an unknown name); None for any.
    - `since` <= occurred_at < `until` (a half-open window, so adjacent windows never
      share an event); either may be None.
    - `actor`: exact, case-sensitive match; None for any ("" matches events without an actor).

    Type and time are filtered in SQL (`name` and `occurred_at` are indexed). `actor` (like
    `data`) is a PII column encrypted at rest, with a fresh ciphertext on every
    write, so SQL can neither compare nor order it: it is compared here, in Python, on the
    decrypted values while the rows stream in (`.iterator()`), and the stream stops as soon
    as the page is full and one further match proves that a next page exists, or after
    `scan_limit` rows.

    Pagination is keyset on (occurred_at, id), both descending, not an offset: an offset
    would count matches, which with the actor filtered in Python means re-reading every
    earlier page, and appended events would shift the pages. `before=(occurred_at, id)`
    starts the page just after that event; pass the previous page's `next_before`.
    """
    from .models import TelemetryEvent

    check_can_view_events(actor_user)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    rows = TelemetryEvent.objects.order_by("-occurred_at", "-id")
    if event_type is not None:
        rows = rows.filter(name=Event(event_type).value)
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    if before is not None:
        occurred_at, pk = before
        rows = rows.filter(Q(occurred_at__lt=occurred_at) | Q(occurred_at=occurred_at, id__lt=pk))

    # Without an actor filter every row matches: read one page and one more row, no more.
    budget = limit + 1 if actor is None else max(scan_limit, limit + 1)
    events: list = []
    scanned, last = 0, None
    for event in rows[:budget].iterator(chunk_size=min(budget, _CHUNK_SIZE)):
        scanned += 1
        if actor is None or event.actor == actor:
            if len(events) == limit:  # a further match: the page is full and there is a next one
                return EventPage(events, _keyset(events[-1]), scanned)
            events.append(event)
        last = event
    if scanned == budget:  # stopped by the scan limit, not by the end of the rows
        return EventPage(events, _keyset(last), scanned, cut_short=True)
    return EventPage(events, None, scanned)


def _keyset(event) -> tuple[datetime, int]:
    return event.occurred_at, event.pk
