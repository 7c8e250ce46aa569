"""Re-encrypt every encrypted column under the first of FERNET_KEYS (`aegis_rotate_keys`).

The procedure (README "Rotating the encryption key"): put the new key first in FERNET_KEYS
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


def _rotate_table(model, columns: list[EncryptedField], *, batch_size: int, check_only: bool,
                  on_batch: Callable[[TableRotation], None] | None) -> TableRotation:
    from workflows.models import ReencryptionWindow

    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    names = ", ".join(quote(c.column) for c in columns)
    lock = " FOR UPDATE" if connection.features.has_select_for_update and not check_only else ""
    select = f"SELECT {pk}, {names} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s{lock}"
    update = (f"UPDATE {table} SET " + ", ".join(f"{quote(c.column)} = %s" for c in columns) + f" WHERE {pk} = %s")
    result = TableRotation(model._meta.label, tuple(c.name for c in columns))
    last = 0  # every primary key here is an auto-increment integer
    while True:
        with transaction.atomic():
            # Lets this transaction (only) rewrite the encrypted columns of append-only tables.
            window = None if check_only else ReencryptionWindow.objects.create()
            with connection.cursor() as cursor:
                cursor.execute(select, [last, batch_size])
                rows = cursor.fetchall()
                changes = []
                for pk_value, *values in rows:
                    fresh = [None if v is None else _fresh(v, where=f"{result.label}.{c.name} (pk {pk_value})",
                                                           check_only=check_only)
                             for c, v in zip(columns, values)]
                    result.values += sum(v is not None for v in values)
                    if any(f is not None for f in fresh):
                        result.reencrypted += sum(f is not None for f in fresh)
                        changes.append([connection.Database.Binary(f) if f is not None else v
                                        for f, v in zip(fresh, values)] + [pk_value])
                if changes and not check_only:
                    cursor.executemany(update, changes)
            if window is not None:
                window.delete()
        if not rows:
            return result
        result.rows += len(rows)
        last = rows[-1][0]
        if on_batch is not None:
            on_batch(result)


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
