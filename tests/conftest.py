"""Suite-wide test infrastructure."""

import importlib

import pytest
from django.db.backends.sqlite3.operations import DatabaseOperations

APPEND_ONLY = importlib.import_module("workflows.migrations.0002_append_only_and_roles")


@pytest.fixture(autouse=True, scope="session")
def flush_around_append_only_triggers():
    """Transactional tests empty the database with `flush` between tests. On SQLite that
    is DELETE FROM, which the append-only trigger refuses; lift the triggers for the
    flush only and put them back in the same statement list. (PostgreSQL flushes with
    TRUNCATE, which the row triggers do not cover.)"""
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if APPEND_ONLY.TABLE not in tables:
            return statements
        return [*APPEND_ONLY.SQLITE_BACKWARD, *statements, *APPEND_ONLY.SQLITE_FORWARD]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original
