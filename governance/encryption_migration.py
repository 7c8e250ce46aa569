"""Migration operations that move a plaintext column to an EncryptedField in place.

For each column: add `<name>_encrypted`, copy every row into it encrypted under the first
of FERNET_KEYS (in batches, keyset by primary key), drop the plaintext column and rename
the new one. Reversible: going back decrypts into a plaintext column again. Used by the
migrations that encrypt PLATFORM.md §7's PII; kept here so each of them says only *which*
columns change.
"""

from __future__ import annotations

from django.db import migrations, models

from .fields import EncryptedField

BATCH = 1000


def _copy(app_label: str, model_name: str, source: str, target: str):
    def run(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        connection = schema_editor.connection
        target_field = model._meta.get_field(target)
        table = connection.ops.quote_name(model._meta.db_table)
        column = connection.ops.quote_name(target_field.column)
        pk_column = connection.ops.quote_name(model._meta.pk.column)
        sql = f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s"
        last = None
        while True:
            rows = model.objects.order_by("pk")
            if last is not None:
                rows = rows.filter(pk__gt=last)
            batch = list(rows.values_list("pk", source)[:BATCH])
            if not batch:
                return
            with connection.cursor() as cursor:
                cursor.executemany(sql, [(target_field.get_db_prep_save(value, connection), pk) for pk, value in batch])
                if connection.vendor == "postgresql":
                    # Run the deferred foreign-key checks these UPDATEs queued now: PostgreSQL
                    # refuses the next ALTER TABLE of this table while any are pending.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            last = batch[-1][0]
    return run


def encrypt_columns(model_name: str, columns: dict[str, models.Field], *, app_label: str) -> list:
    """Operations turning each `columns` entry (name → its plaintext field as declared
    before) into an EncryptedField of the matching value_type, keeping every value."""
    operations = []
    for name, plain in columns.items():
        value_type = "json" if isinstance(plain, models.JSONField) else "str"
        temporary = f"{name}_encrypted"
        staging = EncryptedField(value_type=value_type, blank=plain.blank,
                                 default=plain.default if plain.has_default() else ({} if value_type == "json" else ""))
        operations.append(migrations.AddField(model_name, temporary, staging, preserve_default=plain.has_default()))
        if not plain.has_default() and not plain.blank:
            # So that going back can re-add the plaintext column before refilling it.
            nullable = plain.clone()
            nullable.null = True
            operations.append(migrations.AlterField(model_name, name, nullable))
        operations += [
            migrations.RunPython(_copy(app_label, model_name, name, temporary),
                                 _copy(app_label, model_name, temporary, name), elidable=False),
            migrations.RemoveField(model_name, name),
            migrations.RenameField(model_name, temporary, name),
        ]
    return operations
