"""Drift, sealing and replay-packing tasks. Idempotent (one report per tenant and day,
enforced by the database; a decision is sealed once; a day is packed once), acknowledged late and retried with backoff: a worker
killed mid-task loses nothing."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.utils import timezone

from . import drift, replay_packs, sealing
from .models import Customer, DriftBaseline

RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "retry_backoff_max": 600, "max_retries": 5,
         "acks_late": True}


@shared_task(name="aegis.drift.report_all", **RETRY)
def drift_reports_daily(day: str | None = None) -> int:
    """Queue today's (or `day`'s) drift report for every active tenant with a baseline."""
    day = day or timezone.now().date().isoformat()
    customers = (DriftBaseline.objects.filter(customer__status=Customer.Status.ACTIVE).order_by()
                 .values_list("customer_id", flat=True).distinct())
    queued = 0
    for customer_id in customers:
        drift_report.delay(customer_id, day)
        queued += 1
    return queued


@shared_task(name="aegis.drift.report", **RETRY)
def drift_report(customer_id: int, day: str) -> dict:
    customer = Customer.objects.get(pk=customer_id)
    report, message = drift.run_drift_report(customer, date.fromisoformat(day))
    return {"report_id": report.pk if report else None, "message": message}


@shared_task(name="aegis.decisions.seal", **RETRY)
def seal_decisions() -> int:
    """Every 5 minutes (governance migration 0012): how many decisions were sealed."""
    return sealing.seal_decisions()


@shared_task(name="aegis.decisions.pack_replay", **RETRY)
def pack_replay_days() -> int:
    """Hourly (governance migration 0015): pack the days closed since the last run for the
    calibration preview; returns how many days were packed."""
    return replay_packs.pack_closed_days()
