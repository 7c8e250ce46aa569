"""The rollback procedure in docs/upgrade.md runs as written."""

import asyncio
import importlib
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from governance.engine.inputs import parse_proposal
from workflows import services
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance, WorkflowTransition
from governance import decisions
from governance import services as governance_services
from governance.models import Decision

APPEND_ONLY = importlib.import_module("workflows.migrations.0005_encrypt_pii")

DOC = Path(__file__).resolve().parent.parent / "docs" / "upgrade.md"


def rollback_block() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The migration guide's rollback procedure", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def wipe_workflows():
    """Empty the workflow tables as a failed upgrade might: TRUNCATE on PostgreSQL; on
    SQLite, delete with the append-only trigger lifted and put back."""
    tables = ["workflows_workflowcheckpoint", "workflows_workflowtransition", "workflows_workflowinstance"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")
            return
        for statement in APPEND_ONLY.SQLITE_BACKWARD:
            cursor.execute(statement)
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
        for statement in APPEND_ONLY.SQLITE_FORWARD:
            cursor.execute(statement)


@pytest.mark.django_db(transaction=True)
def test_documented_rollback_procedure_restores_identical_verified_chains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    actor = Actor("alice", roles=frozenset())
    halted = governance_services.submit_proposal(parse_proposal({"proposal_summary": "a", "novelty_score": 0.9}), actor=actor)
    governance_services.submit_proposal(parse_proposal({"proposal_summary": "b"}), actor=actor)
    before = dict(WorkflowTransition.objects.values_list("hash", "seq"))
    block = rollback_block()
    export_part, restore_part = block.split("# ... upgrade fails", 1)
    namespace: dict = {}
    try:
        exec(export_part, namespace)
        wipe_workflows()
        assert WorkflowInstance.objects.count() == 0
        exec("# ... upgrade fails" + restore_part, namespace)
    finally:
        # The procedure's awaits ran the ORM in asgiref's worker thread; close that thread's
        # connection, or PostgreSQL cannot drop the test database at the end of the run.
        asyncio.run(sync_to_async(connections.close_all)())
    assert dict(WorkflowTransition.objects.values_list("hash", "seq")) == before
    assert len(namespace["restored"]) == 2
    assert DurableWorkflowEngine().verify_audit_chain(halted.workflow_id)[0]
    # Decisions find their review workflows again (linked by workflow_id, not by row id).
    decision = Decision.objects.get(review_workflow_id=halted.workflow_id)
    assert decisions.as_json([decision])[0]["review_state"] == "rejected"
