"""Migration operations that move plaintext columns to EncryptedFields in place.

For each model: add `<name>_encrypted` for every column, copy every row into them
encrypted under the first of FERNET_KEYS in ONE pass (batches, keyset by primary key),
drop the plaintext columns and rename the new ones. Reversible: going back decrypts into
plaintext columns again. Used by the migrations that encrypt PLATFORM.md §7's PII; kept
here so each of them says only *which* columns change. The dropped columns' bytes stay in
the database files until they are rewritten: see `purge_plaintext`.
"""

from __future__ import annotations

from django.db import migrations, models

from .fields import EncryptedField

BATCH = 1000


def _copy(app_label: str, model_name: str, pairs: list[tuple[str, str]]):
    """Copy each (source, target) column of every row, through the fields' own conversions."""
    def run(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        connection = schema_editor.connection
        quote = connection.ops.quote_name
        targets = [model._meta.get_field(target) for _, target in pairs]
        sql = (f"UPDATE {quote(model._meta.db_table)} SET "
               + ", ".join(f"{quote(field.column)} = %s" for field in targets)
               + f" WHERE {quote(model._meta.pk.column)} = %s")
        last = None
        while True:
            rows = model.objects.order_by("pk")
            if last is not None:
                rows = rows.filter(pk__gt=last)
            batch = list(rows.values_list("pk", *(source for source, _ in pairs))[:BATCH])
            if not batch:
                return
            with connection.cursor() as cursor:
                cursor.executemany(sql, [[field.get_db_prep_save(value, connection)
                                          for field, value in zip(targets, values)] + [pk]
                                         for pk, *values in batch])
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
    added, nullable, pairs, swapped = [], [], [], []
    for name, plain in columns.items():
        value_type = "json" if isinstance(plain, models.JSONField) else "str"
        temporary = f"{name}_encrypted"
        staging = EncryptedField(value_type=value_type, blank=plain.blank,
                                 default=plain.default if plain.has_default() else ({} if value_type == "json" else ""))
        added.append(migrations.AddField(model_name, temporary, staging, preserve_default=plain.has_default()))
        if not plain.has_default() and not plain.blank:
            # So that going back can re-add the plaintext column before refilling it.
            loose = plain.clone()
            loose.null = True
            nullable.append(migrations.AlterField(model_name, name, loose))
        pairs.append((name, temporary))
        swapped += [migrations.RemoveField(model_name, name), migrations.RenameField(model_name, temporary, name)]
    copy = migrations.RunPython(_copy(app_label, model_name, pairs),
                                _copy(app_label, model_name, [(target, source) for source, target in pairs]),
                                elidable=False)
    return [*added, *nullable, copy, *swapped]


def purge_plaintext(tables: list[str]):
    """A RunPython (for a migration with atomic = False) that rewrites `tables` so the bytes
    of their dropped plaintext columns and of the row versions the copy replaced leave the
    database files: VACUUM FULL on PostgreSQL (locks each table while it runs); on SQLite a
    VACUUM of the whole file with secure_delete on, and a WAL checkpoint."""
    def run(apps, schema_editor):
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for table in tables:
                    cursor.execute(f"VACUUM FULL {connection.ops.quote_name(table)}")
            elif connection.vendor == "sqlite":
                cursor.execute("PRAGMA secure_delete = ON")
                cursor.execute("VACUUM")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return migrations.RunPython(run, migrations.RunPython.noop, elidable=False)
