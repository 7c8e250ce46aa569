"""The ledger table, append-only in the database: DELETE is refused, and an UPDATE unless
it chains an unchained entry (sets seq, prev_hash and hash, nothing else) or changes nothing
(Django's loaddata saves an existing row so)."""

import django.utils.timezone
from django.db import migrations, models

TABLE = "ledger_ledgerentry"
MESSAGE = "ledger entries are append-only"
FIXED = ("id", "kind", "ref", "digest")  # created_at is not hashed: loaddata rounds it to milliseconds
CHAINED = ("seq", "prev_hash", "hash")

SQLITE_FORWARD = [
    f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} WHEN NOT ("
    + " AND ".join(f"NEW.{column} IS OLD.{column}" for column in FIXED)
    + " AND (OLD.seq IS NULL OR " + " AND ".join(f"NEW.{column} IS OLD.{column}" for column in CHAINED)
    + f")) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
]
SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS {TABLE}_no_update;", f"DROP TRIGGER IF EXISTS {TABLE}_no_delete;"]
POSTGRES_FORWARD = [
    f"""CREATE OR REPLACE FUNCTION aegis_refuse_ledger_change() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'UPDATE'
               AND ({", ".join(f"NEW.{c}" for c in FIXED)}) IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in FIXED)})
               AND (OLD.seq IS NULL
                    OR ({", ".join(f"NEW.{c}" for c in CHAINED)}) IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in CHAINED)})) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql;""",
    f"""CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION aegis_refuse_ledger_change();""",
]
POSTGRES_BACKWARD = [f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};",
                     "DROP FUNCTION IF EXISTS aegis_refuse_ledger_change();"]
STATEMENTS = {"sqlite": (SQLITE_FORWARD, SQLITE_BACKWARD), "postgresql": (POSTGRES_FORWARD, POSTGRES_BACKWARD)}


def _run(index: int):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in STATEMENTS:
            raise RuntimeError(f"no append-only trigger for database {vendor!r}")
        for statement in STATEMENTS[vendor][index]:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="LedgerEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField(blank=True, null=True, unique=True)),
                ("kind", models.CharField(max_length=32)),
                ("ref", models.CharField(max_length=64)),
                ("digest", models.CharField(max_length=64)),
                ("prev_hash", models.CharField(blank=True, default="", max_length=64)),
                ("hash", models.CharField(blank=True, default="", max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"verbose_name_plural": "ledger entries", "ordering": ["seq"],
                     "constraints": [models.UniqueConstraint(fields=["kind", "ref"], name="ledger_one_entry_per_object")]},
        ),
        migrations.RunPython(_run(0), _run(1)),
    ]
