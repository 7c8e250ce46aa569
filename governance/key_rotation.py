"""Re-encrypt every encrypted column under the first of FERNET_KEYS (`aegis_rotate_keys`).

The procedure (docs/operations.md, "Rotating the encryption key"): put the new key first in FERNET_KEYS
on every process and restart them (new writes then use it, old values still decrypt), run
the rotation, then remove the old key. The rotation walks each table in primary-key order,
one short transaction per batch: the batch's rows are locked, every value not yet under
the first key is re-encrypted, and the batch commits. So it can run while the app serves,
and an interrupted run is simply run again: values already under the first key are
recognised and skipped. Audit chains cover the plaintext, so they verify unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import connection, transaction

from .fields import DecryptionError, EncryptedField, current_ciphers
from .telemetry import Event, emit

DEFAULT_BATCH = 500


@dataclass
class TableRotation:
    """What one table's pass found and did."""

    label: str
    columns: tuple[str, ...]
    rows: int = 0
    values: int = 0
    reencrypted: int = 0

    @property
    def already_current(self) -> int:
        return self.values - self.reencrypted


@dataclass
class RotationResult:
    tables: list[TableRotation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def reencrypted(self) -> int:
        return sum(t.reencrypted for t in self.tables)


def encrypted_tables() -> list[tuple[type, list[EncryptedField]]]:
    """Every installed model with encrypted columns, with those columns."""
    found = []
    for model in apps.get_models():
        columns = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        if columns and not model._meta.proxy:
            found.append((model, columns))
    return sorted(found, key=lambda item: item[0]._meta.label)


def _token(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _fresh(value, *, where: str, check_only: bool) -> bytes | None:
    """None if `value` is already under the first key, else its re-encryption (or b"" when
    only checking). A value no key decrypts stops the rotation with a clear error."""
    everyone, first = current_ciphers()
    token = _token(value)
    try:
        first.decrypt(token)
        return None
    except InvalidToken:
        pass
    try:
        return b"" if check_only else everyone.rotate(token)
    except InvalidToken:
        raise DecryptionError(f"cannot decrypt {where}: no key in FERNET_KEYS decrypts it; keep the key it was "
                              "written under in FERNET_KEYS until the rotation has finished") from None


class _TablePass:
    """One table's rotation: its SQL, and re-encrypting a set of its rows in the caller's
    transaction."""

    def __init__(self, model, columns: list[EncryptedField], *, check_only: bool):
        quote = connection.ops.quote_name
        self.table, self.pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        self.columns = columns
        self.check_only = check_only
        self.names = ", ".join(quote(c.column) for c in columns)
        self.update = (f"UPDATE {self.table} SET " + ", ".join(f"{quote(c.column)} = %s" for c in columns)
                       + f" WHERE {self.pk} = %s")
        self.result = TableRotation(model._meta.label, tuple(c.name for c in columns))

    def next_ids(self, cursor, after: int, limit: int) -> list[int]:
        cursor.execute(f"SELECT {self.pk} FROM {self.table} WHERE {self.pk} > %s ORDER BY {self.pk} LIMIT %s",
                       [after, limit])
        return [row[0] for row in cursor.fetchall()]

    def rotate(self, cursor, ids: list[int], *, skip_locked: bool) -> set[int]:
        """Re-encrypt (or count) the rows `ids`; returns the ids it did. On PostgreSQL the
        rows are locked first (NO KEY UPDATE: foreign keys to them stay usable); with
        skip_locked, rows the app holds are left for later instead of waited for, so the
        rotation never waits while holding locks and cannot deadlock with the app. SQLite
        needs no row locks: the transaction (BEGIN IMMEDIATE) already excludes other writers."""
        lock = ""
        if not self.check_only and connection.features.has_select_for_update:
            lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_no_key_update else " FOR UPDATE"
            if skip_locked and connection.features.has_select_for_update_skip_locked:
                lock += " SKIP LOCKED"
        placeholders = ", ".join(["%s"] * len(ids))
        cursor.execute(f"SELECT {self.pk}, {self.names} FROM {self.table} WHERE {self.pk} IN ({placeholders}) "
                       f"ORDER BY {self.pk}{lock}", ids)
        rows = cursor.fetchall()
        changes = []
        for pk_value, *values in rows:
            fresh = [None if v is None else _fresh(v, where=f"{self.result.label}.{c.name} (pk {pk_value})",
                                                   check_only=self.check_only)
                     for c, v in zip(self.columns, values)]
            self.result.values += sum(v is not None for v in values)
            if any(f is not None for f in fresh):
                self.result.reencrypted += sum(f is not None for f in fresh)
                changes.append([connection.Database.Binary(f) if f is not None else v
                                for f, v in zip(fresh, values)] + [pk_value])
        if changes and not self.check_only:
            cursor.executemany(self.update, changes)
        self.result.rows += len(rows)
        return {row[0] for row in rows}


def _rotate_table(model, columns: list[EncryptedField], *, batch_size: int, check_only: bool,
                  on_batch: Callable[[TableRotation], None] | None) -> TableRotation:
    from workflows.models import ReencryptionWindow

    table = _TablePass(model, columns, check_only=check_only)
    held_by_the_app: list[int] = []
    last = 0  # every primary key here is an auto-increment integer
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            ids = table.next_ids(cursor, last, batch_size)
            if not ids:
                break
            # Lets this transaction (only) rewrite the encrypted columns of append-only tables.
            window = None if check_only else ReencryptionWindow.objects.create()
            done = table.rotate(cursor, ids, skip_locked=True)
            held_by_the_app += [pk for pk in ids if pk not in done]
            if window is not None:
                window.delete()
        last = ids[-1]
        if on_batch is not None:
            on_batch(table.result)
    # The few rows the app was holding: one row per transaction, so waiting for one is safe.
    for pk in held_by_the_app:
        with transaction.atomic(), connection.cursor() as cursor:
            window = ReencryptionWindow.objects.create()
            table.rotate(cursor, [pk], skip_locked=False)
            window.delete()
    return table.result


def rotate_keys(*, batch_size: int = DEFAULT_BATCH, check_only: bool = False,
                on_batch: Callable[[TableRotation], None] | None = None) -> RotationResult:
    """Re-encrypt (or, with check_only, count) every value not under the first key."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    result = RotationResult()
    for model, columns in encrypted_tables():
        result.tables.append(_rotate_table(model, columns, batch_size=batch_size, check_only=check_only,
                                           on_batch=on_batch))
    result.seconds = time.perf_counter() - started
    if not check_only:
        with transaction.atomic():
            emit(Event.KEYS_ROTATED, actor="aegis_rotate_keys", subject=f"{result.reencrypted} values",
                 data={"rows": result.rows, "reencrypted": result.reencrypted, "seconds": round(result.seconds, 3),
                       "tables": {t.label: t.reencrypted for t in result.tables}})
    return result
