"""Helpers shared by the workflow test modules (imported as `wf_support`; the module name is
unique in the suite because tests/ has no packages)."""

from __future__ import annotations

import importlib
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from django.test import Client
from django.db import DEFAULT_DB_ALIAS, connection, connections

from governance.engine.inputs import parse_proposal
from workflows import services
from workflows.machines import Actor
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from workflows.roles import Role
from governance import services as governance_services

APPEND_ONLY = importlib.import_module("workflows.migrations.0005_encrypt_pii")
TABLE = APPEND_ONLY.TABLE  # workflows_workflowtransition

# Engine inputs (contract defaults) and the proposal state each one leads to.
PROCEED = {"proposal_summary": "Cache the rate table"}
HALT = {"proposal_summary": "Novel payments router", "novelty_score": 0.9}  # novelty gate fails, overridable
HALT_COMPLEXITY = {"proposal_summary": "Tangled rewrite", "complexity_score": 0.4}  # rule 1, never overridable
PAUSE = {"proposal_summary": "Bigger change", "estimated_impact": "high"}
ESCALATE = {"proposal_summary": "Novel and big", "novelty_score": 0.9, "estimated_impact": "high"}

SUBMITTER = Actor("submitter", id=None, roles=frozenset())
RISK = Actor("rita", id=None, roles=frozenset({Role.RISK_LEAD}))
RISK_2 = Actor("rob", id=None, roles=frozenset({Role.RISK_LEAD}))
SECURITY = Actor("sam", id=None, roles=frozenset({Role.SECURITY_LEAD}))
BOTH = Actor("bo", id=None, roles=frozenset({Role.RISK_LEAD, Role.SECURITY_LEAD}))
NOBODY = Actor("nina", id=None, roles=frozenset())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def submit(inputs: dict[str, Any], *, actor: Actor = SUBMITTER, customer=None, now=None) -> WorkflowInstance:
    return governance_services.submit_proposal(parse_proposal(inputs), actor=actor, customer=customer, now=now)


def consensus(reviewers, *, quorum=None, threshold=0.5, deadline=None, now=None, customer=None,
              actor: Actor = SUBMITTER) -> WorkflowInstance:
    reviewers = list(reviewers)
    spec = services.ConsensusSpec(subject="Adopt the new gate thresholds", reviewers=reviewers,
                                  quorum=len(reviewers) if quorum is None else quorum,
                                  approval_threshold=threshold,
                                  deadline=deadline or (now or utcnow()) + timedelta(days=2))
    return services.start_consensus(spec, actor=actor, customer=customer, now=now)


def reload(workflow) -> WorkflowInstance:
    """The stored row, read without applying deadlines (unlike services.get_workflow)."""
    return WorkflowInstance.objects.get(workflow_id=getattr(workflow, "workflow_id", workflow))


def snapshot(workflow) -> dict[str, Any]:
    """Everything the database holds about one workflow, to prove that nothing changed."""
    row = reload(workflow)
    return {
        "row": (row.current_state, row.status, row.state_data, row.version, row.updated_at),
        "transitions": list(WorkflowTransition.objects.filter(workflow=row).order_by("seq")
                            .values_list("seq", "to_state", "hash")),
        "checkpoints": list(WorkflowCheckpoint.objects.filter(workflow=row).order_by("seq")
                            .values_list("seq", "hash")),
    }


def db_counts() -> tuple[int, int, int]:
    return (WorkflowInstance.objects.count(), WorkflowTransition.objects.count(),
            WorkflowCheckpoint.objects.count())


def all_hashes() -> dict[str, Any]:
    """Every stored hash keyed by (workflow_id, seq): what a faithful restore must reproduce."""
    return {
        "transitions": sorted((str(w), s, p, h) for w, s, p, h in WorkflowTransition.objects.values_list(
            "workflow__workflow_id", "seq", "prev_hash", "hash")),
        "checkpoints": sorted((str(w), s, h) for w, s, h in WorkflowCheckpoint.objects.values_list(
            "workflow__workflow_id", "seq", "hash")),
        "rows": sorted((str(w.workflow_id), w.workflow_type, w.current_state, w.status, w.version)
                       for w in WorkflowInstance.objects.all()),
    }


# --- the append-only trigger ------------------------------------------------------------------

def drop_append_only_triggers() -> None:
    """What an attacker with DBA rights does first. Run inside the test's transaction: the
    DDL is rolled back with it on both SQLite and PostgreSQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {TABLE}_no_update")
            cursor.execute(f"DROP TRIGGER {TABLE}_no_delete")
        elif connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER {TABLE}_append_only ON {TABLE}")
        else:  # pragma: no cover
            raise AssertionError(f"no append-only trigger known for {connection.vendor}")


def append_only_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                           [TABLE])
        return {row[0] for row in cursor.fetchall()}


EXPECTED_TRIGGERS = {
    "sqlite": {f"{TABLE}_no_update", f"{TABLE}_no_delete"},
    "postgresql": {f"{TABLE}_append_only"},
}


def db_value(model, field_name: str, value: Any) -> Any:
    """`value` as the column stores it (plain JSON today, ciphertext if the field is encrypted)."""
    return model._meta.get_field(field_name).get_db_prep_save(value, connection)


def wipe_workflow_tables() -> None:
    """Empty the workflow tables with the trigger lifted (inside the test's transaction)."""
    if append_only_triggers():
        drop_append_only_triggers()
    with connection.cursor() as cursor:
        for table in ("workflows_workflowcheckpoint", "workflows_workflowtransition",
                      "workflows_workflowinstance"):
            cursor.execute(f"DELETE FROM {table}")


@contextmanager
def concurrency_capable_database(directory):
    """Where threads can contend for the database as they would in production.

    On PostgreSQL that is the test database itself. Django's SQLite test database is a
    shared-cache in-memory database, in which a writer that finds another one active gets
    SQLITE_LOCKED at once ("database table is locked") instead of waiting out the busy
    timeout — something a file database, which is what SQLite deployments use, never
    does. So on SQLite the test database is copied to a file for the duration: the settings
    (`transaction_mode` IMMEDIATE, `timeout`) are the production ones; the in-memory
    database stays open underneath and is back in place afterwards.
    """
    memory = connections[DEFAULT_DB_ALIAS]
    if memory.vendor != "sqlite" or not memory.is_in_memory_db():
        yield
        return
    memory.ensure_connection()
    path = Path(directory) / "concurrency.sqlite3"
    target = sqlite3.connect(path)
    memory.connection.backup(target)
    target.close()
    settings_dict = memory.settings_dict  # shared with every thread's new connection
    original_name = settings_dict["NAME"]
    settings_dict["NAME"] = str(path)
    file_backed = connections.create_connection(DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = file_backed
    try:
        yield
    finally:
        file_backed.close()
        settings_dict["NAME"] = original_name
        connections[DEFAULT_DB_ALIAS] = memory


class SecureClient(Client):
    """The test client over HTTPS: with DEBUG off the settings redirect plain HTTP to HTTPS."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)
