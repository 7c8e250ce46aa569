"""Backups carry attestations and their signing pairs: a restored server answers and verifies
the same attestations and keeps signing with the same pair; files from before attestations
existed still restore."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from append_only_support import ATTESTATION_TRIGGERS, wipe_attestations
from django.db import connection
from django.utils import timezone

from attestations import keys, services
from attestations.models import Attestation, SigningKeyPair
from governance import services as governance_services
from governance.models import Tier
from workflows import backup

pytestmark = pytest.mark.django_db

def attest(customer, risk_class: str) -> dict:
    body = {"decision_id": str(uuid.uuid4()), "subject_digest_sha256": uuid.uuid4().hex * 2,
            "environment": "production", "risk_class": risk_class, "policy_version": "1.0.0",
            "repository": "acme/payments", "workflow_ref": ".github/workflows/deploy.yml@refs/heads/main",
            "run_id": "77", "run_attempt": 1, "gate_pass_states": {"risk": "pass"},
            "builder_id": "https://ci.example/acme", "expires_at": (timezone.now() + timedelta(hours=3)).isoformat()}
    status, answer = services.issue_attestation(customer, body)
    assert status == 201
    return answer


@pytest.fixture
def attested():
    Tier.objects.get_or_create(name="free", defaults={"display_name": "Free", "monthly_evaluations": 100,
                                                      "rate_per_minute": 60, "max_keys": 2})
    customer, _, _ = governance_services.create_customer("Acme", tier=Tier.objects.get(name="free"))
    keys.generate_pair()
    old = attest(customer, "high")
    keys.generate_pair()
    new = attest(customer, "low")
    return customer, [old["decision_id"], new["decision_id"]]


def records(ids) -> list[dict]:
    return [services.record(services.find(decision_id, customer=None)) for decision_id in ids]


def test_attestations_and_signing_pairs_survive_backup_and_restore(attested, tmp_path):
    customer, ids = attested
    before = records(ids)
    signer_before = keys.signer()[0].ed25519_fingerprint
    path = tmp_path / "backup.json.gz"
    manifest = backup.write_backup(path)
    assert manifest["counts"]["attestation_signing_pairs"] == 2 and manifest["counts"]["attestations"] == 2
    raw = path.read_bytes()
    assert bytes(SigningKeyPair.objects.first().ed25519_public) not in raw  # records are encrypted in the file

    wipe_attestations()
    inserted = backup.restore_backup(path)

    assert inserted["attestation_signing_pairs"] == 2 and inserted["attestations"] == 2
    assert records(ids) == before
    assert all(services.stored_error(attestation) is None for attestation in Attestation.objects.all())
    assert keys.signer()[0].ed25519_fingerprint == signer_before
    assert list(SigningKeyPair.objects.values_list("status", flat=True)) == ["active", "retired"]
    # The restored seeds sign: a new attestation verifies with the restored keyring.
    fresh = attest(customer, "medium")
    assert fresh["envelope"]["signatures"][0]["keyid"].endswith(signer_before)
    assert backup.restore_backup(path) == {name: 0 for name in inserted}  # twice changes nothing


def test_a_backup_from_before_attestations_still_restores(attested, tmp_path, monkeypatch):
    customer, ids = attested
    older = [section for section in backup.SECTIONS if section.name not in backup.ADDED_LATER]
    monkeypatch.setattr(backup, "SECTIONS", older)
    path = tmp_path / "older.json"
    backup.write_backup(path)
    monkeypatch.undo()

    assert "attestations" not in backup.check_backup(path)["counts"]
    inserted = backup.restore_backup(path)
    assert inserted["attestations"] == 0 and Attestation.objects.count() == 2


def test_a_restore_refuses_an_attestation_that_differs_from_the_stored_one(attested, tmp_path):
    path = tmp_path / "backup.json"
    backup.write_backup(path)
    install, remove = ATTESTATION_TRIGGERS[connection.vendor]
    with connection.cursor() as cursor:
        for statement in remove:
            cursor.execute(statement)
        cursor.execute(f"UPDATE {Attestation._meta.db_table} SET environment = 'staging' WHERE decision_id = %s",
                       [uuid.UUID(attested[1][0]).hex if connection.vendor == "sqlite" else attested[1][0]])
        for statement in install:
            cursor.execute(statement)

    with pytest.raises(backup.BackupError, match=f"attestations {attested[1][0]} exists with different contents"):
        backup.restore_backup(path)
