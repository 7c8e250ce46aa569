"""Signing key pairs and the attestations signed with them (see attestations.envelope)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.fields import secret_bytes_field
from governance.models import Customer

from .envelope import PublicPair


class SigningKeyPair(models.Model):
    """An Ed25519 + ML-DSA-65 pair. The newest active pair signs; retired pairs only verify,
    so envelopes signed before a rotation keep verifying. Seeds are encrypted at rest; a
    pair whose seeds come from the environment is recorded with its public keys only."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        RETIRED = "retired"

    ed25519_fingerprint = models.CharField(max_length=64, unique=True, editable=False)
    ed25519_public = models.BinaryField()
    mldsa65_public = models.BinaryField()
    ed25519_seed = secret_bytes_field(null=True, blank=True)
    mldsa65_seed = secret_bytes_field(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "attestation signing key pair"

    def public(self) -> PublicPair:
        return PublicPair(bytes(self.ed25519_public), bytes(self.mldsa65_public))

    @property
    def from_environment(self) -> bool:
        return self.ed25519_seed is None

    def __str__(self) -> str:
        return f"{self.public().ed25519_keyid[:24]}… ({self.status})"


class Attestation(models.Model):
    """One signed attestation: written once, never changed or deleted (database triggers)."""

    decision_id = models.UUIDField(unique=True, help_text="The attestation's id, chosen by the caller.")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="attestations")
    envelope = models.JSONField()
    statement_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the canonical statement (the payload).")
    predicate = models.JSONField()
    artifact_digest = models.CharField(max_length=64)
    environment = models.CharField(max_length=20)
    risk_class = models.CharField(max_length=10)
    policy_version = models.CharField(max_length=200)
    repository = models.CharField(max_length=500)
    workflow_ref = models.CharField(max_length=1000)
    run_id = models.CharField(max_length=200)
    run_attempt = models.PositiveIntegerField()
    issued_at = models.CharField(max_length=40, help_text="As signed in the predicate.")
    expires_at = models.CharField(max_length=40, help_text="As signed in the predicate.")
    expires = models.DateTimeField(help_text="expires_at as a moment, for queries.")
    created_at = models.DateTimeField(default=timezone.now)
    aegis_evaluate_decision_id = models.UUIDField(null=True, blank=True,
                                                  help_text="The governance decision that let the artifact ship.")
    signing_pair = models.ForeignKey(SigningKeyPair, on_delete=models.PROTECT, related_name="attestations")
    request_hash = models.CharField(max_length=64, help_text="Fingerprint of the request body (replays).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["aegis_evaluate_decision_id"], name="attestation_evaluate_decision")]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("attestations are written once and never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("attestations are written once and never deleted")

    def __str__(self) -> str:
        return f"{self.decision_id} {self.environment} sha256:{self.artifact_digest[:12]}…"
