"""Read-only admin for attestations and their signing pairs: attestations are written only by
POST /attest (attestations.services), pairs only by `manage.py aegis_attestation_keys`.
A pair's private seeds are never shown."""

from django.contrib import admin
from django.utils.html import format_html

from governance.admin import ReadOnlyAdmin

from . import keys
from .envelope import fingerprint
from .models import Attestation, SigningKeyPair


@admin.register(Attestation)
class AttestationAdmin(ReadOnlyAdmin):
    """The envelope and predicate are shown as indented JSON (ReadOnlyAdmin)."""

    list_display = ("decision_id", "customer", "environment", "risk_class", "artifact_digest", "created_at")
    list_filter = ("environment", "risk_class", "customer")
    date_hierarchy = "created_at"
    search_fields = ("decision_id", "artifact_digest", "aegis_evaluate_decision_id")
    fields = ("decision_id", "customer", "aegis_evaluate_decision_id", "artifact_digest", "environment",
              "risk_class", "policy_version", "repository", "workflow_ref", "run_id", "run_attempt", "issued_at",
              "expires_at", "created_at", "signing_pair", "statement_sha256", "envelope", "predicate")


@admin.register(SigningKeyPair)
class SigningKeyPairAdmin(ReadOnlyAdmin):
    """Public halves only: `fields` leaves the encrypted seeds out of every view."""

    GENERATE_NOTE = ("Pairs are generated with `manage.py aegis_attestation_keys generate` (the new pair signs "
                     "from then on; older pairs keep verifying), or come from AEGIS_ATTESTATION_ED25519_SEED and "
                     "AEGIS_ATTESTATION_MLDSA65_SEED.")
    list_display = ("ed25519_keyid", "mldsa65_keyid", "shown_status", "source", "created_at", "retired_at")
    fields = ("ed25519_keyid", "mldsa65_keyid", "ed25519_fingerprint", "mldsa65_fingerprint", "shown_status",
              "source", "created_at", "retired_at")
    readonly_fields = fields

    @admin.display(description="Ed25519 key id")
    def ed25519_keyid(self, obj):
        return format_html('<code>{}</code>', obj.public().ed25519_keyid)

    @admin.display(description="ML-DSA-65 key id")
    def mldsa65_keyid(self, obj):
        return format_html('<code>{}</code>', obj.public().mldsa65_keyid)

    @admin.display(description="ML-DSA-65 fingerprint (SHA-256 of the raw key)")
    def mldsa65_fingerprint(self, obj):
        return fingerprint(bytes(obj.mldsa65_public))

    @admin.display(description="status")
    def shown_status(self, obj):
        """As the keys endpoint reports it: with an environment pair, only that one is active."""
        environment = keys.environment_pair()
        return keys.status_of(obj, environment.public() if environment is not None else None)

    @admin.display(description="private seeds")
    def source(self, obj):
        return "from the environment (not stored)" if obj.from_environment else "stored encrypted (FERNET_KEYS)"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "subtitle": self.GENERATE_NOTE})
