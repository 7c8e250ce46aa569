"""API keys (Bearer or X-Api-Key) guard every keyed endpoint, and each tenant sees only its
own data: another tenant's id answers exactly like a missing one (API.md)."""

from __future__ import annotations

import uuid

import pytest
from api_support import EXAMPLE_A, ApiClient, Tenant, assert_json_error

from governance import services
from governance.models import ApiKey, Customer, Decision, UsageCounter

pytestmark = pytest.mark.django_db

# name -> (method, path template, body); {key_id} is a spare key of the tenant, {decision_id}
# one of its decisions.
KEYED_ENDPOINTS = {
    "evaluate": ("POST", "/evaluate", EXAMPLE_A),
    "risk-check": ("POST", "/risk-check", {"risk_score": 0.1}),
    "profile": ("GET", "/customer/profile", None),
    "usage": ("GET", "/customer/usage", None),
    "usage-month": ("GET", "/customer/usage/2026-01", None),
    "keys-list": ("GET", "/customer/keys", None),
    "keys-create": ("POST", "/customer/keys", {"name": "ci"}),
    "keys-revoke": ("DELETE", "/customer/keys/{key_id}", None),
    "decisions": ("GET", "/customer/decisions", None),
    "decision": ("GET", "/customer/decisions/{decision_id}", None),
}


@pytest.fixture
def world(make_tenant):
    """A team tenant with a spare key, one decision, and a revoked key."""
    tenant = make_tenant("Acme", tier="team")
    spare, _ = services.create_api_key(tenant.customer, "spare")
    revoked, revoked_plaintext = services.create_api_key(tenant.customer, "old")
    services.revoke_api_key(tenant.customer, revoked.key_id)
    decision = ApiClient(tenant.plaintext).post("/evaluate", {**EXAMPLE_A, "proposal_summary": "seed"}).json()
    return {"tenant": tenant, "spare": spare, "revoked_plaintext": revoked_plaintext,
            "decision_id": decision["decision_id"]}


def snapshot():
    return (Decision.objects.count(), ApiKey.objects.count(), ApiKey.objects.filter(revoked_at__isnull=True).count(),
            sum(UsageCounter.objects.values_list("count", flat=True)))


# credentials name -> headers, given the world
BAD_CREDENTIALS = {
    "anonymous": lambda w: {},
    "unknown-bearer-key": lambda w: {"Authorization": "Bearer aegis_thisKeyWasNeverIssued"},
    "unknown-x-api-key": lambda w: {"X-Api-Key": "aegis_thisKeyWasNeverIssued"},
    "empty-bearer": lambda w: {"Authorization": "Bearer "},
    "wrong-scheme": lambda w: {"Authorization": f"Token {w['tenant'].plaintext}"},
    "key-hash-as-key": lambda w: {"Authorization": f"Bearer {w['tenant'].key.key_hash}"},
    "key-id-as-key": lambda w: {"Authorization": f"Bearer {w['tenant'].key.key_id}"},
    "revoked-key": lambda w: {"Authorization": f"Bearer {w['revoked_plaintext']}"},
    "revoked-x-api-key": lambda w: {"X-Api-Key": w["revoked_plaintext"]},
}
GOOD_CREDENTIALS = {
    "bearer": lambda w: {"Authorization": f"Bearer {w['tenant'].plaintext}"},
    "lowercase-bearer": lambda w: {"Authorization": f"bearer {w['tenant'].plaintext}"},
    "x-api-key": lambda w: {"X-Api-Key": w["tenant"].plaintext},
}


def call(world, endpoint: str, headers: dict[str, str]):
    method, template, body = KEYED_ENDPOINTS[endpoint]
    path = template.format(key_id=world["spare"].key_id, decision_id=world["decision_id"])
    return ApiClient().request(method, path, body, headers=headers)


@pytest.mark.parametrize("endpoint", KEYED_ENDPOINTS)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_a_missing_bad_or_revoked_key_gets_401_and_changes_nothing(world, endpoint, credentials):
    before = snapshot()

    response = call(world, endpoint, BAD_CREDENTIALS[credentials](world))

    body = assert_json_error(response, 401)
    assert body["error"] == "Invalid API key"
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", KEYED_ENDPOINTS)
@pytest.mark.parametrize("credentials", GOOD_CREDENTIALS)
def test_a_valid_key_is_accepted_as_bearer_or_x_api_key(world, endpoint, credentials):
    response = call(world, endpoint, GOOD_CREDENTIALS[credentials](world))

    assert 200 <= response.status_code < 300, response.content


