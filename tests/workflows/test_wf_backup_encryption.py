"""Backups keep PII encrypted (format 2, PLATFORM.md §5 and §7): every record is a Fernet
token (of its zlib-compressed JSON) under the first of FERNET_KEYS; restoring needs a key
that wrote it; format-1 files (plain records) still restore; an altered token is refused
before anything is inserted."""

from __future__ import annotations

import io
import json
import uuid
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from fernet_fields.hkdf import derive_fernet_key

from attestations import keys as attestation_keys
from attestations import services as attestation_services
from attestations.models import Attestation, SigningKeyPair
from calibration import services as calibration_services
from calibration.models import CalibrationProposal, ConfigurationVersion
from governance import drift
from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.fields import EncryptedField
from governance.models import ApiKey, Customer, Decision, DriftReport, Tier
from governance.sealing import seal_decisions
from ledger.audit import verify_ledger
from workflows import services
from workflows.backup import FORMAT_VERSION, SECTIONS, BackupError, check_backup, restore_backup, write_backup
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from workflows.roles import Role
from append_only_support import wipe_attestations, wipe_decisions, wipe_ledger_to_fresh
from backup_support import (MANIFEST_PREFIX, SECTIONS_OF_1_2, read_text, record_positions, records_of, with_manifest_rehashed,
                            write_format_1, write_text)
from wf_support import HALT, submit, wipe_workflow_tables

pytestmark = pytest.mark.django_db

MARKER = "PII-backup-marker"
KEY_B = "a-newer-key-B-that-never-wrote-this-backup-0123456789"
SUBMITTER = Actor(f"{MARKER}-submitter", roles=frozenset())
RISK = Actor(f"{MARKER}-risk-lead", roles=frozenset({Role.RISK_LEAD}))


@pytest.fixture
def populated(db):
    """A tenant, a decision, workflows and a calibration proposal whose PII carries MARKER."""
    customer, key, _ = governance_services.create_customer(f"{MARKER} Customer GmbH",
                                                           tier=Tier.objects.get(name="team"))
    ctx = governance_services.CallContext(customer=customer, api_key=key, request_id="req-backup")
    governance_services.evaluate_proposal(ctx, parse_proposal({
        "proposal_summary": f"{MARKER} decision summary", "agent_id": f"{MARKER}-agent",
        "session_id": f"{MARKER}-session", "metadata": {"note": f"{MARKER} metadata"}}))
    halted = submit({**HALT, "proposal_summary": f"{MARKER} workflow summary"}, actor=SUBMITTER, customer=customer)
    services.request_override(halted.workflow_id, actor=RISK, justification=f"{MARKER} override justification")
    calibration_services.propose("tau_warning", 0.25, f"{MARKER} calibration justification", actor=RISK)
    attestation_keys.generate_pair()
    attestation_services.issue_attestation(customer, {
        "decision_id": str(uuid.uuid4()), "subject_digest_sha256": "c0" * 32, "environment": "production",
        "risk_class": "low", "policy_version": "1.0.0", "repository": "acme/app", "workflow_ref": "deploy.yml",
        "run_id": "1", "run_attempt": 1, "gate_pass_states": {"risk": "pass"}, "builder_id": "ci",
        "expires_at": (timezone.now() + timedelta(hours=1)).isoformat()})
    seal_decisions()
    baseline = drift.set_baseline(customer, [0.02 + i / 1000 for i in range(60)], actor=Actor(f"{MARKER}-analyst"),
                                  source="baseline.csv")
    DriftReport.objects.create(customer=customer, day=timezone.now().date(), baseline=baseline, kl_divergence=0.04,
                               status="normal", action="none", message="Within the warning threshold", n_current=80,
                               n_baseline=60, tau_warning=0.3, tau_critical=0.5, config_version=1)
    return customer


def key_a() -> str:
    """The key the database and the backups of these tests are written under."""
    return settings.FERNET_KEYS[0]


def database_state() -> dict[str, list[str]]:
    """Every backed-up row, decrypted, keyed by natural keys (the pk of a restored row differs)."""
    return {section.name: sorted(json.dumps(record, sort_keys=True, default=str) for record in section.dump())
            for section in SECTIONS}


