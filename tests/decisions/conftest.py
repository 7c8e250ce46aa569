"""Fixtures for the decision page tests: clients signed in as each kind of user, a tenant,
and decisions made the way a tenant's integration makes them (governance.services)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from decision_page_support import ANONYMOUS, T0, USERS, SecureClient, make_user
from governance import services
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier


@pytest.fixture
def client_for(db):
    """client_for(kind) -> a client signed in as that kind of user (ANONYMOUS: nobody);
    the same client for the same kind within a test."""
    made: dict[str, SecureClient] = {}

    def make(kind: str) -> SecureClient:
        if kind not in made:
            client = SecureClient()
            if kind != ANONYMOUS:
                username, roles, staff = USERS[kind]
                client.force_login(make_user(username, *roles, staff=staff))
            made[kind] = client
        return made[kind]
    return make


@pytest.fixture
def make_tenant(db):
    def make(name: str):
        customer, _key, _plaintext = services.create_customer(name, tier=Tier.objects.get(name="team"))
        return customer
    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("Acme Payments")


@pytest.fixture
def decide(tenant):
    """decide(inputs, customer=tenant, minutes=None) -> the stored Decision, made through
    `governance.services.evaluate_proposal` as the tenant's integration; `minutes` dates it
    T0 + minutes (decisions are never updated, so a test dates them when it makes them)."""
    def make(inputs: dict, *, customer=tenant, minutes: float | None = None) -> Decision:
        now = None if minutes is None else T0 + timedelta(minutes=minutes)
        body = services.evaluate_proposal(services.CallContext(customer=customer, api_key=None),
                                          parse_proposal(inputs), now=now)
        return Decision.objects.get(decision_id=body["decision_id"])
    return make
