"""Limits (API.md): a per-minute throttle answers 429 with a numeric Retry-After, an
exhausted monthly quota answers 429 without one, and the keyless sandbox allows
SANDBOX_DAILY_LIMIT evaluations per client IP and day."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from api_support import EXAMPLE_A, ApiClient, assert_json_error
from django.utils import timezone

from governance import services
from governance.models import Decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """Pins the time the limits see (services' `timezone.now`), so a per-minute window
    cannot roll over in the middle of a test. `clock.now` can be moved."""
    state = SimpleNamespace(now=timezone.now().replace(second=30, microsecond=0))
    monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: state.now))
    return state


# --- per-minute throttle ------------------------------------------------------------------

def test_the_per_minute_throttle_answers_429_with_a_numeric_retry_after(make_tenant, clock):
    tenant = make_tenant("Chatty", rate_per_minute=3)
    api = ApiClient(tenant.plaintext)

    allowed = [api.post("/evaluate", EXAMPLE_A) for _ in range(3)]
    throttled = api.post("/evaluate", EXAMPLE_A)

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert_json_error(throttled, 429)
    retry_after = float(throttled["Retry-After"])
    assert 1 <= retry_after <= 60
    assert throttled["Retry-After"].isdigit()  # whole seconds, as a plain number
    assert Decision.objects.count() == 3


def test_the_throttle_counts_every_keyed_call(make_tenant, clock):
    tenant = make_tenant("Chatty", rate_per_minute=3)
    api = ApiClient(tenant.plaintext)
    api.get("/customer/profile")
    api.post("/risk-check", {"risk_score": 0.1})
    api.get("/customer/usage")

    throttled = api.get("/customer/keys")

    assert_json_error(throttled, 429)
    assert throttled["Retry-After"].isdigit()


def test_the_throttle_is_per_tenant_and_per_minute(make_tenant, clock):
    chatty = ApiClient(make_tenant("Chatty", rate_per_minute=1).plaintext)
    quiet = ApiClient(make_tenant("Quiet", rate_per_minute=1).plaintext)
    assert chatty.post("/evaluate", EXAMPLE_A).status_code == 200
    assert chatty.post("/evaluate", EXAMPLE_A).status_code == 429

    other_tenant = quiet.post("/evaluate", EXAMPLE_A)
    clock.now += timedelta(minutes=1)
    next_minute = chatty.post("/evaluate", EXAMPLE_A)

    assert other_tenant.status_code == 200, other_tenant.content
    assert next_minute.status_code == 200, next_minute.content


# --- monthly quota ------------------------------------------------------------------------

def test_an_exhausted_monthly_quota_answers_429_without_retry_after(make_tenant, clock):
    tenant = make_tenant("Thrifty", monthly_evaluations=2)
    api = ApiClient(tenant.plaintext)

    allowed = [api.post("/evaluate", EXAMPLE_A) for _ in range(2)]
    refused = api.post("/evaluate", EXAMPLE_A)

    assert [r.status_code for r in allowed] == [200, 200]
    assert_json_error(refused, 429)
    assert "Retry-After" not in refused
    assert Decision.objects.count() == 2
    usage = api.get("/customer/usage").json()
    assert (usage["total_evaluations"], usage["quota"], usage["quota_remaining"]) == (2, 2, 0)
    assert usage["quota_percent"] == 100.0


def test_the_quota_counts_only_this_months_evaluations(make_tenant, clock):
    tenant = make_tenant("Thrifty", monthly_evaluations=2)
    api = ApiClient(tenant.plaintext)
    this_month = clock.now
    clock.now = this_month.replace(day=1) - timedelta(days=1)  # some day last month
    assert [api.post("/evaluate", EXAMPLE_A).status_code for _ in range(3)] == [200, 200, 429]
    last_month = services.month_of(clock.now)

    clock.now = this_month
    now_allowed = [api.post("/evaluate", EXAMPLE_A).status_code for _ in range(3)]

    assert now_allowed == [200, 200, 429]
    assert api.get(f"/customer/usage/{last_month}").json()["total_evaluations"] == 2
    assert api.get("/customer/usage").json()["total_evaluations"] == 2


def test_risk_checks_do_not_use_up_the_evaluation_quota(make_tenant, clock):
    tenant = make_tenant("Thrifty", monthly_evaluations=1)
    api = ApiClient(tenant.plaintext)

    checks = [api.post("/risk-check", {"risk_score": 0.1}).status_code for _ in range(3)]
    evaluation = api.post("/evaluate", EXAMPLE_A)

    assert checks == [200, 200, 200]
    assert evaluation.status_code == 200, evaluation.content


# --- sandbox ------------------------------------------------------------------------------

def sandbox(ip: str):
    return ApiClient().post("/sandbox/evaluate", EXAMPLE_A, REMOTE_ADDR=ip)


def test_the_sandbox_limit_is_per_client_ip(settings, clock):
    settings.SANDBOX_DAILY_LIMIT = 2

    first_ip = [sandbox("203.0.113.7") for _ in range(3)]
    second_ip = sandbox("198.51.100.23")

    assert [r.status_code for r in first_ip] == [200, 200, 429]
    assert "Retry-After" not in first_ip[2]
    assert_json_error(first_ip[2], 429)
    assert second_ip.status_code == 200
    assert second_ip.json()["remaining"] == 1


def test_the_sandbox_limit_is_per_day(settings, clock):
    settings.SANDBOX_DAILY_LIMIT = 1
    assert [sandbox("203.0.113.7").status_code for _ in range(2)] == [200, 429]

    clock.now += timedelta(days=1)
    tomorrow = sandbox("203.0.113.7")

    assert tomorrow.status_code == 200, tomorrow.content
    assert tomorrow.json()["remaining"] == 0


def test_an_invalid_sandbox_request_does_not_use_up_the_limit(settings, clock):
    settings.SANDBOX_DAILY_LIMIT = 1
    rejected = ApiClient().post("/sandbox/evaluate", {"proposal_summary": ""}, REMOTE_ADDR="203.0.113.7")

    accepted = sandbox("203.0.113.7")

    assert rejected.status_code == 400
    assert accepted.status_code == 200, accepted.content
