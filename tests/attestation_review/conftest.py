"""Fixtures for the reviewers' side of attestations: a signing pair, a tenant with a proceed
decision, and clients signed in as each kind of person."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from attestation_review_support import ANONYMOUS, ROLES, SecureClient, decide, make_tenant
from attestations import keys
from workflows.roles import ROLE_GROUPS

@pytest.fixture
def signing_pair(db):
    return keys.generate_pair()


@pytest.fixture
def tenant(db):
    return make_tenant("Acme Payments")


@pytest.fixture
def decision(tenant):
    made = decide(tenant)
    assert made.status == "proceed"
    return made


@pytest.fixture
def client_for(db):
    """client_for(kind) -> a client signed in as that kind of staff member (ANONYMOUS: nobody)."""
    def make(kind: str) -> SecureClient:
        client = SecureClient()
        if kind != ANONYMOUS:
            user = get_user_model().objects.create_user(kind, password=None, is_staff=True)
            for role in ROLES[kind]:
                user.groups.add(Group.objects.get(name=ROLE_GROUPS[role]))
            client.force_login(user)
        return client
    return make
