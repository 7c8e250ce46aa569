"""What the database holds: signing seeds only as Fernet tokens, re-encrypted by
`aegis_rotate_keys`; attestations append-only (the database refuses UPDATE and DELETE on
SQLite and PostgreSQL, with every column covered by the trigger)."""

from __future__ import annotations

import base64
import importlib
import io

import pytest
from attestation_http import Pipeline
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import override_settings

from attestations import keys
from attestations.models import Attestation, SigningKeyPair
from governance.key_rotation import rotate_keys
from workflows.models import ReencryptionWindow

MIGRATION = importlib.import_module("attestations.migrations.0001_initial")
TABLE = Attestation._meta.db_table
KEY_A = settings.FERNET_KEYS[0]  # the key the migrations' rows are under
KEY_B = "attestation-rotation-test-key-B"

pytestmark = pytest.mark.django_db


def seeds_of(row: SigningKeyPair) -> list[bytes]:
    return [bytes(row.ed25519_seed), bytes(row.mldsa65_seed)]


def forms(secret: bytes) -> list[bytes]:
    """The ways a seed could sit in a column unencrypted: raw, hex, base64 (both alphabets)."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


def every_raw_cell() -> list[tuple[str, str, bytes]]:
    """(table, column, bytes) of every non-NULL cell of every table, read without the ORM."""
    cells = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for name, value in zip(names, row):
                    if value is not None:
                        cells.append((table, name, bytes(value) if isinstance(value, (bytes, memoryview))
                                      else str(value).encode()))
    return cells


def raw_seed_cells(row: SigningKeyPair) -> list[bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ed25519_seed, mldsa65_seed FROM attestations_signingkeypair WHERE id = %s", [row.pk])
        return [bytes(value) if not isinstance(value, str) else value.encode() for value in cursor.fetchone()]


def test_the_seeds_are_stored_only_as_fernet_tokens():
    call_command("aegis_attestation_keys", "generate", stdout=io.StringIO())
    row = SigningKeyPair.objects.get()
    seeds = seeds_of(row)
    assert all(len(seed) == 32 for seed in seeds)

    stored = raw_seed_cells(row)
    assert all(cell.startswith(b"gAAAAA") for cell in stored)
    leaks = [(table, column) for table, column, cell in every_raw_cell()
             for seed in seeds for form in forms(seed) if form in cell]
    assert not leaks, f"a signing seed is readable at rest in {leaks}"
    # The public keys are stored in the clear, as they are published.
    public = row.public()
    assert any(public.mldsa65 in cell for _, _, cell in every_raw_cell())


def test_rotating_the_fernet_keys_re_encrypts_the_seeds_and_the_pair_still_signs():
    with override_settings(FERNET_KEYS=[KEY_A]):
        keys.generate_pair()
        row = SigningKeyPair.objects.get()
        seeds, tokens = seeds_of(row), raw_seed_cells(row)
        envelope = Pipeline().attest()

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        call_command("aegis_rotate_keys", stdout=io.StringIO())
        assert rotate_keys(check_only=True).reencrypted == 0

    with override_settings(FERNET_KEYS=[KEY_B]):
        rotated = SigningKeyPair.objects.get()
        assert seeds_of(rotated) == seeds
        assert all(new != old and new.startswith(b"gAAAAA") for new, old in zip(raw_seed_cells(rotated), tokens))
        pipeline = Pipeline("After rotation")
        assert pipeline.verify(envelope).json()["valid"] is True
        fresh = pipeline.attest()
        assert fresh["signatures"][0]["keyid"] == envelope["signatures"][0]["keyid"]
        assert pipeline.verify(fresh).json()["valid"] is True


# --- append-only -------------------------------------------------------------------------------

EXPECTED_TRIGGERS = {"sqlite": {f"{TABLE}_no_update", f"{TABLE}_no_delete"},
                     "postgresql": {f"{TABLE}_append_only"}}


def installed_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [TABLE])
        return {row[0] for row in cursor.fetchall()}


def refused(statement: str, params=()) -> str:
    """The database's refusal of `statement` (in a savepoint, so the test goes on)."""
    with pytest.raises(DatabaseError) as error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    return str(error.value)


@pytest.fixture
def attestation() -> Attestation:
    keys.generate_pair()
    Pipeline().attest()
    return Attestation.objects.get()


def test_the_trigger_covers_every_column_of_the_model():
    """A column added to Attestation later must be added to the migration's list, or the
    trigger would let it change inside a re-encryption window."""
    assert set(MIGRATION.UNCHANGED) == {field.column for field in Attestation._meta.concrete_fields}
    assert len(MIGRATION.UNCHANGED) == len(set(MIGRATION.UNCHANGED))
    assert installed_triggers() == EXPECTED_TRIGGERS[connection.vendor]


@pytest.mark.parametrize("statement", [
    f"UPDATE {TABLE} SET environment = 'staging' WHERE id = %s",
    f"UPDATE {TABLE} SET artifact_digest = '{'0' * 64}' WHERE id = %s",
    f"UPDATE {TABLE} SET envelope = '{{}}' WHERE id = %s",
    f"UPDATE {TABLE} SET expires = expires WHERE id = %s",
    f"DELETE FROM {TABLE} WHERE id = %s",
    f"DELETE FROM {TABLE} WHERE id >= %s",
], ids=["update-environment", "update-digest", "update-envelope", "update-nothing", "delete-one", "delete-all"])
def test_the_database_refuses_to_change_or_delete_an_attestation(attestation, statement):
    before = Attestation.objects.values().get(pk=attestation.pk)

    assert "attestations are append-only" in refused(statement, [attestation.pk])

    assert Attestation.objects.values().get(pk=attestation.pk) == before


def test_inside_a_re_encryption_window_nothing_may_change_either(attestation):
    """Attestations hold no encrypted column, so key rotation's window opens none of theirs."""
    with transaction.atomic():
        window = ReencryptionWindow.objects.create()
        assert "attestations are append-only" in refused(
            f"UPDATE {TABLE} SET run_id = 'rewritten' WHERE id = %s", [attestation.pk])
        assert "attestations are append-only" in refused(f"DELETE FROM {TABLE} WHERE id = %s", [attestation.pk])
        window.delete()
    assert Attestation.objects.get(pk=attestation.pk).run_id == attestation.run_id


def test_the_orm_refuses_before_any_sql_runs_and_querysets_meet_the_trigger(attestation):
    attestation.environment = "staging"
    with pytest.raises(ValueError, match="never changed"):
        attestation.save()
    with pytest.raises(ValueError, match="never deleted"):
        attestation.delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Attestation.objects.filter(pk=attestation.pk).update(environment="staging")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Attestation.objects.all().delete()
    assert Attestation.objects.get(pk=attestation.pk).environment == "production"
