"""Project-level guarantees: migrations complete, deployment checks clean, safe settings."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, env=None):
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE",
                                                              "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=ROOT, timeout=120)


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


PRODUCTION_LIKE = {
    "DEBUG": "0",
    "SECRET_KEY": "x7Jq2-production-like-" + "k" * 40 + "-Zr9",
    "ALLOWED_HOSTS": "aegis.example.com",
    "FERNET_KEYS": "pii-key-" + "q" * 40,
    "AEGIS_ANCHOR_KEY": "anchor-key-" + "a" * 40,  # the ledger's anchor (ledger.W001)
    # Notifications: an SMTP server and the public address links are built on (notifications.W001, W002).
    "EMAIL_HOST": "smtp.example.com",
    "AEGIS_PUBLIC_URL": "https://aegis.example.com",
}


def test_check_deploy_is_clean_for_a_production_like_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_LIKE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_pii_would_be_encrypted_under_the_secret_key():
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    env={k: v for k, v in PRODUCTION_LIKE.items() if k != "FERNET_KEYS"})
    assert result.returncode != 0 and "aegis.W001" in result.stderr and "FERNET_KEYS is not set" in result.stderr


def test_refuses_to_start_on_the_development_secret_key_with_debug_off():
    result = manage("check", env={"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_makemigrations_check_runs_without_a_key_but_nothing_else_does():
    result = manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
    for command in (("migrate", "--plan"), ("check",), ("runserver", "--noreload", "127.0.0.1:0")):
        refused = manage(*command)
        assert refused.returncode != 0 and "SECRET_KEY is not set" in refused.stderr, command


def test_development_defaults_work_with_debug_on():
    assert manage("check", env={"DEBUG": "1"}).returncode == 0


def test_bad_boolean_setting_is_named():
    result = manage("check", env={"DEBUG": "maybe"})
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_api_paths_are_never_redirected_and_sqlite_writes_queue():
    assert settings.APPEND_SLASH is False
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE" and db["OPTIONS"]["timeout"] == 20


@pytest.mark.django_db
def test_demo_users_created_once_with_passwords_from_env(monkeypatch):
    monkeypatch.setenv("AEGIS_DEMO_ADMIN_PASSWORD", "admin-pass-for-test-1")
    monkeypatch.setenv("AEGIS_DEMO_RISK_LEAD_PASSWORD", "risk-pass-for-test-2")
    out = StringIO()
    call_command("aegis_demo", stdout=out)
    assert "admin-pass-for-test-1" not in out.getvalue()  # env passwords are not echoed
    users = get_user_model().objects
    admin, lead = users.get(username="admin"), users.get(username="risklead")
    assert admin.is_superuser and admin.check_password("admin-pass-for-test-1")
    assert not lead.is_superuser and lead.check_password("risk-pass-for-test-2")
    assert list(lead.groups.values_list("name", flat=True)) == ["Risk Lead"]
    second = StringIO()
    call_command("aegis_demo", stdout=second)
    assert second.getvalue().count("already exists") == 5


@pytest.mark.django_db
def test_demo_users_generated_password_is_printed_once(monkeypatch):
    monkeypatch.delenv("AEGIS_DEMO_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("aegis_demo", stdout=out)
    line = next(l for l in out.getvalue().splitlines() if "'admin'" in l)
    password = line.rsplit(": ", 1)[1]
    assert get_user_model().objects.get(username="admin").check_password(password)
