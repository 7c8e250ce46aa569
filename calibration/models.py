"""Configuration versions and calibration proposals (PLATFORM.md §2–3)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from governance.fields import pii_text_field

from .chain import GENESIS_CHAIN_HASH, chain_hash_of


class ConfigurationVersion(models.Model):
    """An immutable full parameter set. The newest version that verifies is the active one
    (calibration/integrity.py)."""

    class Source(models.TextChoices):
        SCHEMA_DEFAULT = "schema_default", "Interface contract defaults"
        CALIBRATION = "calibration", "Calibration proposal"

    version = models.PositiveIntegerField(unique=True)
    parameters = models.JSONField(help_text="Flat {parameter: value} of all parameters.")
    content_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=20, choices=Source.choices)
    source_ref = models.CharField(max_length=200, blank=True,
                                  help_text="Contract version, or the calibration proposal id.")
    author = pii_text_field()
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    created_at = models.DateTimeField(default=timezone.now)
    chain_hash = models.CharField(max_length=64, blank=True, default="",
                                  help_text="SHA-256 over this version and the chain hash of the one before it.")

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version}"

    def linked_chain_hash(self, predecessor_chain_hash: str) -> str:
        return chain_hash_of(version=self.version, content_hash=self.content_hash, source=self.source,
                             source_ref=self.source_ref, parent_chain_hash=predecessor_chain_hash,
                             created_at=self.created_at)

    def save(self, *args, **kwargs):
        """Every creator (apply, a restore of a backup written before chain hashes) links the
        new version to the one stored before it, unless the row already carries its hash."""
        if not self.chain_hash:
            predecessor = (ConfigurationVersion.objects.filter(version__lt=self.version).order_by("-version")
                           .values_list("chain_hash", flat=True).first())
            self.chain_hash = self.linked_chain_hash(GENESIS_CHAIN_HASH if predecessor is None else predecessor)
        super().save(*args, **kwargs)


class CalibrationProposal(models.Model):
    """A proposed change of one calibratable parameter. Its state and full history live
    in its `calibration` workflow (hash-chained); these columns are what it proposes."""

    proposal_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    workflow = models.OneToOneField("workflows.WorkflowInstance", on_delete=models.PROTECT,
                                    related_name="calibration_proposal")
    parameter = models.CharField(max_length=40, db_index=True)
    current_value = models.FloatField(help_text="The active value when it was proposed.")
    proposed_value = models.FloatField()
    companion_changes = models.JSONField(
        default=dict, blank=True,
        help_text='Other parameters changed together, {name: {"from": x, "to": y}} (e.g. tau_critical '
                  'with tau_warning, so the pair stays ordered).')
    base_version = models.ForeignKey(ConfigurationVersion, on_delete=models.PROTECT, related_name="+")
    applied_version = models.OneToOneField(ConfigurationVersion, on_delete=models.PROTECT, null=True, blank=True,
                                           related_name="applied_proposal")
    justification = pii_text_field()
    proposed_by = pii_text_field()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_calibrationproposal", "Can approve or reject calibration proposals")]

    @property
    def status(self) -> str:
        return self.workflow.current_state

    @property
    def changes(self) -> dict[str, float]:
        """Every parameter this proposal sets: {name: proposed value}."""
        return {self.parameter: self.proposed_value,
                **{name: change["to"] for name, change in self.companion_changes.items()}}

    @property
    def values_when_proposed(self) -> dict[str, float]:
        return {self.parameter: self.current_value,
                **{name: change["from"] for name, change in self.companion_changes.items()}}

    def __str__(self) -> str:
        return f"{self.parameter}: {self.current_value:g} → {self.proposed_value:g}"