def as_format_1(state: dict[str, list[str]]) -> dict[str, list[str]]:
    """A database state as much of it as a format-1 file holds."""
    kept = {name: rows for name, rows in state.items() if name not in SECTIONS_OF_1_2}
    kept["decisions"] = sorted(json.dumps({k: v for k, v in json.loads(row).items() if k != "pk"}, sort_keys=True)
                               for row in state["decisions"])
    return kept


RESTORED = (CalibrationProposal, WorkflowCheckpoint, WorkflowTransition, WorkflowInstance, Decision, ApiKey, Customer,
            ConfigurationVersion, Attestation, SigningKeyPair)


def empty_database() -> None:
    """Empty every table a backup restores into (tiers come from a migration and stay), and
    the rows outside the backup that refer to them (usage counters, …); the ledger as a
    fresh server has it."""
    dependants = [model for model in apps.get_models() if model not in RESTORED and any(
        f.is_relation and f.related_model in RESTORED for f in model._meta.concrete_fields)]
    wipe_attestations()
    with connection.cursor() as cursor:
        for model in (*dependants, CalibrationProposal):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    wipe_workflow_tables()
    wipe_decisions()  # and their seal blocks, with the append-only triggers lifted
    wipe_ledger_to_fresh()
    with connection.cursor() as cursor:
        for model in (ApiKey, Customer, ConfigurationVersion):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    assert row_counts() == {"customers": 0, "api_keys": 0, "decisions": 0, "configuration_versions": 0,
                            "workflows": 0, "transitions": 0, "checkpoints": 0, "calibration_proposals": 0,
                            "attestations": 0, "attestation_signing_pairs": 0}


def row_counts() -> dict[str, int]:
    """Counts only: readable whatever FERNET_KEYS is."""
    return {"customers": Customer.objects.count(), "api_keys": ApiKey.objects.count(),
            "decisions": Decision.objects.count(), "configuration_versions": ConfigurationVersion.objects.count(),
            "workflows": WorkflowInstance.objects.count(), "transitions": WorkflowTransition.objects.count(),
            "checkpoints": WorkflowCheckpoint.objects.count(),
            "calibration_proposals": CalibrationProposal.objects.count(), "attestations": Attestation.objects.count(),
            "attestation_signing_pairs": SigningKeyPair.objects.count()}


def all_chains_valid() -> int:
    reports = list(DurableWorkflowEngine().verify_all())
    assert reports and all(r.is_valid for r in reports), [r.message for r in reports if not r.is_valid]
    return len(reports)


