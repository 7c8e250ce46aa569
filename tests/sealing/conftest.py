"""Fixtures of the sealed-decision tests: a tenant and API clients for it and for staff.
The verify route is governance.api.decision_urls's `decisions/<id>/verify`."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from sealing_support import Tenant, https, make_tenant


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("Another Tenant")


@pytest.fixture
def tenant_api(tenant):
    return https(Authorization=f"Bearer {tenant.plaintext}")


@pytest.fixture
def staff_api(db):
    user = get_user_model().objects.create_user("sealing-staff", is_staff=True)
    client = https()
    client.force_login(user)
    return client
