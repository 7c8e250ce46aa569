"""aegis_backup / aegis_restore (plain and gzip, encrypted format 2 and plain format 1;
corrupted, truncated and conflicting files refused with nothing restored), aegis_preflight
and aegis_verify_chain. Encryption of backups in detail: test_wf_backup_encryption.py."""

from __future__ import annotations

import gzip
import zlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.conf import settings
from django.db import connection

from governance.models import ApiKey, Customer, Decision, UsageCounter
from ledger.models import LedgerEntry
from workflows import services
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance, WorkflowTransition
from append_only_support import wipe_decisions
from backup_support import is_format_1, read_text, record_positions, records_of, write_format_1, write_text
from wf_support import (db_value, ESCALATE, HALT, PAUSE, PROCEED, RISK, all_hashes, consensus, db_counts,
                        drop_append_only_triggers, reload, submit, wipe_workflow_tables)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
REMOVAL_SCHEMA = ROOT / "tests" / "fixtures" / "schema" / "removal.yaml"


def run(command, *args, **options):
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_refused(command, *args, **options) -> tuple[CommandError, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command(command, *args, stdout=out, stderr=err, **options)
    return info.value, out.getvalue(), err.getvalue()


@pytest.fixture
def populated(make_tenant):
    """Tenant-bound and tenant-less workflows of every type, in several states."""
    customer, _ = make_tenant("Acme Backups")
    halted = submit(HALT, customer=customer)
    override = services.request_override(halted.workflow_id, actor=RISK, justification="Needed — für den Start")
    services.fire_event(override.workflow_id, "approve", actor=RISK, comment="ok")
    submit(PAUSE)
    submit(PROCEED)
    escalated = submit(ESCALATE)
    services.fire_event(escalated.workflow_id, "reject", actor=RISK, comment="no")
    vote = consensus(["ann", "ben"], customer=customer)
    services.fire_event(vote.workflow_id, "vote", actor=Actor("ann"), params={"vote": "approve"})
    return {"customer": customer, "halted": halted, "override": override, "vote": vote}


def tenant_state():
    return (sorted(Customer.objects.values_list("customer_id", "name", "tier__name", "status")),
            sorted(ApiKey.objects.values_list("key_id", "prefix", "key_hash")),
            sorted(str(d) for d in Decision.objects.values_list("decision_id", flat=True)))


def empty_database():
    """Empty every table the backup restores rows into (tiers come from a migration and stay).
    Plain DELETEs, not the ORM's cascade: it would visit every model that refers to a tenant."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {UsageCounter._meta.db_table}")
    wipe_decisions()  # and their seal blocks, with the append-only triggers lifted
    wipe_workflow_tables()
    with connection.cursor() as cursor:
        for model in (ApiKey, Customer):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    assert db_counts() == (0, 0, 0) and Customer.objects.count() == 0


def all_chains_valid():
    reports = list(DurableWorkflowEngine().verify_all())
    assert reports and all(r.is_valid for r in reports), [r.message for r in reports if not r.is_valid]
    return len(reports)


# --- backup and restore ----------------------------------------------------------------------

def make_backup(path: Path, fmt: int) -> str:
    """Format 2 through aegis_backup (its output returned); format 1 as older releases wrote it."""
    if fmt == 2:
        return run("aegis_backup", output=str(path))[0]
    write_format_1(path)
    return ""


FORMATS = pytest.mark.parametrize("fmt", [2, 1], ids=["format-2", "format-1"])


def unauthenticated(fmt: int) -> tuple[str, ...]:
    """Format 1 files come from releases before authenticated backups: no MAC."""
    return ("--allow-unauthenticated",) if fmt == 1 else ()


@FORMATS
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_backup_empty_database_restore_gives_identical_verified_chains(populated, tmp_path, name, fmt):
    path = tmp_path / name
    hashes, tenants, counts = all_hashes(), tenant_state(), db_counts()
    out = make_backup(path, fmt)
    if fmt == 2:
        assert f"Backup written to {path}" in out and f"workflows {counts[0]}" in out
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")

    empty_database()
    out, _ = run("aegis_restore", str(path), *unauthenticated(fmt))
    assert f"workflows {counts[0]}" in out and "every audit chain and the ledger verified" in out
    assert all_hashes() == hashes
    assert tenant_state() == tenants
    assert db_counts() == counts
    assert all_chains_valid() == counts[0]
    customer = Customer.objects.get(customer_id=populated["customer"].customer_id)
    assert set(WorkflowInstance.objects.filter(customer=customer).values_list("workflow_id", flat=True)) == {
        populated["halted"].workflow_id, populated["override"].workflow_id, populated["vote"].workflow_id}
    # the restored workflows keep working
    services.fire_event(populated["vote"].workflow_id, "vote", actor=Actor("ben"), params={"vote": "approve"})
    assert reload(populated["vote"]).current_state == "approved"


@FORMATS
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_restoring_twice_changes_nothing(populated, tmp_path, name, fmt):
    path = tmp_path / name
    make_backup(path, fmt)
    hashes, tenants, counts = all_hashes(), tenant_state(), db_counts()
    out, _ = run("aegis_restore", str(path), *unauthenticated(fmt))  # onto the database it came from
    assert ("inserted groups 0, accounts 0, schedules 0, tiers 0, customers 0, api_keys 0, decisions 0, "
            "decision_seals 0, drift_baselines 0, drift_reports 0, configuration_versions 0, workflows 0, "
            "calibration_proposals 0") in out
    empty_database()
    run("aegis_restore", str(path), *unauthenticated(fmt))
    out, _ = run("aegis_restore", str(path), *unauthenticated(fmt))
    assert "workflows 0" in out and "customers 0" in out
    assert (all_hashes(), tenant_state(), db_counts()) == (hashes, tenants, counts)


def _a_workflow_record(text: str) -> tuple[list[str], int]:
    lines = text.splitlines(keepends=True)
    return lines, next(index for section, index in record_positions(lines) if section == "workflows")


def flip_byte_in_a_record(text: str) -> str:
    """Change one character inside a workflow record (still valid JSON): in format 1 a
    value, in format 2 a character in the middle of the record's token."""
    if is_format_1(text):
        marker = '"current_state":"in_review"'
        assert marker in text
        return text.replace(marker, '"current_state":"in_reviex"', 1)
    lines, index = _a_workflow_record(text)
    line = lines[index]
    middle = len(line) // 2
    lines[index] = line[:middle] + ("B" if line[middle] == "A" else "A") + line[middle + 1:]
    return "".join(lines)


def break_json_in_a_record(text: str) -> str:
    if is_format_1(text):
        marker = '"workflow_type":"consensus"'
        assert marker in text
        return text.replace(marker, '"workflow_type"X"consensus"', 1)
    lines, index = _a_workflow_record(text)
    lines[index] = lines[index].rstrip("\n").removesuffix('"') + "\n"  # the token's closing quote gone
    return "".join(lines)


def assert_nothing_restored(expected_counts, expected_tenants):
    assert db_counts() == expected_counts
    assert tenant_state() == expected_tenants


@FORMATS
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
@pytest.mark.parametrize("damage, reason", [
    (flip_byte_in_a_record, "SHA-256 mismatch"),
    (break_json_in_a_record, "is not valid JSON"),
    (lambda text: text[: len(text) // 2], ""),
    (lambda text: text[: text.index('"manifest"')], "ends before its manifest"),
    (lambda text: text.replace('"sections": {', '"sections":{', 1), "unexpected first line"),
], ids=["flipped-byte", "broken-json", "truncated-mid-record", "manifest-cut", "not-a-backup"])
def test_damaged_backup_is_refused_and_nothing_restored(populated, tmp_path, name, damage, reason, fmt):
    path = tmp_path / name
    make_backup(path, fmt)
    write_text(path, damage(read_text(path)))
    empty_database()
    counts, tenants = db_counts(), tenant_state()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert str(error).startswith("restore refused, nothing was changed:")
    assert reason in str(error)
    assert_nothing_restored(counts, tenants)


def gzip_member_corrupted(raw: bytes, want) -> bytes:
    """`raw` with one bit flipped in the middle of its compressed body, at the first position
    from there where decompressing fails with an exception of type `want`."""
    for position in range(len(raw) // 2, len(raw) - 8):
        candidate = bytearray(raw)
        candidate[position] ^= 0x01
        try:
            gzip.decompress(bytes(candidate))
        except want:
            return bytes(candidate)
        except Exception:  # noqa: BLE001 — another kind of failure: try the next byte
            continue
    raise AssertionError(f"no single-bit flip gives {want}")


@pytest.mark.parametrize("want", [gzip.BadGzipFile, zlib.error], ids=["crc-error", "deflate-error"])
def test_gzip_backup_with_a_flipped_compressed_byte_is_refused(populated, tmp_path, want):
    path = tmp_path / "backup.json.gz"
    run("aegis_backup", output=str(path))
    path.write_bytes(gzip_member_corrupted(path.read_bytes(), want))
    empty_database()
    counts, tenants = db_counts(), tenant_state()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert str(error).startswith("restore refused, nothing was changed:")
    assert_nothing_restored(counts, tenants)


def test_gzip_backup_truncated_in_the_middle_is_refused(populated, tmp_path):
    path = tmp_path / "backup.json.gz"
    run("aegis_backup", output=str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    empty_database()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert "nothing was changed" in str(error)
    assert db_counts() == (0, 0, 0)


def test_backup_that_conflicts_with_an_existing_workflow_is_refused(populated, tmp_path):
    path = tmp_path / "backup.json"
    run("aegis_backup", output=str(path))
    # after the backup: one workflow moves on, another (with its history) is lost
    vote = populated["vote"]
    services.fire_event(vote.workflow_id, "vote", actor=Actor("ben"), params={"vote": "reject"})
    lost = reload(populated["override"])
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        for table in ("workflows_workflowcheckpoint", "workflows_workflowtransition"):
            cursor.execute(f"DELETE FROM {table} WHERE workflow_id = %s", [lost.pk])
        cursor.execute("DELETE FROM workflows_workflowinstance WHERE id = %s", [lost.pk])
    hashes, counts, tenants = all_hashes(), db_counts(), tenant_state()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert f"workflow {vote.workflow_id} exists with a different history" in str(error)
    assert (all_hashes(), db_counts(), tenant_state()) == (hashes, counts, tenants)
    assert not WorkflowInstance.objects.filter(workflow_id=lost.workflow_id).exists()


def test_backup_whose_tenant_record_conflicts_with_an_existing_one_is_refused(populated, tmp_path):
    """backup.py: rows that exist identically are skipped; a conflicting row refuses the restore."""
    path = tmp_path / "backup.json"
    run("aegis_backup", output=str(path))
    customer = populated["customer"]
    Customer.objects.filter(pk=customer.pk).update(name="Someone Else Entirely", email="x@example.com")
    lost = reload(populated["vote"])
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        for table in ("workflows_workflowcheckpoint", "workflows_workflowtransition"):
            cursor.execute(f"DELETE FROM {table} WHERE workflow_id = %s", [lost.pk])
        cursor.execute("DELETE FROM workflows_workflowinstance WHERE id = %s", [lost.pk])
    counts, tenants = db_counts(), tenant_state()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert customer.customer_id in str(error)
    assert (db_counts(), tenant_state()) == (counts, tenants)


def test_backup_of_a_broken_chain_is_refused_on_restore(populated, tmp_path):
    path = tmp_path / "backup.json"
    halted = reload(populated["halted"])
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE workflows_workflowtransition SET reason = %s WHERE workflow_id = %s AND seq = 2",
                       [db_value(WorkflowTransition, "reason", "rewritten"), halted.pk])
    run("aegis_backup", output=str(path))  # a faithful copy of a tampered database
    empty_database()
    error, _, _ = run_refused("aegis_restore", str(path))
    assert f"workflow {halted.workflow_id}: seq 2: hash mismatch" in str(error)
    assert db_counts() == (0, 0, 0) and Customer.objects.count() == 0


def test_restore_of_a_missing_file_is_refused(tmp_path):
    error, _, _ = run_refused("aegis_restore", str(tmp_path / "nope.json"))
    assert "file not found" in str(error)


def test_backup_carries_configuration_versions_and_calibration_proposals(tmp_path):
    """PLATFORM.md §5: the backup holds configuration versions and calibration proposals
    too, and restores them."""
    from calibration import services as calibration_services
    from calibration.models import CalibrationProposal, ConfigurationVersion

    proposal = calibration_services.propose("tau_warning", 0.25, "Fewer false alarms", actor=RISK)
    path = tmp_path / "backup.json"
    run("aegis_backup", output=str(path))
    records = records_of(path)
    assert {r["content_hash"] for s, r in records if s == "configuration_versions"} == set(
        ConfigurationVersion.objects.values_list("content_hash", flat=True))
    assert [r["justification"] for s, r in records if s == "calibration_proposals"
            and r["proposal_id"] == str(proposal.proposal_id)] == ["Fewer false alarms"]
    CalibrationProposal.objects.all().delete()
    wipe_workflow_tables()
    run("aegis_restore", str(path))
    restored = CalibrationProposal.objects.get(proposal_id=proposal.proposal_id)
    assert restored.workflow.workflow_id == proposal.workflow.workflow_id


# --- preflight -------------------------------------------------------------------------------

def test_preflight_passes_on_a_clean_database(populated, tmp_path):
    backup = tmp_path / "pre-upgrade.json.gz"
    out, _ = run("aegis_preflight", backup=str(backup))
    assert "Preflight passed: nothing blocks the upgrade." in out
    assert f"[OK  ] backup written to {backup}" in out
    assert f"audit chains: {WorkflowInstance.objects.count()} verified, 0 broken" in out
    assert "[FAIL]" not in out
    assert backup.exists()


def test_preflight_fails_on_a_tampered_chain_naming_the_workflow(populated, tmp_path):
    vote = reload(populated["vote"])
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM workflows_workflowtransition WHERE workflow_id = %s AND seq = 1", [vote.pk])
    error, out, _ = run_refused("aegis_preflight", backup=str(tmp_path / "b.json"))
    assert error.returncode == 1
    assert f"broken chain {vote.workflow_id}: seq 1: gap in seq" in out
    assert "[FAIL] audit chains:" in out and "1 broken" in out
    # The ledger sees the same deletion: its entry for that transition has no object.
    assert "ledger: " in out and "stored object(s), 1 broken; anchor not written" in out
    assert "Upgrade blocked by 2 problem(s):" in out


def test_preflight_reports_a_breaking_target_schema(populated, tmp_path):
    error, out, _ = run_refused("aegis_preflight", target_schema=str(REMOVAL_SCHEMA), backup=str(tmp_path / "b.json"))
    assert error.returncode == 1
    assert "breaking" in out
    assert "[FAIL] schema" in out
    assert "Upgrade blocked" in out


# --- aegis_verify_chain ----------------------------------------------------------------------

def test_verify_chain_all_on_valid_chains(populated):
    out, err = run("aegis_verify_chain", all=True)
    total, decisions = WorkflowInstance.objects.count(), Decision.objects.count()
    entries = LedgerEntry.objects.count()  # v1, each workflow and each of its transitions
    assert entries == 1 + total + WorkflowTransition.objects.count()
    head = LedgerEntry.objects.order_by("-seq").first()
    assert out.strip().splitlines() == [
        "1 configuration version(s) checked, v1 served, 0 rejected.",
        f"{total} workflow(s) checked, 0 broken.",
        f"{decisions} decision(s) checked in 0 seal block(s), no block yet: {decisions} unsealed, 0 broken.",
        "0 attestation(s) checked, 0 broken.",
        f"{entries} ledger entries checked against {entries} stored object(s), head {head.seq}: 0 broken; "
        f"anchored at entry {head.seq} in {settings.AEGIS_ANCHOR_DIR / 'ledger-anchor.json'}."]
    assert err == ""


def test_verify_chain_one_workflow(populated):
    vote = populated["vote"]
    out, _ = run("aegis_verify_chain", str(vote.workflow_id))
    assert out.splitlines() == [f"OK {vote.workflow_id}: chain valid: 2 transitions, 2 checkpoints",
                                "1 workflow(s) checked, 0 broken."]


def test_verify_chain_reports_a_broken_chain(populated):
    halted = reload(populated["halted"])
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE workflows_workflowtransition SET triggered_by = %s WHERE workflow_id = %s "
                       "AND seq = 3", [db_value(WorkflowTransition, "triggered_by", "mallory"), halted.pk])
    total = WorkflowInstance.objects.count()
    error, out, err = run_refused("aegis_verify_chain", all=True)
    assert error.returncode == 1 and "1 audit chain(s) failed verification" in str(error)
    assert err.strip().startswith(f"BROKEN {halted.workflow_id}: seq 3: hash mismatch")
    assert len(err.strip().splitlines()) == 1
    assert f"{total} workflow(s) checked, 1 broken." in out
    error, out, err = run_refused("aegis_verify_chain", str(halted.workflow_id))
    assert error.returncode == 1 and f"BROKEN {halted.workflow_id}: seq 3: hash mismatch" in err
    out, _ = run("aegis_verify_chain", str(populated["vote"].workflow_id))  # the others are fine
    assert "0 broken" in out


@pytest.mark.parametrize("args, options, text", [
    ((), {}, "give either a WORKFLOW_ID or --all"),
    (("00000000-0000-0000-0000-000000000000",), {"all": True}, "give either a WORKFLOW_ID or --all"),
])
def test_verify_chain_needs_exactly_one_target(args, options, text):
    error, _, _ = run_refused("aegis_verify_chain", *args, **options)
    assert text in str(error)


@pytest.mark.parametrize("workflow_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_verify_chain_of_an_unknown_workflow_fails_cleanly(workflow_id):
    assert DurableWorkflowEngine().verify_audit_chain(workflow_id) == (False, f"no workflow {workflow_id}")
    error, _, err = run_refused("aegis_verify_chain", workflow_id)
    assert error.returncode == 1 and f"BROKEN {workflow_id}: no workflow {workflow_id}" in err


@pytest.mark.parametrize("call", ["fire_event", "get_workflow", "expire_if_due"])
def test_malformed_workflow_id_is_not_found(call):
    with pytest.raises(services.WorkflowError) as info:
        if call == "fire_event":
            services.fire_event("not-a-uuid", "approve", actor=RISK, comment="x")
        else:
            getattr(services, call)("not-a-uuid")
    assert info.value.code == services.WorkflowError.NOT_FOUND
