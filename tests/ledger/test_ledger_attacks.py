"""The raw-SQL attacks of issue 16, each reported by name: a workflow deleted, a
configuration version deleted, forged or edited, one workflow rolled back to a snapshot
copy, the whole database rolled back (against the anchor), the ledger rewritten."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from prometheus_client import generate_latest

from calibration import versions
from calibration.models import CalibrationProposal, ConfigurationVersion
from governance.metrics import _STORED_WORK
from ledger import anchors
from ledger.checks import anchor_key_set
from ledger.chain import entry_hash, transition_ref, workflow_ref
from ledger.models import LedgerEntry
from ledger.services import chain_pending, chained_head, head
from workflows import operations
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from ledger_support import (LEDGER, TRANSITIONS, apply_calibration, audited, findings, halted_proposal,
                            lift_triggers, risk_leads, sql)

pytestmark = pytest.mark.django_db


@pytest.fixture
def work():
    """A halted proposal with its review workflow, and configuration v2 applied with four eyes."""
    proposer, approver = risk_leads()
    proposal = halted_proposal()
    version = apply_calibration(proposer, approver)
    chain_pending()
    return {"workflow": WorkflowInstance.objects.get(workflow_id=proposal.workflow_id), "version": version}


def table(model) -> str:
    return model._meta.db_table


def test_everything_made_through_aegis_is_recorded_and_verifies(work):
    tally, found, note = audited()
    assert found == [] and tally.broken == 0
    workflows, transitions = WorkflowInstance.objects.count(), WorkflowTransition.objects.count()
    assert tally.entries == tally.objects == 2 + workflows + transitions  # v1, v2, workflows, transitions
    assert LedgerEntry.objects.filter(seq=None).count() == 0
    assert note.startswith(f"anchored at entry {tally.head_seq}")


def test_a_whole_workflow_deleted_is_reported_by_name(work):
    workflow = work["workflow"]
    transitions = WorkflowTransition.objects.filter(workflow=workflow).count()
    lift_triggers(TRANSITIONS)
    for model in (WorkflowCheckpoint, WorkflowTransition):
        sql(f"DELETE FROM {table(model)} WHERE workflow_id = %s", [workflow.pk])
    sql(f"DELETE FROM {table(WorkflowInstance)} WHERE id = %s", [workflow.pk])

    found = findings()
    assert f"workflow {workflow.workflow_id}: deleted: ledger entry" in found[0]
    assert len(found) == 1 + transitions
    assert all(f"of workflow {workflow.workflow_id}: deleted" in message for message in found[1:])
    run = operations.verify_all_chains()
    assert run.broken == len(found) and run.failures[0]["ledger"] == f"workflow {workflow.workflow_id}"


def test_an_applied_calibration_deleted_with_its_proposal_is_reported(work):
    proposal = CalibrationProposal.objects.get(applied_version=work["version"])
    calibration_workflow = proposal.workflow
    sql(f"DELETE FROM {table(CalibrationProposal)} WHERE id = %s", [proposal.pk])
    lift_triggers(TRANSITIONS)
    for model in (WorkflowCheckpoint, WorkflowTransition):
        sql(f"DELETE FROM {table(model)} WHERE workflow_id = %s", [calibration_workflow.pk])
    sql(f"DELETE FROM {table(WorkflowInstance)} WHERE id = %s", [calibration_workflow.pk])

    assert f"workflow {calibration_workflow.workflow_id}: deleted" in " ".join(findings())


def test_a_configuration_version_deleted_is_reported(work):
    sql(f"UPDATE {table(CalibrationProposal)} SET applied_version_id = NULL")
    sql(f"DELETE FROM {table(ConfigurationVersion)} WHERE version = 2")
    [message] = [m for m in findings() if "configuration" in m]
    assert message.startswith("configuration version v2: deleted: ledger entry ")
    versions.forget_newest()
    assert versions.active_version_number() == 1


def test_a_forged_version_is_reported_inserted_and_not_served(work):
    sql(f"INSERT INTO {table(ConfigurationVersion)} (version, parameters, content_hash, source, source_ref, author, "
        f"parent_id, created_at, chain_hash) SELECT 3, parameters, content_hash, source, source_ref, author, id, "
        f"created_at, chain_hash FROM {table(ConfigurationVersion)} WHERE version = 2")
    assert findings() == ["configuration version v3: inserted: it is stored but has no ledger entry"]
    versions.forget_newest()
    assert versions.active_version_number() == 2


def test_a_versions_parameters_edited_are_reported_changed(work):
    parameters = dict(work["version"].parameters, tau_warning=0.9)
    as_json = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    sql(f"UPDATE {table(ConfigurationVersion)} SET parameters = {as_json} WHERE version = 2", [json.dumps(parameters)])
    entry = LedgerEntry.objects.get(kind="configuration_version", ref="0000000002")
    assert findings() == [f"configuration version v2: changed: it no longer matches what ledger entry {entry.seq} "
                          "records"]


def test_one_workflow_rolled_back_to_a_snapshot_copy_is_reported(work):
    """A vote undone: the newest transition and its checkpoint removed and the workflow row
    copied back as it was. Its own chain is consistent again; the ledger is not fooled."""
    workflow = work["workflow"]
    newest = WorkflowTransition.objects.filter(workflow=workflow).order_by("-seq").first()
    before = WorkflowCheckpoint.objects.get(workflow=workflow, seq=newest.seq - 1) if newest.seq > 1 else None
    assert before is not None, "the fixture's workflow has at least two transitions"
    lift_triggers(TRANSITIONS)
    sql(f"DELETE FROM {table(WorkflowCheckpoint)} WHERE workflow_id = %s AND seq = %s", [workflow.pk, newest.seq])
    sql(f"DELETE FROM {table(WorkflowTransition)} WHERE workflow_id = %s AND seq = %s", [workflow.pk, newest.seq])
    WorkflowInstance.objects.filter(pk=workflow.pk).update(
        version=newest.seq - 1, current_state=newest.from_state, **_snapshot_fields(before))

    assert DurableWorkflowEngine().report(workflow.workflow_id).is_valid  # the chain alone is fooled
    entry = LedgerEntry.objects.get(kind="transition", ref=transition_ref(workflow.workflow_id, newest.seq))
    assert findings() == [f"transition {newest.seq} of workflow {workflow.workflow_id}: deleted: ledger entry "
                          f"{entry.seq} records it, and it is no longer stored"]


def _snapshot_fields(checkpoint) -> dict:
    data = checkpoint.checkpoint_data
    return {name: data[name] for name in ("status", "state_data") if name in data}


def test_the_whole_database_rolled_back_is_detected_against_the_anchor(work):
    """Verification anchors the head; the database is then put back to an older, internally
    consistent state (newer work and its ledger entries gone, as from a file copy)."""
    tally, found, _ = audited()
    assert found == []
    anchored = anchors.read_anchor()
    assert anchored.seq == tally.head_seq

    calibration_workflow = CalibrationProposal.objects.get(applied_version=work["version"]).workflow
    older = LedgerEntry.objects.get(kind="workflow", ref=workflow_ref(calibration_workflow.workflow_id)).seq - 1
    lift_triggers(LEDGER)
    lift_triggers(TRANSITIONS)
    _roll_back_to(older)

    assert findings() == []  # the older state is consistent in itself
    tally, found, note = audited()
    assert found == [f"ledger entry {anchored.seq}: rolled back: the ledger ends at entry {older}, but the anchor "
                     f"written at {anchored.written_at} records entry {anchored.seq}: the database was put back to "
                     "an older copy, or entries were removed"]
    assert note == f"anchor kept at entry {anchored.seq}" and anchors.read_anchor() == anchored
    err = StringIO()
    with pytest.raises(CommandError, match="1 ledger finding"):
        call_command("aegis_verify_chain", "--all", stdout=StringIO(), stderr=err)
    assert f"BROKEN ledger entry {anchored.seq}: rolled back: the ledger ends at entry {older}" in err.getvalue()


def _roll_back_to(seq: int) -> None:
    """Remove every object recorded after ledger entry `seq`, and those entries."""
    later = LedgerEntry.objects.filter(seq__gt=seq)
    for kind, ref in later.values_list("kind", "ref"):
        if kind == "configuration_version":
            CalibrationProposal.objects.filter(applied_version__version=int(ref)).update(applied_version=None)
            sql(f"DELETE FROM {table(ConfigurationVersion)} WHERE version = %s", [int(ref)])
    workflow_refs = [ref for kind, ref in later.values_list("kind", "ref") if kind == "workflow"]
    for workflow in WorkflowInstance.objects.all():
        if str(workflow.workflow_id).replace("-", "") in workflow_refs:
            CalibrationProposal.objects.filter(workflow=workflow).delete()
            for model in (WorkflowCheckpoint, WorkflowTransition):
                sql(f"DELETE FROM {table(model)} WHERE workflow_id = %s", [workflow.pk])
            sql(f"DELETE FROM {table(WorkflowInstance)} WHERE id = %s", [workflow.pk])
    sql(f"DELETE FROM {LEDGER.TABLE} WHERE seq > %s", [seq])


def test_a_rewritten_ledger_diverges_from_the_anchor(work):
    tally, found, _ = audited()
    anchored = anchors.read_anchor()
    lift_triggers(LEDGER)
    newest = LedgerEntry.objects.get(seq=anchored.seq)
    forged = "f" * 64
    sql(f"UPDATE {LEDGER.TABLE} SET digest = %s, hash = %s WHERE seq = %s",
        [forged, entry_hash(seq=newest.seq, kind=newest.kind, ref=newest.ref, digest=forged,
                            prev_hash=newest.prev_hash), newest.seq])
    _, found, _ = audited()
    assert f"ledger entry {anchored.seq}: diverged: ledger entry {anchored.seq} is not the one anchored" in found[-1]


def test_an_edited_anchor_file_is_refused(work):
    audited()
    path = anchors.anchor_path()
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "seq": data["seq"] - 1}))
    _, found, note = audited()
    assert found == [f"ledger anchor: the anchor file {path} does not verify under AEGIS_ANCHOR_KEY: it was edited, "
                     "or written under another key"]
    assert note == "anchor not written"


def test_an_edited_ledger_entry_is_reported(work):
    lift_triggers(LEDGER)
    sql(f"UPDATE {LEDGER.TABLE} SET digest = %s WHERE seq = 2", ["0" * 64])
    found = findings()
    assert found[0].startswith("ledger entry 2: hash mismatch: the entry about ")


def test_the_ledger_refuses_update_and_delete(work):
    for statement in (f"UPDATE {LEDGER.TABLE} SET digest = 'x' WHERE seq = 1", f"DELETE FROM {LEDGER.TABLE}"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement)
    assert LedgerEntry.objects.filter(seq=1).exists()


def test_entries_are_chained_after_their_transaction_commits_on_postgresql_and_in_it_on_sqlite(
        django_capture_on_commit_callbacks):
    before = chained_head()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        halted_proposal()
    unchained = LedgerEntry.objects.filter(seq=None).count()
    if connection.vendor == "sqlite":  # the transaction holds SQLite's only write lock: chained in it
        assert unchained == 0 and chained_head()[0] >= before[0] + 3
    else:  # written unchained in the caller's transaction, chained after its commit
        assert unchained >= 3 and chained_head() == before
        for callback in callbacks:
            callback()
        assert LedgerEntry.objects.filter(seq=None).count() == 0 and chained_head()[0] >= before[0] + 3
    assert findings() == []


def test_the_admin_lists_entries_by_what_they_record_and_allows_no_change(work, admin_client):
    page = admin_client.get("/admin/ledger/ledgerentry/", secure=True)
    body = page.content.decode()
    assert page.status_code == 200
    assert f"workflow {work['workflow'].workflow_id}" in body and "configuration version v2" in body
    entry = LedgerEntry.objects.get(seq=1)
    assert admin_client.post(f"/admin/ledger/ledgerentry/{entry.pk}/delete/", {"post": "yes"},
                             secure=True).status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_the_deploy_check_warns_without_an_anchor_key(settings):
    assert anchor_key_set(None) == []
    settings.AEGIS_ANCHOR_KEY = ""
    [warning] = anchor_key_set(None)
    assert warning.id == "ledger.W001" and "AEGIS_ANCHOR_KEY is not set" in warning.msg


def test_metrics_export_the_ledger_head_and_the_anchor(work):
    head_seq = head()[0]
    text = generate_latest(_STORED_WORK).decode()
    assert f"aegis_ledger_head_seq {float(head_seq)}" in text and "aegis_ledger_anchor_seq 0.0" in text
    audited()
    assert f"aegis_ledger_anchor_seq {float(head_seq)}" in generate_latest(_STORED_WORK).decode()


def test_preflight_fails_naming_a_deleted_workflow(work, tmp_path):
    workflow = work["workflow"]
    lift_triggers(TRANSITIONS)
    for model in (WorkflowCheckpoint, WorkflowTransition):
        sql(f"DELETE FROM {table(model)} WHERE workflow_id = %s", [workflow.pk])
    sql(f"DELETE FROM {table(WorkflowInstance)} WHERE id = %s", [workflow.pk])
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("aegis_preflight", "--backup", str(tmp_path / "pre.json.gz"), stdout=out)
    report = out.getvalue()
    assert f"       broken workflow {workflow.workflow_id}: deleted: ledger entry" in report
    assert "[FAIL] ledger: " in report and "Preflight passed" not in report
