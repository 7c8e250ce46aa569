"""Notification verbs: announce (store an event and its deliveries once, send after
commit), deliver (send one delivery, recording the outcome; never raises for a failed
send) and the user's email switch."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance import telemetry

from . import channels
from .events import Announcement
from .models import NotificationDelivery, NotificationEvent, NotificationPreference

logger = logging.getLogger("aegis.notifications")
Status = NotificationDelivery.Status
Channel = NotificationDelivery.Channel
# A delivery claimed longer ago than this is presumed abandoned (its worker died) and may be sent again.
CLAIM_TIMEOUT = timedelta(minutes=5)
ERROR_LENGTH = 500


def email_enabled(user) -> bool:
    preference = NotificationPreference.objects.filter(user=user).first()
    return preference is None or preference.email_enabled


def email_refusal(user) -> str:
    """Why `user` gets no email (empty: they get one)."""
    if not user.is_active:
        return "the user is no longer active"
    if not user.email:
        return "the user has no email address"
    if not email_enabled(user):
        return "the user turned email notifications off"
    return ""


def announce(announcement: Announcement, *, now: datetime | None = None) -> NotificationEvent:
    """Store the event with one delivery per recipient (and one for the webhook when
    AEGIS_WEBHOOK_URL is set), once per event key; queue the pending ones after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        event, created = NotificationEvent.objects.get_or_create(key=announcement.key, defaults={
            "kind": announcement.kind, "occurred_at": now, "subject": announcement.subject[:300],
            "payload": announcement.payload(now)})
        if not created:
            return event
        deliveries = []
        for user in announcement.recipients:
            refusal = email_refusal(user)
            deliveries.append(NotificationDelivery(event=event, channel=Channel.EMAIL, user=user, created_at=now,
                                                   status=Status.SKIPPED if refusal else Status.PENDING,
                                                   last_error=refusal))
        if settings.AEGIS_WEBHOOK_URL:
            deliveries.append(NotificationDelivery(event=event, channel=Channel.WEBHOOK, created_at=now))
        NotificationDelivery.objects.bulk_create(deliveries)
        for delivery in NotificationDelivery.objects.filter(event=event, status=Status.PENDING):
            # A function with a __qualname__ (not a partial): robust on_commit names it when it logs a failure.
            transaction.on_commit(lambda pk=delivery.pk: _enqueue(pk), robust=True)
    return event


def _enqueue(delivery_id: int) -> None:
    from .tasks import deliver_notification  # here, not at the top: the tasks module imports this one

    deliver_notification.delay(delivery_id)


def _describe(exc: Exception) -> str:
    """The error without what could carry a secret: the type and message, never the webhook URL."""
    text = f"{type(exc).__name__}: {exc}".replace(settings.AEGIS_WEBHOOK_URL or "\0", "AEGIS_WEBHOOK_URL")
    return text[:ERROR_LENGTH]


def deliver(delivery_id: int, *, now: datetime | None = None) -> str:
    """Send one delivery unless it is done or another worker is sending it; returns its
    status afterwards. A failed send is recorded as `failed` (with the error), not raised."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (NotificationDelivery.objects.select_for_update(of=("self",)).select_related("event", "user")
                    .filter(pk=delivery_id).first())
        if delivery is None:
            return "missing"
        if delivery.status in (Status.SENT, Status.SKIPPED):
            return delivery.status
        if delivery.claimed_at is not None and delivery.claimed_at > now - CLAIM_TIMEOUT:
            return "claimed"
        refusal = _refusal(delivery)
        if refusal:
            delivery.status, delivery.last_error = Status.SKIPPED, refusal
            delivery.save(update_fields=["status", "last_error"])
            return delivery.status
        delivery.claimed_at = now
        delivery.attempts += 1
        delivery.save(update_fields=["claimed_at", "attempts"])
    try:
        if delivery.channel == Channel.EMAIL:
            channels.send_email(delivery.event, delivery.user.email)
        else:
            channels.post_webhook(delivery.event)
    except Exception as exc:  # SMTP, HTTP, DNS, timeout: recorded, retried by the task
        status, error, sent_at = Status.FAILED, _describe(exc), None
        logger.warning("notification delivery %s (%s) failed, attempt %s: %s", delivery.pk, delivery.channel,
                       delivery.attempts, type(exc).__name__)
    else:
        status, error, sent_at = Status.SENT, "", timezone.now()
    with transaction.atomic():
        NotificationDelivery.objects.filter(pk=delivery.pk).update(status=status, last_error=error, sent_at=sent_at,
                                                                   claimed_at=None)
    return status


def _refusal(delivery: NotificationDelivery) -> str:
    if delivery.channel == Channel.WEBHOOK:
        return "" if settings.AEGIS_WEBHOOK_URL else "AEGIS_WEBHOOK_URL is no longer set"
    return email_refusal(delivery.user)


def set_email_notifications(user, *, enabled: bool, request_id: str = "") -> NotificationPreference:
    """The signed-in user's own switch (a user changes only their own), recorded in telemetry."""
    if not user.is_authenticated:
        raise PermissionError("sign in to change your notification settings")
    with transaction.atomic():
        preference, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user)
        if preference.email_enabled != enabled:
            preference.email_enabled = enabled
            preference.updated_at = timezone.now()
            preference.save(update_fields=["email_enabled", "updated_at"])
            telemetry.emit(telemetry.Event.NOTIFICATION_PREFERENCE_CHANGED, actor=user.get_username(),
                           subject=f"user:{user.pk}", request_id=request_id, data={"email_enabled": enabled})
    return preference
