"""Fixtures for the calibration tests: risk leads alice and bob, carol with no role, the
seed's calibrator-1 / risk-lead users, tenants with API keys, a clean config cache."""

from __future__ import annotations

import pytest
from cal_support import Browser, ensure_seed, make_user
from django.core.cache import cache

from calibration import versions


@pytest.fixture(autouse=True)
def _fresh_caches():
    """The per-process config cache is keyed by version number; a test database rolled
    back between tests reuses numbers, so no test may inherit another's built configs.
    The per-minute throttle lives in the Django cache."""
    versions._built.clear()
    cache.clear()
    yield
    versions._built.clear()
    cache.clear()


@pytest.fixture
def seeded(db):
    ensure_seed()


@pytest.fixture
def alice(seeded):
    return make_user("alice", risk_lead=True)


@pytest.fixture
def bob(seeded):
    return make_user("bob", risk_lead=True)


@pytest.fixture
def carol(seeded):
    return make_user("carol")


@pytest.fixture
def browser():
    """browser(user=None) -> an HTTPS test client logged in as `user`."""
    return Browser


@pytest.fixture
def make_tenant(seeded):
    """make_tenant(name) -> (customer, plaintext API key) on the team tier."""
    from governance.models import Tier
    from governance.services import create_customer

    def make(name: str = "Acme"):
        customer, _key, plaintext = create_customer(name, tier=Tier.objects.get(name="team"))
        return customer, plaintext
    return make
