"""Fixtures for the client-facing REST API tests (API.md): tenants, an HTTPS test client
that speaks like the official client (the plain-http live server of the contract tests is in
tests/conftest.py)."""

from __future__ import annotations

import itertools

import pytest
from api_support import ApiClient, Tenant, ensure_default_tiers
from django.core.cache import cache

from governance import services
from governance.models import Tier


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The per-minute throttle lives in the cache: no test inherits another's counts."""
    cache.clear()
    yield
    cache.clear()


_custom_tiers = itertools.count(1)


@pytest.fixture
def make_tenant(db):
    """make_tenant(name, tier="free", **tier_limits): a tenant with its first key. With
    tier_limits (monthly_evaluations, rate_per_minute, max_keys) it gets a tier of its own."""
    ensure_default_tiers()

    def make(name: str = "Acme", tier: str = "free", **tier_limits) -> Tenant:
        tier_obj = Tier.objects.get(name=tier)
        if tier_limits:
            tier_obj.pk = None
            tier_obj.name = f"custom-{next(_custom_tiers)}"
            for field, value in tier_limits.items():
                setattr(tier_obj, field, value)
            tier_obj.save()
        customer, key, plaintext = services.create_customer(name, tier=tier_obj)
        return Tenant(customer, key, plaintext)

    return make


@pytest.fixture
def tenant(make_tenant) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(make_tenant) -> Tenant:
    return make_tenant("Globex")


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


@pytest.fixture
def api(tenant) -> ApiClient:
    """The `tenant`'s key as `Authorization: Bearer`."""
    return ApiClient(tenant.plaintext)


@pytest.fixture
def api_for():
    """api_for(tenant_or_key, **headers) -> ApiClient."""
    def make(who, **headers) -> ApiClient:
        return ApiClient(who.plaintext if isinstance(who, Tenant) else who, **headers)
    return make
