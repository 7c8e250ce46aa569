"""Backups are authenticated and complete (issue 16 item 4): the manifest's MAC under
AEGIS_ANCHOR_KEY covers the content hash, the counts and the ledger head, so an edited file
is refused in one line with nothing restored; a duplicated record is refused by name even
under a recomputed MAC; files without a MAC restore only when the operator says so."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.models import Decision, DecisionSeal, Tier
from governance.sealing import seal_decisions
from ledger import anchors
from ledger.audit import verify_ledger
from ledger.models import LedgerEntry
from ledger.services import chain_pending
from workflows.backup import BackupError, check_backup, restore_backup, write_backup
from workflows.persistence.models import WorkflowInstance
from append_only_support import wipe_decisions, wipe_ledger_to_fresh
from backup_support import MANIFEST_PREFIX, read_text, record_positions, with_manifest_rehashed, write_text
from wf_support import HALT, submit, wipe_workflow_tables

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(tmp_path) -> Path:
    customer, key, _ = governance_services.create_customer("Backed Up Ltd", tier=Tier.objects.get(name="team"))
    ctx = governance_services.CallContext(customer=customer, api_key=key, request_id="req-auth")
    for summary in ("first", "second", "third"):
        governance_services.evaluate_proposal(ctx, parse_proposal({"proposal_summary": summary}))
    seal_decisions()
    submit(HALT, customer=customer)
    path = tmp_path / "backup.json"
    write_backup(path)
    return path


def empty_like_a_new_server() -> None:
    wipe_workflow_tables()
    wipe_decisions()
    wipe_ledger_to_fresh()


def stored() -> tuple[int, int, int]:
    return Decision.objects.count(), WorkflowInstance.objects.count(), LedgerEntry.objects.count()


def refusal(path: Path, *args: str) -> str:
    with pytest.raises(CommandError) as info:
        call_command("aegis_restore", str(path), *args, stdout=io.StringIO())
    message = str(info.value)
    assert message.startswith("restore refused, nothing was changed: ") and "\n" not in message
    return message


def drop_record(text: str, section: str) -> str:
    lines = text.splitlines(keepends=True)
    index = next(i for name, i in record_positions(lines) if name == section)
    following = lines[index + 1]
    if lines[index].startswith('"') and following.startswith(","):  # the first record: the next loses its comma
        lines[index + 1] = following[1:]
    del lines[index]
    return "".join(lines)


def manifest_of(path: Path) -> dict:
    return json.loads(read_text(path).rpartition("\n" + MANIFEST_PREFIX)[2].rstrip().removesuffix("}"))


def test_the_manifest_carries_the_ledger_head_and_a_mac(backup):
    manifest = manifest_of(backup)
    head = LedgerEntry.objects.order_by("-seq").first()
    assert manifest["ledger"] == {"seq": head.seq, "hash": head.hash}
    assert manifest["counts"]["ledger_entries"] == LedgerEntry.objects.count()
    assert manifest["counts"]["decision_seals"] == DecisionSeal.objects.count() == 1
    assert anchors.mac_matches({k: v for k, v in manifest.items() if k != "mac"}, manifest["mac"])


def test_an_intact_backup_restores_onto_an_empty_ledger_and_everything_verifies(
        backup, django_capture_on_commit_callbacks):
    before = stored()
    empty_like_a_new_server()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("aegis_restore", str(backup), stdout=io.StringIO())
    assert stored() == before and list(verify_ledger()) == []
    assert anchors.read_anchor().seq == LedgerEntry.objects.order_by("-seq").first().seq  # anchored at once


@pytest.mark.parametrize("section", ["workflows", "decisions", "ledger_entries"])
def test_a_record_removed_with_counts_and_plain_hash_recomputed_is_refused(backup, section):
    counts = manifest_of(backup)["counts"]
    write_text(backup, with_manifest_rehashed(drop_record(read_text(backup), section),
                                              counts={section: counts[section] - 1}, remac=False))
    empty_like_a_new_server()
    before = stored()
    message = refusal(backup)
    assert message.endswith("the manifest's MAC does not verify under AEGIS_ANCHOR_KEY: the file was edited after "
                            "it was written (or written under another key)")
    assert stored() == before


def test_a_ledger_entry_removed_under_a_recomputed_mac_is_refused_by_the_ledger_head(backup):
    counts = manifest_of(backup)["counts"]
    lines = read_text(backup).splitlines(keepends=True)
    last = [i for name, i in record_positions(lines) if name == "ledger_entries"][-1]
    del lines[last]
    write_text(backup, with_manifest_rehashed("".join(lines), counts={"ledger_entries": counts["ledger_entries"] - 1}))
    head = manifest_of(backup)["ledger"]["seq"]
    assert f"the ledger section ends at entry {head - 1}, but the manifest says it was taken at entry {head}" in \
        refusal(backup)


def test_a_duplicated_record_is_refused_in_one_line_even_under_a_recomputed_mac(backup):
    lines = read_text(backup).splitlines(keepends=True)
    index = next(i for name, i in record_positions(lines) if name == "decisions")
    copy = lines[index] if lines[index].startswith(",") else "," + lines[index]
    lines.insert(index + 1, copy)
    counts = manifest_of(backup)["counts"]
    write_text(backup, with_manifest_rehashed("".join(lines), counts={"decisions": counts["decisions"] + 1}))
    empty_like_a_new_server()
    before = stored()
    message = refusal(backup)
    assert "section 'decisions': " in message and "appears twice in the file" in message
    assert "Traceback" not in message and stored() == before


def test_an_edited_mac_is_refused(backup):
    text = read_text(backup)
    manifest = manifest_of(backup)
    write_text(backup, text.replace(manifest["mac"], "0" * 64))
    assert "the manifest's MAC does not verify" in refusal(backup)


def test_an_unauthenticated_backup_restores_only_when_the_operator_says_so(backup, tmp_path):
    with override_settings(AEGIS_ANCHOR_KEY=""):
        plain = tmp_path / "plain.json"
        write_backup(plain)
        assert "mac" not in manifest_of(plain)
        assert "the backup is authenticated (its manifest has a MAC) but AEGIS_ANCHOR_KEY is not set" in \
            refusal(backup)
    message = refusal(plain)
    assert "the backup is not authenticated (its manifest has no MAC" in message and "--allow-unauthenticated" in message
    empty_like_a_new_server()
    call_command("aegis_restore", str(plain), "--allow-unauthenticated", stdout=io.StringIO())
    assert list(verify_ledger()) == []


def test_a_backup_whose_ledger_diverges_from_the_databases_is_refused(backup):
    """A database that went on without the backup's work cannot take it back in."""
    empty_like_a_new_server()
    submit(HALT)  # new work recorded, and chained, where the backup's ledger has other entries
    chain_pending()
    message = refusal(backup)
    assert message.endswith("ledger entry 2 differs from this database's own: the two ledgers diverge (restore into "
                            "an empty, freshly migrated database)")


def test_check_backup_reports_the_same_refusal_without_touching_the_database(backup):
    write_text(backup, with_manifest_rehashed(drop_record(read_text(backup), "workflows"), remac=False))
    with pytest.raises(BackupError, match="MAC does not verify"):
        check_backup(backup)
    with pytest.raises(BackupError, match="MAC does not verify"):
        restore_backup(backup)
