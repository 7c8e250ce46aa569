"""Record everything already stored, in a fixed order (configuration versions, then each
workflow with its transitions, then decision seal blocks), so that a fresh server's ledger
(configuration version 1 only) is the same on every server. Whatever the table holds already
(entries written while the schema was migrated back and forth) is replaced."""

import importlib

from django.db import migrations

from calibration.chain import content_hash
from ledger.chain import (CONFIGURATION_VERSION, DECISION_SEAL, GENESIS_HASH, TRANSITION, WORKFLOW,
                          configuration_digest, entry_hash, number_ref, transition_ref, workflow_digest, workflow_ref)

BATCH = 1000
_TABLE = importlib.import_module("ledger.migrations.0001_initial")


def record_existing(apps, schema_editor):
    forget(apps, schema_editor)  # entries left from before going back and forth: recorded afresh
    entry_model = apps.get_model("ledger", "LedgerEntry")
    rows = []
    head = {"seq": 0, "hash": GENESIS_HASH}

    def add(kind, ref, digest):
        seq, prev_hash = head["seq"] + 1, head["hash"]
        head["seq"], head["hash"] = seq, entry_hash(seq=seq, kind=kind, ref=ref, digest=digest, prev_hash=prev_hash)
        rows.append(entry_model(seq=seq, kind=kind, ref=ref, digest=digest, prev_hash=prev_hash, hash=head["hash"]))
        if len(rows) >= BATCH:
            flush()

    def flush():
        entry_model.objects.bulk_create(rows)
        rows.clear()

    for version, parameters, source, source_ref in (apps.get_model("calibration", "ConfigurationVersion").objects
                                                    .order_by("version")
                                                    .values_list("version", "parameters", "source", "source_ref")):
        add(CONFIGURATION_VERSION, number_ref(version),
            configuration_digest(version=version, content_hash=content_hash(parameters), source=source,
                                 source_ref=source_ref))
    workflows = apps.get_model("workflows", "WorkflowInstance").objects.order_by("created_at", "id")
    transitions = apps.get_model("workflows", "WorkflowTransition").objects
    for pk, workflow_id, workflow_type, created_at, customer in workflows.values_list(
            "pk", "workflow_id", "workflow_type", "created_at", "customer__customer_id").iterator(chunk_size=BATCH):
        add(WORKFLOW, workflow_ref(workflow_id), workflow_digest(workflow_id=workflow_id, workflow_type=workflow_type,
                                                                 created_at=created_at, customer_id=customer))
        for seq, digest in transitions.filter(workflow_id=pk).order_by("seq").values_list("seq", "hash"):
            add(TRANSITION, transition_ref(workflow_id, seq), digest)
    for seq, digest in apps.get_model("governance", "DecisionSeal").objects.order_by("seq").values_list("seq", "hash"):
        add(DECISION_SEAL, number_ref(seq), digest)
    flush()


def forget(apps, schema_editor):
    """Going back empties the ledger (its triggers lifted for that), so that migrating
    forward again records everything afresh."""
    install, remove = _TABLE.STATEMENTS[schema_editor.connection.vendor]
    for statement in remove:
        schema_editor.execute(statement)
    schema_editor.execute(f"DELETE FROM {_TABLE.TABLE}")
    for statement in install:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0001_initial"),
        ("calibration", "0005_configuration_chain_hash"),
        ("workflows", "0007_verification_depth"),
        ("governance", "0015_decision_replay_packs"),
    ]

    operations = [migrations.RunPython(record_existing, forget)]