def test_a_suspended_tenants_key_gets_401(world):
    customer = Customer.objects.get(pk=world["tenant"].customer.pk)
    customer.status = Customer.Status.SUSPENDED
    customer.save()  # as the admin does (another process's change: tests/api/test_key_cache.py)

    body = assert_json_error(ApiClient(world["tenant"].plaintext).get("/customer/profile"), 401)
    assert body["error"] == "Invalid API key"


def test_a_bad_bearer_is_not_rescued_by_a_good_x_api_key(world):
    response = ApiClient().get("/customer/profile", headers={
        "Authorization": "Bearer aegis_thisKeyWasNeverIssued", "X-Api-Key": world["tenant"].plaintext})

    assert assert_json_error(response, 401)["error"] == "Invalid API key"


# --- tenancy ------------------------------------------------------------------------------

@pytest.fixture
def two_tenants(make_tenant):
    alice: Tenant = make_tenant("Alice Corp")
    bob: Tenant = make_tenant("Bob Corp")
    return alice, bob


def test_another_tenants_decision_answers_exactly_like_a_missing_one(two_tenants):
    alice, bob = two_tenants
    decision_id = ApiClient(alice.plaintext).post("/evaluate", EXAMPLE_A).json()["decision_id"]
    as_bob = ApiClient(bob.plaintext)

    missing_id = str(uuid.uuid4())

    foreign = as_bob.get(f"/customer/decisions/{decision_id}")
    missing = as_bob.get(f"/customer/decisions/{missing_id}")

    foreign_body, missing_body = assert_json_error(foreign, 404), assert_json_error(missing, 404)
    assert foreign_body["code"] == missing_body["code"]
    assert foreign_body["error"].replace(decision_id, "ID") == missing_body["error"].replace(missing_id, "ID")
    assert ApiClient(alice.plaintext).get(f"/customer/decisions/{decision_id}").status_code == 200


def test_another_tenants_key_cannot_be_revoked_and_answers_like_a_missing_one(two_tenants):
    alice, bob = two_tenants
    as_bob = ApiClient(bob.plaintext)

    missing_id = "key_0000000000000000"

    foreign = as_bob.delete(f"/customer/keys/{alice.key.key_id}")
    missing = as_bob.delete(f"/customer/keys/{missing_id}")

    foreign_body, missing_body = assert_json_error(foreign, 404), assert_json_error(missing, 404)
    assert foreign_body["code"] == missing_body["code"]
    assert foreign_body["error"].replace(alice.key.key_id, "ID") == missing_body["error"].replace(missing_id, "ID")
    assert ApiKey.objects.get(pk=alice.key.pk).revoked_at is None
    assert ApiClient(alice.plaintext).get("/customer/profile").status_code == 200


def test_lists_and_usage_show_only_the_callers_own_data(two_tenants):
    alice, bob = two_tenants
    as_alice, as_bob = ApiClient(alice.plaintext), ApiClient(bob.plaintext)
    alice_decision = as_alice.post("/evaluate", EXAMPLE_A).json()["decision_id"]
    as_alice.post("/evaluate", EXAMPLE_A)
    bob_decision = as_bob.post("/evaluate", EXAMPLE_A).json()["decision_id"]

    bob_decisions = [d["decision_id"] for d in as_bob.get("/customer/decisions").json()["decisions"]]
    bob_keys = [k["key_id"] for k in as_bob.get("/customer/keys").json()["keys"]]
    bob_usage = as_bob.get("/customer/usage").json()
    bob_profile = as_bob.get("/customer/profile").json()

    assert bob_decisions == [bob_decision]
    assert alice_decision not in bob_decisions
    assert bob_keys == [bob.key.key_id]
    assert bob_usage["customer_id"] == bob.customer.customer_id
    assert bob_usage["total_evaluations"] == 1
    assert as_alice.get("/customer/usage").json()["total_evaluations"] == 2
    assert bob_profile["customer"]["customer_id"] == bob.customer.customer_id
