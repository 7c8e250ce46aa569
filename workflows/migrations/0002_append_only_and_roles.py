"""Make workflow transitions append-only in the database itself, and create the role groups.

A trigger refuses every UPDATE and DELETE of a transition, on SQLite and on PostgreSQL,
so even code that bypasses the ORM cannot rewrite history (verification would catch it
anyway; the trigger stops it happening). TRUNCATE, which needs table-owner rights, is left
to database administrators (it is how test databases are emptied).
"""

from django.db import migrations

TABLE = "workflows_workflowtransition"
MESSAGE = "workflow transitions are append-only"

SQLITE_FORWARD = [
    f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
]
SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS {TABLE}_no_update;", f"DROP TRIGGER IF EXISTS {TABLE}_no_delete;"]

POSTGRES_FORWARD = [
    f"""CREATE OR REPLACE FUNCTION aegis_refuse_transition_change() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END;
        $$ LANGUAGE plpgsql;""",
    f"""CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION aegis_refuse_transition_change();""",
]
POSTGRES_BACKWARD = [
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};",
    "DROP FUNCTION IF EXISTS aegis_refuse_transition_change();",
]

ROLE_GROUPS = ["Risk Lead", "Security Lead"]


def install_triggers(apps, schema_editor):
    statements = {"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}.get(schema_editor.connection.vendor)
    if statements is None:
        raise RuntimeError(f"no append-only trigger for database {schema_editor.connection.vendor!r}")
    for statement in statements:
        schema_editor.execute(statement)


def remove_triggers(apps, schema_editor):
    for statement in {"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}[schema_editor.connection.vendor]:
        schema_editor.execute(statement)


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(install_triggers, remove_triggers),
        migrations.RunPython(create_groups, delete_groups),
    ]
