"""Decisions become append-only in the database, and sealed into hash-chained blocks.

Triggers (the factory of workflows.migrations.0005_encrypt_pii) refuse UPDATE and DELETE
of decisions on SQLite and PostgreSQL, except that key rotation may re-encrypt the four
encrypted columns inside its own transaction (a ReencryptionWindow row exists). The seal
blocks (DecisionSeal, see governance.sealing) get the same triggers with every column
unchanged, so nothing may rewrite them. TRUNCATE stays with database administrators.
"""

import importlib

import django.utils.timezone
from django.db import migrations, models

DECISIONS = "governance_decision"
SEALS = "governance_decisionseal"
# Every column of a decision but the encrypted ones (proposal_summary, agent_id, session_id,
# metadata); tests/sealing checks this against the model, so a new column is not left open.
DECISION_UNCHANGED = (
    "id", "decision_id", "customer_id", "api_key_id", "channel", "created_at", "status", "shadow", "config_version",
    "idempotency_key", "request_id", "estimated_impact", "requires_human_approval", "risk_baseline",
    "risk_proposed", "profit_baseline", "profit_proposed", "novelty_score", "complexity_score", "quality_score",
    "has_zero_subscore", "utility_mean", "utility_std_error", "drift_status", "replay_vector", "request_data",
    "response", "review_workflow_id", "content_hash")
SEAL_UNCHANGED = ("id", "seq", "first_pk", "last_pk", "entries", "count", "entries_hash", "prev_hash", "hash",
                  "created_at")

_factory = importlib.import_module("workflows.migrations.0005_encrypt_pii").append_only_triggers
TRIGGERS = {
    DECISIONS: _factory(DECISIONS, DECISION_UNCHANGED, "decisions are append-only", "aegis_refuse_decision_change"),
    SEALS: _factory(SEALS, SEAL_UNCHANGED, "decision seals are append-only", "aegis_refuse_decision_seal_change"),
}
# Both tables' statements per vendor: (install, remove). tests/conftest.py lifts the SQLite
# ones around a flush.
STATEMENTS = {vendor: ([sql for table in TRIGGERS.values() for sql in table[vendor][0]],
                       [sql for table in TRIGGERS.values() for sql in table[vendor][1]])
              for vendor in ("sqlite", "postgresql")}
SQLITE_FORWARD, SQLITE_BACKWARD = STATEMENTS["sqlite"]
POSTGRES_FORWARD, POSTGRES_BACKWARD = STATEMENTS["postgresql"]


def _run(index: int):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in STATEMENTS:
            raise RuntimeError(f"no append-only trigger for database {vendor!r}")
        for statement in STATEMENTS[vendor][index]:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0010_decision_review_and_digest"),
        ("workflows", "0005_encrypt_pii"),  # the ReencryptionWindow table the triggers read
    ]

    operations = [
        migrations.CreateModel(
            name="DecisionSeal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveIntegerField(unique=True)),
                ("first_pk", models.BigIntegerField()),
                ("last_pk", models.BigIntegerField()),
                ("entries", models.JSONField(
                    help_text="[pk, decision_id, content_hash] of each sealed decision, in pk order.")),
                ("count", models.PositiveIntegerField()),
                ("entries_hash", models.CharField(max_length=64)),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["seq"]},
        ),
        migrations.RunPython(_run(0), _run(1)),
    ]
