"""Telemetry events become append-only in the database itself, like workflow transitions:
triggers refuse UPDATE and DELETE on SQLite and PostgreSQL, except that key rotation may
re-encrypt the `actor` and `data` columns inside its own transaction (see
workflows.migrations.0005_encrypt_pii). TRUNCATE (table-owner rights) stays available to
database administrators for retention.
"""

import importlib

from django.db import migrations

TABLE = "governance_telemetryevent"
UNCHANGED = ("id", "name", "occurred_at", "subject", "request_id")
TRIGGERS = importlib.import_module("workflows.migrations.0005_encrypt_pii").append_only_triggers(
    TABLE, UNCHANGED, "telemetry events are append-only", "aegis_refuse_telemetry_change")
SQLITE_FORWARD, SQLITE_BACKWARD = TRIGGERS["sqlite"]


def _run(index: int):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in TRIGGERS:
            raise RuntimeError(f"no append-only trigger for database {vendor!r}")
        for statement in TRIGGERS[vendor][index]:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):
    dependencies = [("governance", "0008_encrypt_pii"), ("workflows", "0005_encrypt_pii")]

    operations = [migrations.RunPython(_run(0), _run(1))]
