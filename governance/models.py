"""Tenants (customers), their tiers and API keys, stored decisions, usage and idempotency."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.apps import apps
from django.db import models
from django.utils.functional import cached_property
from django.utils import timezone

from .fields import pii_json_field, pii_text_field, secret_json_field

API_KEY_PREFIX = "aegis_"


def hash_api_key(plaintext: str) -> str:
    """SHA-256 of a key: keys are 256-bit random tokens, so a fast hash is safe and lets
    each request find its key by an indexed lookup."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class Tier(models.Model):
    """A plan: monthly evaluation quota, per-minute rate and key allowance."""

    name = models.SlugField(max_length=40, unique=True)
    display_name = models.CharField(max_length=100)
    monthly_evaluations = models.PositiveIntegerField()
    rate_per_minute = models.PositiveIntegerField()
    max_keys = models.PositiveIntegerField()
    overage_per_eval = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    monthly_price_usd = models.PositiveIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["monthly_evaluations"]

    def __str__(self) -> str:
        return self.display_name


class Customer(models.Model):
    """A tenant: every key, decision and usage figure belongs to exactly one."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    customer_id = models.CharField(max_length=40, unique=True, default="", editable=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    company = models.CharField(max_length=200, blank=True)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="customers")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    # Plain defaults, not auto_now: a restore must keep the stored times.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def save(self, *args, **kwargs):
        if not self.customer_id:
            self.customer_id = new_public_id("cus")
        self.updated_at = timezone.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_id})"


class ApiKey(models.Model):
    """An API key. Only its SHA-256 is stored; the plaintext is shown once at creation."""

    key_id = models.CharField(max_length=40, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=20, editable=False, help_text="First characters, for recognising a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "API key"

    @property
    def enabled(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def generate(cls, customer: Customer, name: str) -> tuple["ApiKey", str]:
        """An unsaved key and its plaintext (which is never stored)."""
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls(customer=customer, name=name, key_id=new_public_id("key"),
                  prefix=plaintext[:12], key_hash=hash_api_key(plaintext))
        return key, plaintext

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Decision(models.Model):
    """One evaluation: the request's fields, the engine's answer, and how it was made.

    Written once and never changed (what people did afterwards lives in its review
    workflow). The numeric inputs are columns so drift checks and calibration previews can
    read millions of rows straight into arrays; PII goes through `governance.fields`.
    """

    class Channel(models.TextChoices):
        SDK = "sdk"
        API = "api"
        MCP = "mcp"

    decision_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    # None only for a proposal a signed-in person submitted without naming a tenant.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="decisions")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.API)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10)
    shadow = models.BooleanField(default=False)
    config_version = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    # PII (PLATFORM.md §7).
    proposal_summary = pii_text_field()
    agent_id = pii_text_field(blank=True)
    session_id = pii_text_field(blank=True)
    metadata = pii_json_field(default=dict, blank=True)

    # Inputs, as columns for replay (calibration preview) and drift.
    estimated_impact = models.CharField(max_length=10)
    requires_human_approval = models.BooleanField(default=False)
    risk_baseline = models.FloatField()
    risk_proposed = models.FloatField()
    profit_baseline = models.FloatField()
    profit_proposed = models.FloatField()
    novelty_score = models.FloatField()
    complexity_score = models.FloatField()
    quality_score = models.FloatField()
    has_zero_subscore = models.BooleanField(default=False)
    utility_mean = models.FloatField(null=True, blank=True)
    utility_std_error = models.FloatField(null=True, blank=True)
    drift_status = models.CharField(max_length=20, blank=True)
    # The inputs, drift KL and status packed for fast replay (governance.engine.replay).
    replay_vector = models.BinaryField()
    # The remaining non-PII request fields (phase, change_type, flags, subscores, drift data).
    request_data = models.JSONField(default=dict)
    response = models.JSONField()
    # The review a person must act on (pause, escalate, halt; not shadow), opened with it:
    # its workflow_id, not a foreign key, so the seed's workflow export and re-import
    # (which gives workflows new row ids) keeps the link.
    review_workflow_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    # SHA-256 of the canonical record (governance.sealing.decision_digest), sealed into blocks.
    content_hash = models.CharField(max_length=64, editable=False, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "created_at"], name="decision_customer_time"),
            # Covers the drift check's read (a tenant's risk_proposed over a time window).
            models.Index(fields=["customer", "created_at", "risk_proposed"], name="decision_drift_sample"),
            # The replay packs' reads: one day at a time, and the live rows after the packed days.
            models.Index(fields=["created_at"], name="decision_time"),
        ]

    def save(self, *args, **kwargs):
        # Only an insert: the database trigger refuses UPDATE too, this says so before SQL runs.
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("decisions are written once and never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("decisions are written once and never deleted")

    def __str__(self) -> str:
        return f"{self.decision_id} {self.status}"

    @cached_property
    def workflow(self):
        """The review workflow, or None (lists set it for many decisions at once:
        governance.decisions.attach_workflows)."""
        if self.review_workflow_id is None:
            return None
        return apps.get_model("workflows", "WorkflowInstance").objects.filter(
            workflow_id=self.review_workflow_id).first()


class DecisionSeal(models.Model):
    """One block of sealed decisions (governance.sealing): the [pk, decision_id, content_hash]
    of every decision with first_pk <= pk <= last_pk, hash-chained to the block before it.
    Append-only like transitions: a trigger refuses UPDATE and DELETE."""

    seq = models.PositiveIntegerField(unique=True)
    first_pk = models.BigIntegerField()
    last_pk = models.BigIntegerField()
    entries = models.JSONField(help_text="[pk, decision_id, content_hash] of each sealed decision, in pk order.")
    count = models.PositiveIntegerField()
    entries_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["seq"]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("decision seals are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("decision seals are append-only")

    def __str__(self) -> str:
        return f"seal #{self.seq}: pk {self.first_pk}–{self.last_pk} ({self.count} decisions)"


class DecisionReplayPack(models.Model):
    """The replay vectors of one closed UTC day's non-shadow decisions, pre-packed
    (governance.replay_packs) so a calibration preview reads ~30 rows instead of a million.
    Derived data: rebuilt from the decisions at will, never backed up."""

    day = models.DateField(unique=True)
    count = models.PositiveIntegerField()
    ids = models.BinaryField(help_text="The decisions' primary keys, little-endian int64, ascending.")
    vectors = models.BinaryField(help_text="Their replay vectors (governance.engine.replay), in the same order.")
    packed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"replay pack {self.day} ({self.count} decisions)"


class UsageCounter(models.Model):
    """Calls per tenant, month and channel, plus one row per tenant and month over all
    channels (`ALL_CHANNELS`, what the quota reads); incremented in the call's own
    transaction."""

    ALL_CHANNELS = "all"

    class Kind(models.TextChoices):
        EVALUATION = "evaluation"
        RISK_CHECK = "risk_check"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="usage")
    month = models.CharField(max_length=7)  # YYYY-MM
    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Decision.Channel.choices)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "month", "kind", "channel"],
                                               name="usage_counter_unique")]


class SandboxUsage(models.Model):
    """Unauthenticated sandbox evaluations per client IP and UTC day."""

    client_ip = models.GenericIPAddressField()
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_ip", "day"], name="sandbox_usage_unique")]


class IdempotencyRecord(models.Model):
    """The first outcome of a (tenant, method, path, Idempotency-Key), kept 24 hours."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    completed = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True)
    # May hold a new API key's plaintext (replayed to a retry), so it is encrypted at rest.
    response_body = secret_json_field(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "method", "path", "key"],
                                               name="idempotency_unique")]


