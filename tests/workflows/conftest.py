"""Fixtures for the workflow tests: users with role groups, tenants with API keys."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from workflows.roles import ROLE_GROUPS, Role

_numbers = itertools.count(1)


@pytest.fixture
def make_user(db):
    """make_user("alice", Role.RISK_LEAD, …) -> a user in the groups carrying those roles."""
    def make(username: str | None = None, *roles: Role):
        # no password: tests sign in with force_login, and hashing one costs ~1 s (PBKDF2)
        user = get_user_model().objects.create_user(username or f"user{next(_numbers)}", password=None)
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
        return user
    return make


@pytest.fixture
def risk_lead(make_user):
    return make_user("rita", Role.RISK_LEAD)


@pytest.fixture
def security_lead(make_user):
    return make_user("sam", Role.SECURITY_LEAD)


@pytest.fixture
def plain_user(make_user):
    return make_user("nina")


@pytest.fixture
def make_tenant(db):
    """make_tenant("Acme") -> (customer, plaintext API key) on the team tier."""
    from governance.models import Tier
    from governance.services import create_customer

    def make(name: str):
        customer, _key, plaintext = create_customer(name, tier=Tier.objects.get(name="team"))
        return customer, plaintext
    return make
