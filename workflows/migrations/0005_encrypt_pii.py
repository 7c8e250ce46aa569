"""Encrypt the PII of workflows (state, transitions, checkpoints), and let key rotation
re-encrypt transitions without opening them to any other change.

The append-only triggers are lifted while the columns are rewritten (the same transaction
on PostgreSQL; SQLite re-creates the table anyway) and replaced by ones that allow an
UPDATE only inside a key rotation's transaction (a ReencryptionWindow row exists, which
no other connection can see) and only if every column but the encrypted ones is unchanged.
"""

import importlib

import django.utils.timezone
from django.db import migrations, models

from governance.encryption_migration import encrypt_columns

TABLE = "workflows_workflowtransition"
WINDOW = "workflows_reencryptionwindow"
MESSAGE = "workflow transitions are append-only"
UNCHANGED = ("id", "workflow_id", "seq", "from_state", "to_state", "created_at", "prev_hash", "hash")


def append_only_triggers(table: str, unchanged: tuple[str, ...], message: str,
                         function: str) -> dict[str, tuple[list[str], list[str]]]:
    """{vendor: (install, remove)} statements making `table` append-only, except that inside
    a re-encryption window an UPDATE may change the columns not listed in `unchanged`.
    (Governance's telemetry migration builds its triggers here too.)"""
    sqlite_same = " AND ".join(f"NEW.{column} IS OLD.{column}" for column in unchanged)
    new = ", ".join(f"NEW.{column}" for column in unchanged)
    old = ", ".join(f"OLD.{column}" for column in unchanged)
    sqlite = [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"WHEN NOT (EXISTS (SELECT 1 FROM {WINDOW}) AND {sqlite_same}) "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END;",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END;",
    ]
    postgres = [
        f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND EXISTS (SELECT 1 FROM {WINDOW})
                   AND ({new}) IS NOT DISTINCT FROM ({old}) THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql;""",
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}();""",
    ]
    return {
        "sqlite": (sqlite, [f"DROP TRIGGER IF EXISTS {table}_no_update;", f"DROP TRIGGER IF EXISTS {table}_no_delete;"]),
        "postgresql": (postgres, [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};",
                                  f"DROP FUNCTION IF EXISTS {function}();"]),
    }


_TRIGGERS = append_only_triggers(TABLE, UNCHANGED, MESSAGE, "aegis_refuse_transition_change")
SQLITE_FORWARD, SQLITE_BACKWARD = _TRIGGERS["sqlite"]
POSTGRES_FORWARD, POSTGRES_BACKWARD = _TRIGGERS["postgresql"]

# The triggers of 0002, to put back when this migration is reversed.
_PREVIOUS = importlib.import_module("workflows.migrations.0002_append_only_and_roles")


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in statements_by_vendor:
            raise RuntimeError(f"no append-only trigger for database {vendor!r}")
        for statement in statements_by_vendor[vendor]:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):
    dependencies = [("workflows", "0004_default_schedules"), ("governance", "0008_encrypt_pii")]

    operations = [
        # 0002's triggers have the names these remove.
        migrations.RunPython(_run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
                             _run({"sqlite": _PREVIOUS.SQLITE_FORWARD, "postgresql": _PREVIOUS.POSTGRES_FORWARD})),
        migrations.CreateModel(
            name="ReencryptionWindow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("opened_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        *encrypt_columns("workflowinstance", {"state_data": models.JSONField(default=dict, blank=True)},
                         app_label="workflows"),
        *encrypt_columns("workflowtransition", {
            "triggered_by": models.TextField(),
            "reason": models.TextField(blank=True),
            "payload": models.JSONField(default=dict, blank=True),
        }, app_label="workflows"),
        *encrypt_columns("workflowcheckpoint", {
            "checkpoint_data": models.JSONField(),
            "created_by": models.CharField(max_length=150),
        }, app_label="workflows"),
        migrations.RunPython(_run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
                             _run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD})),
    ]