class DriftBaseline(models.Model):
    """The reference sample a tenant's drift is measured against (the newest is in force)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="drift_baselines")
    values = models.JSONField(help_text="Finite numbers: the baseline sample of risk_proposed.")
    source = models.CharField(max_length=200, help_text="An uploaded file, or the decisions between two dates.")
    created_by = pii_text_field()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.customer.name}: {len(self.values)} values ({self.source})"


class DriftReport(models.Model):
    """One day's drift check of a tenant (at most one per day: the task is idempotent)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="drift_reports")
    day = models.DateField()
    baseline = models.ForeignKey(DriftBaseline, on_delete=models.PROTECT, related_name="reports")
    kl_divergence = models.FloatField()
    status = models.CharField(max_length=20)
    action = models.CharField(max_length=40)
    message = models.TextField()
    n_current = models.PositiveIntegerField()
    n_baseline = models.PositiveIntegerField()
    tau_warning = models.FloatField()
    tau_critical = models.FloatField()
    config_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["customer", "day"], name="drift_report_one_per_day")]

    def __str__(self) -> str:
        return f"{self.customer.name} {self.day}: {self.status} (KL {self.kl_divergence:.4f})"


class TelemetryEvent(models.Model):
    """An append-only telemetry record (see governance.telemetry for the event registry)."""

    name = models.CharField(max_length=40, db_index=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = pii_text_field(blank=True)
    subject = models.CharField(max_length=100, blank=True, help_text="What it is about: a decision, workflow, …")
    data = pii_json_field(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("telemetry events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("telemetry events are append-only")

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.name}"
