"""The notification settings at start-up and in `check --deploy`: a webhook is never sent
unsigned, and a production deployment is told when emails would not leave the server or
would link to the recipient's own machine."""

from __future__ import annotations

import pytest
from test_project import PRODUCTION_LIKE, manage  # tests/ is on sys.path (its conftest.py)


@pytest.mark.parametrize("env, message", [
    ({"AEGIS_WEBHOOK_URL": "https://hooks.example.com/aegis"}, "AEGIS_WEBHOOK_URL is set but AEGIS_WEBHOOK_SECRET "
                                                                "is not"),
    ({"AEGIS_WEBHOOK_URL": "hooks.example.com/aegis", "AEGIS_WEBHOOK_SECRET": "s"}, "AEGIS_WEBHOOK_URL must be an "
                                                                                   "http:// or https:// URL"),
    ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "EMAIL_USE_TLS (STARTTLS, usually port 587) and EMAIL_USE_SSL"),
    ({"EMAIL_TIMEOUT": "0"}, "EMAIL_TIMEOUT and AEGIS_WEBHOOK_TIMEOUT must be at least 1 second"),
])
def test_refuses_to_start_on_unsafe_or_contradictory_settings(env, message):
    result = manage("check", env={**PRODUCTION_LIKE, **env})
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("env, warning", [
    ({"EMAIL_HOST": ""}, "notifications.W001"),
    ({"AEGIS_PUBLIC_URL": ""}, "notifications.W002"),
])
def test_check_deploy_warns_when_emails_would_not_reach_anyone_usefully(env, warning):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION_LIKE, **env})
    assert result.returncode != 0 and warning in result.stderr, result.stderr
