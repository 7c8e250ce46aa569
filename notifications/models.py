"""What was announced (one NotificationEvent per thing that started waiting or went wrong)
and to whom (one NotificationDelivery per event, channel and recipient: the unique
constraints make a retried task or a duplicate signal send once)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.fields import pii_json_field


class NotificationPreference(models.Model):
    """A user's choice; a user without a row gets email notifications."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_preference")
    email_enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"email {'on' if self.email_enabled else 'off'} for user {self.user_id}"


class NotificationEvent(models.Model):
    class Kind(models.TextChoices):
        REVIEW_WAITING = "review.waiting", "Decision review waiting"
        OVERRIDE_WAITING = "override.waiting", "Override signature waiting"
        CONSENSUS_WAITING = "consensus.waiting", "Consensus vote waiting"
        CALIBRATION_WAITING = "calibration.waiting", "Calibration approval waiting"
        DRIFT_CRITICAL = "drift.critical", "Drift critical"
        VERIFICATION_FAILED = "audit.verification_failed", "Chain verification failed"
        BACKUP_FAILED = "backup.failed", "Backup failed"

    # What caused it, e.g. "workflow:<id>:<seq>" or "drift-report:<pk>": a second signal
    # for the same cause finds this row instead of announcing it again.
    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=40, choices=Kind.choices, db_index=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    subject = models.CharField(max_length=300)
    # The webhook body (event, occurred_at, subject, url, summary, tenant, numbers, deadline,
    # text); the email says the same. Encrypted: a summary may quote a proposal.
    payload = pii_json_field(default=dict)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return self.subject


class NotificationDelivery(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        SKIPPED = "skipped"

    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # The email's recipient; empty for the webhook.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    # Why it failed or was skipped: the exception's type and message, never a password or key.
    last_error = models.TextField(blank=True)
    # Set while a worker is sending, so a second copy of the task does not send it too.
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "channel", "user"], name="notification_delivery_once"),
            # NULLs are distinct in a unique index: the webhook (no user) needs its own.
            models.UniqueConstraint(fields=["event", "channel"], condition=Q(user__isnull=True),
                                    name="notification_webhook_once"),
        ]

    def __str__(self) -> str:
        to = f"user {self.user_id}" if self.user_id else "webhook"
        return f"{self.channel} to {to}: {self.status}"
