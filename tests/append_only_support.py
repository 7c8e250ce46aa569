"""Lifting the append-only triggers of decisions, their seal blocks and attestations in
tests (imported as `append_only_support`: tests/ is on sys.path for every test module).

Inside a test's transaction the DDL is rolled back with it on SQLite and PostgreSQL; the
helpers put the triggers back anyway, so a transactional test leaves them as it found them.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Iterator

from django.db import connection

SEALS = importlib.import_module("governance.migrations.0011_decision_seals")
DECISIONS_TABLE, SEALS_TABLE = SEALS.DECISIONS, SEALS.SEALS

EXPECTED_TRIGGERS = {
    "sqlite": {f"{DECISIONS_TABLE}_no_update", f"{DECISIONS_TABLE}_no_delete", f"{SEALS_TABLE}_no_update",
               f"{SEALS_TABLE}_no_delete"},
    "postgresql": {f"{DECISIONS_TABLE}_append_only", f"{SEALS_TABLE}_append_only"},
}


def decision_triggers() -> set[str]:
    """The triggers on the decision and seal tables as the database has them now."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s, %s)",
                           [DECISIONS_TABLE, SEALS_TABLE])
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid IN (%s::regclass, %s::regclass) "
                           "AND NOT tgisinternal", [DECISIONS_TABLE, SEALS_TABLE])
        return {row[0] for row in cursor.fetchall()}


def drop_decision_triggers() -> None:
    """What an attacker with DBA rights does first."""
    vendor_statements = {"sqlite": SEALS.SQLITE_BACKWARD, "postgresql": SEALS.POSTGRES_BACKWARD}
    with connection.cursor() as cursor:
        for statement in vendor_statements[connection.vendor]:
            cursor.execute(statement)


def restore_decision_triggers() -> None:
    drop_decision_triggers()  # IF EXISTS: whichever are left go, so none is created twice
    with connection.cursor() as cursor:
        for statement in {"sqlite": SEALS.SQLITE_FORWARD, "postgresql": SEALS.POSTGRES_FORWARD}[connection.vendor]:
            cursor.execute(statement)


@contextmanager
def decisions_writable() -> Iterator[None]:
    drop_decision_triggers()
    try:
        yield
    finally:
        restore_decision_triggers()


def wipe_decisions() -> None:
    """Delete every decision and seal block (a database a backup is restored into holds
    neither: blocks are not in backups)."""
    with decisions_writable(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {SEALS_TABLE}")
        cursor.execute(f"DELETE FROM {DECISIONS_TABLE}")


ATTESTATION_TRIGGERS = importlib.import_module("attestations.migrations.0001_initial").TRIGGERS


@contextmanager
def attestations_writable() -> Iterator[None]:
    """The attestation table without its append-only triggers (as someone with database
    rights would have it), put back afterwards."""
    install, remove = ATTESTATION_TRIGGERS[connection.vendor]
    with connection.cursor() as cursor:
        for statement in remove:
            cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for statement in [*remove, *install]:  # IF EXISTS: none is created twice
                cursor.execute(statement)


def wipe_attestations() -> None:
    """Delete every attestation and signing pair (what a fresh server holds), the append-only
    triggers lifted for it and put back."""
    from attestations.models import Attestation, SigningKeyPair

    with attestations_writable(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Attestation._meta.db_table}")
        cursor.execute(f"DELETE FROM {SigningKeyPair._meta.db_table}")


LEDGER = importlib.import_module("ledger.migrations.0001_initial")


def wipe_ledger_to_fresh() -> None:
    """The ledger as a freshly migrated database has it: the entry of configuration version
    1 only (what a restore onto a new server starts from)."""
    vendor = connection.vendor
    install, remove = LEDGER.STATEMENTS[vendor]
    with connection.cursor() as cursor:
        for statement in remove:
            cursor.execute(statement)
        cursor.execute(f"DELETE FROM {LEDGER.TABLE} WHERE seq IS NULL OR seq > 1")
        for statement in install:
            cursor.execute(statement)
