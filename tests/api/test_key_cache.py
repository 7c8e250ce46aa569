"""The per-process cache of valid API keys (governance/api/auth.py): a busy integration
costs no key lookup per call, and a revoked key or suspended tenant stops working at once
in the process that made the change and within AEGIS_API_KEY_CACHE_SECONDS everywhere
else. (The other processes are tested for real in tests/integration/test_key_revocation_gunicorn.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from clock_support import fake_monotonic
from api_support import ApiClient, assert_json_error
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance import services
from governance.api import auth
from governance.models import ApiKey, Customer


@pytest.fixture
def clock(monkeypatch):
    return fake_monotonic(monkeypatch, auth)


def key_queries(client: ApiClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/customer/profile").status_code == 200
    return sum('"governance_apikey"' in q["sql"] and q["sql"].startswith("SELECT") for q in queries.captured_queries)


def test_a_key_is_looked_up_once_then_served_from_memory(tenant, clock):
    client = ApiClient(tenant.plaintext)
    assert key_queries(client) == 1
    assert key_queries(client) == 0
    clock.now += 2.5  # past the default 2 s
    assert key_queries(client) == 1


def test_no_cache_with_zero_seconds(tenant, clock, settings):
    settings.AEGIS_API_KEY_CACHE_SECONDS = 0
    client = ApiClient(tenant.plaintext)
    assert key_queries(client) == 1
    assert key_queries(client) == 1


@pytest.mark.parametrize("change", ["revoke the key", "suspend the tenant"])
def test_a_change_made_elsewhere_is_seen_within_the_cache_time(tenant, clock, change):
    """A change this process did not make (another worker's, a raw UPDATE) sends no signal
    here: the remembered key works until its time is up, never longer."""
    client = ApiClient(tenant.plaintext)
    assert client.get("/customer/profile").status_code == 200
    if change == "revoke the key":
        ApiKey.objects.filter(pk=tenant.key.pk).update(revoked_at=services.timezone.now())
    else:
        Customer.objects.filter(pk=tenant.customer.pk).update(status=Customer.Status.SUSPENDED)

    clock.now += 1.9
    assert client.get("/customer/profile").status_code == 200
    clock.now += 0.2
    assert assert_json_error(client.get("/customer/profile"), 401)["error"] == "Invalid API key"


def test_a_key_revoked_through_the_api_stops_at_once_in_this_process(make_tenant, clock):
    tenant = make_tenant("Acme", tier="team")
    spare, spare_plaintext = services.create_api_key(tenant.customer, "spare")
    spare_client = ApiClient(spare_plaintext)
    assert spare_client.get("/customer/profile").status_code == 200

    assert ApiClient(tenant.plaintext).delete(f"/customer/keys/{spare.key_id}").status_code == 200

    assert_json_error(spare_client.get("/customer/profile"), 401)


def test_an_unknown_key_is_not_remembered(tenant, clock):
    """A key created a moment ago in another process works on its first call here."""
    customer = tenant.customer
    key, plaintext = ApiKey.generate(customer, "new")
    client = ApiClient(plaintext)
    assert_json_error(client.get("/customer/profile"), 401)
    ApiKey.objects.bulk_create([key])  # no signal, as if another process had created it

    assert client.get("/customer/profile").status_code == 200


@pytest.mark.parametrize("value", ["-1", "6", "two"])
def test_the_cache_time_is_checked_at_start(value):
    result = subprocess.run([sys.executable, "-c", "import aegis_site.settings"], capture_output=True, text=True,
                            env={**os.environ, "AEGIS_API_KEY_CACHE_SECONDS": value, "SECRET_KEY": "x" * 50})
    assert result.returncode != 0
    assert "AEGIS_API_KEY_CACHE_SECONDS" in result.stderr
    assert ImproperlyConfigured.__name__ in result.stderr
