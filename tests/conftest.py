"""Suite-wide test infrastructure."""

import importlib
import sys
from pathlib import Path

# A test-only `oqs` (liboqs-python) on the path before the official client is imported: its
# offline verifier imports oqs for ML-DSA-65, which this shim checks with `cryptography`.
sys.path.insert(0, str(Path(__file__).resolve().parent / "verifier_shim"))

import pytest
from django.db.backends.sqlite3.base import DatabaseOperations  # via .base: importing .operations first is circular
from django.test.utils import override_settings

# table -> the migration module holding its SQLite append-only triggers
APPEND_ONLY = {
    "workflows_workflowtransition": importlib.import_module("workflows.migrations.0005_encrypt_pii"),
    "governance_telemetryevent": importlib.import_module("governance.migrations.0009_append_only_telemetry"),
    # One module holds the triggers of both tables (lifted once however many are flushed).
    "governance_decision": importlib.import_module("governance.migrations.0011_decision_seals"),
    "governance_decisionseal": importlib.import_module("governance.migrations.0011_decision_seals"),
    "attestations_attestation": importlib.import_module("attestations.migrations.0001_initial"),
    "ledger_ledgerentry": importlib.import_module("ledger.migrations.0001_initial"),
}


@pytest.fixture(autouse=True, scope="session")
def flush_around_append_only_triggers():
    """Transactional tests empty the database with `flush` between tests. On SQLite that
    is DELETE FROM, which the append-only triggers refuse; lift the triggers for the
    flush only and put them back in the same statement list. (PostgreSQL flushes with
    TRUNCATE, which the row triggers do not cover.)"""
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        lifted = list(dict.fromkeys(APPEND_ONLY[table] for table in tables if table in APPEND_ONLY))
        return [*(sql for module in lifted for sql in module.SQLITE_BACKWARD), *statements,
                *(sql for module in lifted for sql in module.SQLITE_FORWARD)]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original


def pytest_collection_modifyitems(items):
    """Every transactional test restores the migrated contents (tiers, groups, the first
    configuration version, schedules) with serialized_rollback. Mixing serialized and plain
    transactional tests breaks: a plain flush re-creates content types under new ids, which
    the next serialized restore then collides with."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback"):
            item.add_marker(pytest.mark.django_db(*marker.args, **{**marker.kwargs, "serialized_rollback": True}),
                            append=False)


@pytest.fixture(autouse=True)
def forget_cached_keys_and_config():
    """Each test starts with empty per-process caches: a test's rolled-back rows (a key, a
    configuration version) must not be served to the next test from memory."""
    from calibration.versions import forget_newest
    from governance.api.auth import recent_keys

    recent_keys.clear()
    forget_newest()
    yield
    recent_keys.clear()
    forget_newest()


@pytest.fixture(autouse=True)
def anchors_in_tmp(monkeypatch, tmp_path_factory):
    """Each test's ledger anchor lives in a directory of its own: a test's ledger is rolled
    back with it, so an anchor left by the one before would not match. (Set on the settings
    themselves: pytest-django's `settings` fixture would hide SETTINGS_MODULE from the
    verification's worker processes.)"""
    from django.conf import settings

    monkeypatch.setattr(settings, "AEGIS_ANCHOR_DIR", tmp_path_factory.mktemp("anchors"))


@pytest.fixture
def plain_http_live_server(request, django_db_setup):
    """pytest-django's live_server reachable over plain http, as the official client uses
    it for localhost. Production settings redirect http to https; SecurityMiddleware reads
    that setting once, when the server builds its handler, so the server must first be
    started under the override (a server already started by the browser tests has it too)."""
    with override_settings(SECURE_SSL_REDIRECT=False):
        server = request.getfixturevalue("live_server")
    # What pytest-django's own helper does for tests that name `live_server` directly.
    server._live_server_modified_settings.enable()
    yield server
    server._live_server_modified_settings.disable()
