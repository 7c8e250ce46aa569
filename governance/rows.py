"""One-row inserts with a statement built once per model and database.

`Model.save()` compiles its INSERT anew on every call; for the rows every /evaluate writes
(decision, telemetry event, idempotency record) that compiling cost more than the database
did. `insert()` keeps the same column values (each field's own `pre_save` and
`get_db_prep_save`, so defaults, encryption and JSON work as with save()) and sets the new
primary key on the object. A model with save signal receivers goes through save(), so
nothing listening is skipped.
"""

from __future__ import annotations

from django.db import connections, models
from django.db.models.signals import post_save, pre_save

_statements: dict[tuple[type[models.Model], str], tuple[str, list[models.Field]]] = {}


def _statement(model: type[models.Model], alias: str) -> tuple[str, list[models.Field]]:
    key = (model, alias)
    built = _statements.get(key)
    if built is None:
        connection = connections[alias]
        meta = model._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key or not isinstance(f, models.AutoField)]
        quote = connection.ops.quote_name
        returning, _ = connection.ops.return_insert_columns([meta.pk])
        sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))}) {returning}")
        built = _statements[key] = (sql, fields)
    return built


def insert(obj: models.Model, using: str = "default") -> models.Model:
    """INSERT `obj` (a new row) and return it with its primary key set."""
    model = type(obj)
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        obj.save(force_insert=True, using=using)
        return obj
    sql, fields = _statement(model, using)
    connection = connections[using]
    params = [field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = using
    return obj
