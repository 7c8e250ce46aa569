"""Verification depths and worker processes (issue 15, item 6): the nightly run checks every
transition and the newest checkpoint and says so; the full run also finds an older
checkpoint tampered with; worker processes give exactly the reports one process gives."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ledger.chain import transition_ref
from ledger.models import LedgerEntry
from workflows import operations, services
from workflows.machines import Actor
from workflows.persistence import durable
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import VerificationDepth, WorkflowInstance
from wf_support import concurrency_capable_database, consensus, drop_append_only_triggers

C = "workflows_workflowcheckpoint"
T = "workflows_workflowtransition"
REVIEWERS = ["ann", "ben", "cat", "dan"]


def voted_consensus() -> WorkflowInstance:
    """Seqs 1..4: started, then three votes."""
    vote = consensus(REVIEWERS)
    for name in REVIEWERS[:3]:
        services.fire_event(vote.workflow_id, "vote", actor=Actor(name), params={"vote": "approve"})
    return WorkflowInstance.objects.get(pk=vote.pk)


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))


@pytest.mark.django_db
def test_an_older_checkpoint_tampered_is_found_by_the_full_run_and_the_nightly_run_says_its_depth():
    workflow = voted_consensus()
    sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 2", ["0" * 64, workflow.pk])

    nightly = operations.verify_all_chains()
    assert nightly.depth == VerificationDepth.NEWEST
    assert nightly.broken == 0  # seq 2 is not the newest checkpoint: not checked at this depth

    full = operations.verify_all_chains(full=True)
    assert full.depth == VerificationDepth.FULL
    assert full.broken == 1
    assert full.failures[0] == {"workflow_id": str(workflow.workflow_id),
                                "message": "seq 2: checkpoint mismatch (hash of its data differs)"}


def ledger_seq(workflow, seq: int) -> int:
    return LedgerEntry.objects.get(kind="transition", ref=transition_ref(workflow.workflow_id, seq)).seq


@pytest.mark.django_db
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("table, seq", [(T, 2), (C, 4)])
def test_a_tampered_transition_or_newest_checkpoint_is_found_at_both_depths(full, table, seq):
    workflow = voted_consensus()
    if table == T:
        drop_append_only_triggers()  # rolled back with the test's transaction
    sql(f"UPDATE {table} SET hash = %s WHERE workflow_id = %s AND seq = %s", ["0" * 64, workflow.pk, seq])
    run = operations.verify_all_chains(full=full)
    assert run.failures[0]["message"].startswith(f"seq {seq}: ")
    if table == T:  # the ledger recorded the transition's hash: it finds the change too
        assert run.broken == 2 and run.failures[1]["message"] == (
            f"transition {seq} of workflow {workflow.workflow_id}: changed: it no longer matches what ledger "
            f"entry {ledger_seq(workflow, seq)} records")
    else:
        assert run.broken == 1


@pytest.mark.django_db
def test_the_command_runs_the_newest_depth_with_all_and_the_full_depth_on_request(capsys):
    workflow = voted_consensus()
    sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 1", ["0" * 64, workflow.pk])
    call_command("aegis_verify_chain", "--all", "--processes", "1")
    assert "0 broken" in capsys.readouterr().out
    with pytest.raises(CommandError, match="1 audit chain"):
        call_command("aegis_verify_chain", "--all", "--full", "--processes", "1")
    assert "seq 1: checkpoint mismatch" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_worker_processes_give_the_reports_one_process_gives(tmp_path, monkeypatch):
    """Committed data (a transactional test) in a database other connections can open (the
    file copy of SQLite's in-memory test database; PostgreSQL's test database itself)."""
    monkeypatch.setattr(durable, "STREAM_CHUNK", 2)  # five workflows: three chunks over two workers
    with concurrency_capable_database(tmp_path):
        workflows = [voted_consensus() for _ in range(5)]
        sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 4", ["0" * 64, workflows[3].pk])
        parallel = DurableWorkflowEngine(depth=VerificationDepth.NEWEST, processes=2)
        assert parallel._pool_refusal() is None, "the worker processes were not used"
        in_workers = list(parallel.verify_all())
        in_process = list(DurableWorkflowEngine(depth=VerificationDepth.NEWEST, processes=1).verify_all())
    assert in_workers == in_process
    assert [r.workflow_id for r in in_workers] == [str(w.workflow_id) for w in workflows]
    assert [r.is_valid for r in in_workers] == [True, True, True, False, True]
    assert in_workers[3].message.startswith("seq 4: checkpoint mismatch")


@pytest.mark.django_db
def test_inside_a_transaction_verification_stays_in_process():
    """A restore verifies what it has not committed yet: workers could not see it."""
    voted_consensus()
    engine = DurableWorkflowEngine(processes=2)
    assert "transaction" in engine._pool_refusal()
    assert [r.is_valid for r in engine.verify_all()] == [True]
