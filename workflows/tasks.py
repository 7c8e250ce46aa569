"""Scheduled workflow tasks: daily backup, nightly chain verification, override expiry.
Idempotent, acknowledged late, retried with backoff."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.utils import timezone

from . import operations, services

RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "retry_backoff_max": 600, "max_retries": 5,
         "acks_late": True}


@shared_task(name="aegis.backup.daily", **RETRY)
def daily_backup(day: str | None = None) -> dict:
    run = operations.run_scheduled_backup(date.fromisoformat(day) if day else timezone.now().date())
    return {"day": run.day.isoformat(), "path": run.path, "outcome": run.outcome}


@shared_task(name="aegis.audit.verify_chains", **RETRY)
def verify_chains() -> dict:
    run = operations.verify_all_chains()
    return {"checked": run.checked, "broken": run.broken}


@shared_task(name="aegis.workflows.expire_overrides", **RETRY)
def expire_overrides() -> int:
    return services.expire_due_workflows()