def string_leaves(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(key)
            yield from string_leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from string_leaves(item)


def encrypted_plaintexts() -> set[str]:
    """Every string held in an encrypted column of the database (JSON values: every string
    in them), long enough that finding it by chance in base64 text is out of the question."""
    found: set[str] = set()
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        for row in model.objects.values_list(*names) if names else ():
            for value in row:
                found.update(s for s in string_leaves(value) if len(s) >= 6)
    return found


def refused(path: Path) -> str:
    with pytest.raises(CommandError) as info:
        call_command("aegis_restore", str(path), stdout=io.StringIO())
    assert str(info.value).startswith("restore refused, nothing was changed:")
    return str(info.value)


# --- (1) nothing readable in the file -------------------------------------------------------

@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_a_backup_file_holds_no_plaintext_pii(populated, tmp_path, name):
    path = tmp_path / name
    call_command("aegis_backup", output=str(path), stdout=io.StringIO())
    raw = path.read_bytes()
    text = read_text(path)  # decompressed for .gz
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    plaintexts = encrypted_plaintexts()
    assert sum(MARKER in s for s in plaintexts) >= 8  # the markers did reach the encrypted columns
    assert MARKER not in text and MARKER.encode() not in raw
    # every record line is one Fernet token; the rest is layout and a PII-free manifest
    lines = text.splitlines(keepends=True)
    positions = record_positions(lines)
    assert {section for section, _ in positions} == {s.name for s in SECTIONS}
    records_text = "".join(lines[index] for _, index in positions)
    assert sorted(s for s in plaintexts if s in records_text) == []
    first_key = Fernet(derive_fernet_key(key_a()))
    for _, index in positions:
        token = json.loads(lines[index].rstrip("\n").lstrip(","))
        assert isinstance(token, str) and token.startswith("gAAAAA")
        json.loads(zlib.decompress(first_key.decrypt(token.encode("ascii"))))  # under the first key
    records = {index for _, index in positions}
    layout = [line.rstrip("\n") for i, line in enumerate(lines) if i not in records]
    section_headers = [json.dumps(s.name) + ": [" for s in SECTIONS]
    assert layout[0] == '{"format": "aegis-backup", "format_version": 2, "sections": {'
    assert [line.lstrip(",") for line in layout[1:-2:2]] == section_headers
    assert layout[2:-2:2] == ["]"] * len(SECTIONS) and layout[-2] == "},"
    assert layout[-1].startswith(MANIFEST_PREFIX)
    manifest = json.loads(lines[-1][len(MANIFEST_PREFIX):].rstrip().removesuffix("}"))
    assert set(manifest) == {"schema_version", "app_version", "format_version", "created_at", "counts", "sha256",
                             "ledger", "anchor", "mac"}
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert check_backup(path)["counts"] == manifest["counts"]  # counts shown without decrypting anything


# --- (2) restore with the same keys -----------------------------------------------------------

@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_an_encrypted_backup_restores_into_an_empty_database(populated, tmp_path, name):
    path = tmp_path / name
    write_backup(path)
    before, counts = database_state(), row_counts()
    empty_database()
    inserted = restore_backup(path)
    assert inserted["workflows"] == counts["workflows"] and inserted["decisions"] == Decision.objects.count() == 2
    assert database_state() == before and row_counts() == counts
    assert all_chains_valid() == counts["workflows"]
    decision = Decision.objects.get(review_workflow_id=None)
    assert (decision.proposal_summary, decision.agent_id, decision.metadata) == (
        f"{MARKER} decision summary", f"{MARKER}-agent", {"note": f"{MARKER} metadata"})
    halted = Decision.objects.exclude(review_workflow_id=None).get()
    assert halted.proposal_summary == f"{MARKER} workflow summary" and halted.workflow.current_state == \
        "override_requested"
    assert CalibrationProposal.objects.get().justification == f"{MARKER} calibration justification"
    assert set(WorkflowTransition.objects.values_list("triggered_by", flat=True)) >= {SUBMITTER.name, RISK.name}
    assert restore_backup(path) == {s.name: 0 for s in SECTIONS}  # a second restore changes nothing
    assert database_state() == before


# --- (3) key rotation -----------------------------------------------------------------------

def test_restore_after_rotation_needs_the_old_key_still_listed(populated, tmp_path):
    path = tmp_path / "backup.json.gz"
    write_backup(path)  # under key A
    before, counts = database_state(), row_counts()
    empty_database()

    with override_settings(FERNET_KEYS=[KEY_B]):  # A removed: refused, nothing restored
        error = refused(path)
        with pytest.raises(BackupError):
            check_backup(path)
        assert row_counts() == {name: 0 for name in row_counts()}
    assert "section 'groups', record 1" in error  # the file's first section
    assert "written under a key that is no longer in FERNET_KEYS" in error
    assert row_counts() == {name: 0 for name in counts}

    with override_settings(FERNET_KEYS=[KEY_B, key_a()]):  # A kept at the end, decrypt-only
        restore_backup(path)
        assert database_state() == before and row_counts() == counts
        assert all_chains_valid() == counts["workflows"]
        rotated = tmp_path / "after-rotation.json"
        write_backup(rotated)  # a backup after the rotation is written under B

    empty_database()
    with override_settings(FERNET_KEYS=[KEY_B]):
        restore_backup(rotated)
        assert database_state() == before
        assert all_chains_valid() == counts["workflows"]
        with pytest.raises(BackupError, match="no longer in FERNET_KEYS"):
            check_backup(path)


# --- (4) format 1 -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_a_format_1_backup_with_plain_records_still_restores(populated, tmp_path, name):
    path = tmp_path / name
    write_format_1(path)
    assert f'"proposal_summary":"{MARKER} decision summary"' in read_text(path)  # plain, as it was
    assert check_backup(path, allow_unauthenticated=True)["format_version"] == 1
    before, counts = database_state(), row_counts()
    empty_database()
    restore_backup(path, allow_unauthenticated=True)  # format 1 predates authenticated backups
    # Format 1 holds no ledger, no seal blocks and no decision pks: the restore records what it
    # restored in the ledger, and the decisions are unsealed until the next sealing run.
    after = database_state()
    assert as_format_1(after) == as_format_1(before) and row_counts() == counts
    assert list(verify_ledger()) == []
    kinds = [json.loads(row)["kind"] for row in before["ledger_entries"]]
    assert len(after["ledger_entries"]) == len(kinds) - kinds.count("decision_seal")
    assert all_chains_valid() == counts["workflows"]
    assert restore_backup(path, allow_unauthenticated=True) == {s.name: 0 for s in SECTIONS}
    # the same data written now comes out as format 2 with the same records, and 1.2.0's
    current = tmp_path / ("now-" + name)
    write_backup(current)
    written_now = [(section, {k: v for k, v in record.items() if not (section == "decisions" and k == "pk")})
                   for section, record in records_of(current) if section not in SECTIONS_OF_1_2]
    assert written_now == records_of(path)


# --- (5) tampering --------------------------------------------------------------------------

def flip_a_token_character(text: str, section: str = "decisions") -> str:
    lines = text.splitlines(keepends=True)
    index = next(i for s, i in record_positions(lines) if s == section)
    middle = len(lines[index]) // 2
    lines[index] = lines[index][:middle] + ("B" if lines[index][middle] == "A" else "A") + lines[index][middle + 1:]
    return "".join(lines)


@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_an_altered_token_fails_the_manifest_check_before_anything_is_inserted(populated, tmp_path, name):
    path = tmp_path / name
    write_backup(path)
    write_text(path, flip_a_token_character(read_text(path)))
    empty_database()
    with pytest.raises(BackupError, match="SHA-256 mismatch") as info:
        check_backup(path)
    assert "FERNET_KEYS" not in str(info.value)  # an altered file is called that, not a key problem
    assert "SHA-256 mismatch" in refused(path)
    assert row_counts() == {name: 0 for name in row_counts()}


def test_an_altered_token_under_a_recomputed_hash_is_still_refused(populated, tmp_path):
    """The hash is no secret; each token's own authentication still catches the change."""
    path = tmp_path / "backup.json"
    write_backup(path)
    path.write_text(with_manifest_rehashed(flip_a_token_character(path.read_text(encoding="utf-8"))),
                    encoding="utf-8")
    empty_database()
    error = refused(path)
    assert "section 'decisions', record 1" in error
    assert row_counts() == {name: 0 for name in row_counts()}


def test_a_plain_record_slipped_into_a_format_2_file_is_refused(populated, tmp_path):
    path = tmp_path / "backup.json"
    write_backup(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    section, index = record_positions(lines)[0]
    lines[index] = json.dumps({"name": "injected"}) + "\n"
    path.write_text(with_manifest_rehashed("".join(lines)), encoding="utf-8")
    with pytest.raises(BackupError, match=f"section '{section}', record 1 is not an encrypted record"):
        check_backup(path)


def test_a_manifest_that_disagrees_with_the_layout_or_an_unknown_format_is_refused(populated, tmp_path):
    path = tmp_path / "backup.json"
    write_backup(path)
    text = path.read_text(encoding="utf-8")
    body, _, manifest_line = text.rpartition("\n" + MANIFEST_PREFIX)
    path.write_text(body + "\n" + MANIFEST_PREFIX + manifest_line.replace('"format_version": 2', '"format_version": 1'),
                    encoding="utf-8")
    with pytest.raises(BackupError, match="manifest says format 1 but the file is laid out as format 2"):
        check_backup(path)
    path.write_text(with_manifest_rehashed(text.replace('"format_version": 2', '"format_version": 3')),
                    encoding="utf-8")
    with pytest.raises(BackupError, match=r"backup format 3 is not supported \(this release reads 1, 2\)"):
        check_backup(path)


def test_a_file_changed_between_the_check_and_the_restore_is_rolled_back(populated, tmp_path, monkeypatch):
    """The second pass checks the hash again at the end, inside the transaction."""
    from workflows import backup

    path = tmp_path / "backup.json"
    write_backup(path)
    empty_database()
    real_check = backup.check_backup

    def check_then_alter(target, **options):
        """Swap two workflow records: every token still decrypts, only the hash tells."""
        manifest = real_check(target, **options)
        lines = read_text(path).splitlines(keepends=True)
        first, second = [i for s, i in record_positions(lines) if s == "workflows"][:2]
        lines[first], lines[second] = lines[second].lstrip(","), "," + lines[first]
        write_text(path, "".join(lines))
        return manifest

    monkeypatch.setattr(backup, "check_backup", check_then_alter)
    with pytest.raises(BackupError, match="SHA-256 mismatch"):
        restore_backup(path)
    assert row_counts() == {name: 0 for name in row_counts()}
