"""Sending notifications in the background: one task per delivery, acknowledged late,
retried with exponential backoff while a worker runs them. Without a worker (tasks run
eagerly in the caller) a failure is recorded and not retried, so the caller never waits
through backoff nor sees the error."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from . import services

MAX_ATTEMPTS = 6
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 1800


def backoff(retries: int) -> int:
    """Seconds before the next attempt: 30 s, 1 min, 2 min, … at most 30 min."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** retries)


@shared_task(bind=True, name="aegis.notifications.deliver", acks_late=True, max_retries=MAX_ATTEMPTS - 1,
             autoretry_for=(DatabaseError,), retry_backoff=BACKOFF_FIRST_SECONDS,
             retry_backoff_max=BACKOFF_MAX_SECONDS)
def deliver_notification(self, delivery_id: int) -> str:
    status = services.deliver(delivery_id)
    if status == services.Status.FAILED and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(countdown=backoff(self.request.retries))
    return status
