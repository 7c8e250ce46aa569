"""WorkflowInstance, WorkflowTransition, WorkflowCheckpoint (PLATFORM.md §4).

Transitions are append-only: a database trigger (see the migrations) refuses UPDATE and
DELETE, and each one is hash-chained to the one before it.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from governance.fields import pii_json_field, pii_text_field

GENESIS_HASH = "0" * 64


class WorkflowStatus(models.TextChoices):
    """Coarse status across all workflow types (`list_workflows(status=...)`)."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class WorkflowInstance(models.Model):
    workflow_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    workflow_type = models.CharField(max_length=30, db_index=True)
    current_state = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=WorkflowStatus.choices, db_index=True)
    state_data = pii_json_field(default=dict, blank=True)
    version = models.PositiveIntegerField(default=0, help_text="Number of transitions so far.")
    customer = models.ForeignKey("governance.Customer", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="workflows")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = "workflow"

    def __str__(self) -> str:
        return f"{self.workflow_type} {self.workflow_id} ({self.current_state})"


class WorkflowTransition(models.Model):
    workflow = models.ForeignKey(WorkflowInstance, on_delete=models.PROTECT, related_name="transitions")
    seq = models.PositiveIntegerField()
    from_state = models.CharField(max_length=40)
    to_state = models.CharField(max_length=40)
    triggered_by = pii_text_field()
    reason = pii_text_field(blank=True)
    payload = pii_json_field(default=dict, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["workflow_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["workflow", "seq"], name="transition_seq_unique")]
        verbose_name = "workflow transition"

    def __str__(self) -> str:
        return f"#{self.seq} {self.from_state} → {self.to_state}"


class ReencryptionWindow(models.Model):
    """Open only inside a key-rotation transaction: inserted and deleted before it commits,
    so no other connection ever sees a row. While one exists, the append-only trigger lets
    that transaction rewrite the encrypted columns of transitions, and nothing else (the
    hash chain covers the plaintext, so re-encryption leaves it valid)."""

    opened_at = models.DateTimeField(default=timezone.now)


class WorkflowCheckpoint(models.Model):
    workflow = models.ForeignKey(WorkflowInstance, on_delete=models.PROTECT, related_name="checkpoints")
    seq = models.PositiveIntegerField(help_text="The transition this snapshot follows.")
    checkpoint_data = pii_json_field()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    created_by = pii_text_field()

    class Meta:
        ordering = ["workflow_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["workflow", "seq"], name="checkpoint_seq_unique")]
        verbose_name = "workflow checkpoint"

    def __str__(self) -> str:
        return f"checkpoint #{self.seq}"


class ChainSeal(models.Model):
    """A workflow chain's stored bytes, MACed after a verification found them valid.

    The nightly depth accepts a chain whose bytes still match their seal without decrypting
    and re-hashing them: the verdict is a function of those bytes, and only a holder of the
    key (derived from AEGIS_ANCHOR_KEY, outside the database) can write a seal that matches
    other bytes. Any change (a new transition, an edit, re-encryption, other keys) fails the
    match and the chain is verified in full. A cache: no foreign key, not in backups;
    deleting seals costs time, never strictness (docs/decisions.md, "Chain seals")."""

    workflow_pk = models.BigIntegerField(primary_key=True)
    digest = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "chain seal"

    def __str__(self) -> str:
        return f"seal of workflow #{self.workflow_pk}"


class BackupRun(models.Model):
    """One scheduled backup (at most one per day), visible to administrators."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    day = models.DateField(unique=True)
    path = models.CharField(max_length=500)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    sha256 = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"backup {self.day}: {self.outcome}"


class VerificationDepth(models.TextChoices):
    """How much of each workflow's audit trail a verification re-checks (docs/decisions.md).
    Both check every transition's seq, link and hash, and the workflow row against its newest
    checkpoint and that checkpoint's hash; FULL also re-hashes every older checkpoint."""

    NEWEST = "newest", "newest checkpoint"
    FULL = "full", "every checkpoint"


class ChainVerificationRun(models.Model):
    """One verification of every audit chain; a failed one is shown on every staff page."""

    depth = models.CharField(max_length=10, choices=VerificationDepth.choices, default=VerificationDepth.FULL,
                             help_text="newest: older checkpoints were not re-hashed; full: every checkpoint was.")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    broken = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True, help_text="The first broken chains: workflow id and reason.")

    class Meta:
        ordering = ["-started_at", "-id"]

    @property
    def ok(self) -> bool:
        return self.finished_at is not None and self.broken == 0

    def __str__(self) -> str:
        return f"verification {self.started_at:%Y-%m-%d %H:%M}: {self.broken} broken of {self.checked}"
