"""Idempotency-Key (API.md): scope (tenant, method, path, key), kept 24 hours. A replay
returns the first answer without doing the work again; a different body is a 422; a key
still in flight is a 409; a failed first attempt does not poison the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import api_race
import pytest
from api_support import EXAMPLE_A, ApiClient, assert_json_error
from django.db import connection
from django.utils import timezone

from governance.idempotency import body_fingerprint
from governance.models import ApiKey, Decision, IdempotencyRecord, Tier, UsageCounter

MISMATCH = "Idempotency-Key reused with a different request body"
IN_FLIGHT = "Concurrent request with the same Idempotency-Key is still in flight"


def evaluations_counted(customer) -> int:
    return sum(UsageCounter.objects.filter(customer=customer, kind="evaluation", channel=UsageCounter.ALL_CHANNELS).values_list("count", flat=True))


# --- POST /evaluate -----------------------------------------------------------------------

@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_answer_exactly(tenant, api):
    key = {"Idempotency-Key": "3f1c2d9e-0000-4000-8000-000000000001"}

    first = api.post("/evaluate", EXAMPLE_A, headers=key)
    second = api.post("/evaluate", EXAMPLE_A, headers=key)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.json()["decision_id"] == first.json()["decision_id"]
    assert Decision.objects.filter(customer=tenant.customer).count() == 1
    assert evaluations_counted(tenant.customer) == 1
    assert api.get("/customer/usage").json()["total_evaluations"] == 1
    assert second["X-AEGIS-Request-Id"] != first["X-AEGIS-Request-Id"]


@pytest.mark.django_db
def test_same_body_with_keys_reordered_is_the_same_body(tenant, api):
    key = {"Idempotency-Key": "reordered"}
    first = api.post("/evaluate", EXAMPLE_A, headers=key)

    second = api.post("/evaluate", dict(reversed(list(EXAMPLE_A.items()))), headers=key)

    assert second.status_code == 200, second.content
    assert second.json()["decision_id"] == first.json()["decision_id"]
    assert Decision.objects.count() == 1


@pytest.mark.django_db
def test_without_a_key_every_request_is_a_new_decision(tenant, api):
    first = api.post("/evaluate", EXAMPLE_A).json()
    second = api.post("/evaluate", EXAMPLE_A).json()

    assert first["decision_id"] != second["decision_id"]
    assert Decision.objects.count() == 2


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_a_422(tenant, api):
    key = {"Idempotency-Key": "reused"}
    first = api.post("/evaluate", EXAMPLE_A, headers=key)

    second = api.post("/evaluate", {**EXAMPLE_A, "proposal_summary": "something else"}, headers=key)

    assert first.status_code == 200
    assert MISMATCH in assert_json_error(second, 422)["error"]
    assert Decision.objects.count() == 1
    assert evaluations_counted(tenant.customer) == 1


@pytest.mark.django_db
def test_a_key_still_in_flight_is_a_409(tenant, api):
    IdempotencyRecord.objects.create(customer=tenant.customer, method="POST", path="/evaluate", key="busy",
                                     request_hash=body_fingerprint(EXAMPLE_A), created_at=timezone.now())

    response = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "busy"})

    assert assert_json_error(response, 409)["error"].startswith(IN_FLIGHT)
    assert Decision.objects.count() == 0
    assert evaluations_counted(tenant.customer) == 0


@pytest.mark.django_db
def test_a_first_attempt_that_never_finished_is_taken_over_once_stale(tenant, api, settings):
    settings.AEGIS_IDEMPOTENCY_STALE_SECONDS = 120
    IdempotencyRecord.objects.create(customer=tenant.customer, method="POST", path="/evaluate", key="crashed",
                                     request_hash=body_fingerprint(EXAMPLE_A),
                                     created_at=timezone.now() - timedelta(minutes=10))

    first = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "crashed"})
    replay = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "crashed"})

    assert first.status_code == replay.status_code == 200, first.content
    assert replay.json()["decision_id"] == first.json()["decision_id"]
    assert Decision.objects.count() == 1


@pytest.mark.django_db
def test_a_key_older_than_24_hours_is_forgotten(tenant, api):
    first = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "yesterday"}).json()
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))

    again = api.post("/evaluate", {**EXAMPLE_A, "proposal_summary": "a new day"},
                     headers={"Idempotency-Key": "yesterday"})

    assert again.status_code == 200, again.content
    assert again.json()["decision_id"] != first["decision_id"]
    assert Decision.objects.count() == 2


@pytest.mark.django_db
def test_a_key_younger_than_24_hours_is_still_replayed(tenant, api):
    first = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "today"}).json()
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))

    again = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "today"})

    assert again.json()["decision_id"] == first["decision_id"]
    assert Decision.objects.count() == 1


@pytest.mark.django_db
def test_key_scope_is_per_tenant(tenant, other_tenant, api_for):
    key = {"Idempotency-Key": "shared-by-accident"}
    alice = api_for(tenant).post("/evaluate", EXAMPLE_A, headers=key)

    bob = api_for(other_tenant).post("/evaluate", {**EXAMPLE_A, "proposal_summary": "bob's"}, headers=key)
    bob_same_body = api_for(other_tenant).post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "same-as-alice"})
    alice_again = api_for(tenant).post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "same-as-alice"})

    assert alice.status_code == bob.status_code == 200
    assert bob.json()["decision_id"] != alice.json()["decision_id"]
    assert Decision.objects.get(decision_id=bob.json()["decision_id"]).customer == other_tenant.customer
    assert bob_same_body.json()["decision_id"] != alice_again.json()["decision_id"]
    assert Decision.objects.count() == 4


@pytest.mark.django_db
def test_key_scope_is_per_path(tenant, api):
    key = {"Idempotency-Key": "one-key-two-endpoints"}

    evaluated = api.post("/evaluate", EXAMPLE_A, headers=key)
    created = api.post("/customer/keys", {"name": "ci"}, headers=key)

    assert evaluated.status_code == 200, evaluated.content
    assert created.status_code in (200, 201), created.content
    assert ApiKey.objects.filter(customer=tenant.customer).count() == 2


@pytest.mark.django_db
def test_a_failed_first_attempt_does_not_poison_the_key(make_tenant):
    tenant = make_tenant("Broke", monthly_evaluations=1)
    api = ApiClient(tenant.plaintext)
    assert api.post("/evaluate", EXAMPLE_A).status_code == 200  # uses up the quota
    key = {"Idempotency-Key": "after-upgrade"}

    refused = api.post("/evaluate", EXAMPLE_A, headers=key)
    tier = Tier.objects.get(pk=tenant.customer.tier_id)
    tier.monthly_evaluations = 10
    tier.save()  # as the admin does: this process forgets its remembered keys (tiers) at once
    retried = api.post("/evaluate", EXAMPLE_A, headers=key)
    replayed = api.post("/evaluate", EXAMPLE_A, headers=key)

    assert_json_error(refused, 429)
    assert retried.status_code == 200, retried.content
    assert replayed.json()["decision_id"] == retried.json()["decision_id"]
    assert Decision.objects.count() == 2
    assert evaluations_counted(tenant.customer) == 2


@pytest.mark.django_db
def test_a_replay_is_answered_even_after_the_quota_ran_out(make_tenant):
    tenant = make_tenant("Thrifty", monthly_evaluations=1)
    api = ApiClient(tenant.plaintext)
    first = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "only-one"})

    replay = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "only-one"})
    fresh = api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "a-new-one"})

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert_json_error(fresh, 429)


@pytest.mark.django_db
def test_an_overlong_key_is_a_400(api):
    assert_json_error(api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "k" * 201}), 400)
    assert Decision.objects.count() == 0


# --- POST /customer/keys and DELETE /customer/keys/{id} -------------------------------------

@pytest.mark.django_db
def test_creating_a_key_twice_with_one_idempotency_key_creates_it_once(make_tenant):
    tenant = make_tenant("Acme", tier="team")
    api = ApiClient(tenant.plaintext)
    key = {"Idempotency-Key": "create-ci-key"}

    first = api.post("/customer/keys", {"name": "ci"}, headers=key)
    second = api.post("/customer/keys", {"name": "ci"}, headers=key)
    different = api.post("/customer/keys", {"name": "cd"}, headers=key)

    assert first.status_code in (200, 201), first.content
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert ApiKey.objects.filter(customer=tenant.customer).count() == 2
    assert MISMATCH in assert_json_error(different, 422)["error"]


@pytest.mark.django_db
def test_a_refused_key_creation_does_not_poison_the_idempotency_key(tenant, api):
    api.post("/customer/keys", {"name": "second"})  # free tier: now at its 2 keys
    key = {"Idempotency-Key": "create-third"}
    refused = api.post("/customer/keys", {"name": "third"}, headers=key)
    second_key_id = [k["key_id"] for k in api.get("/customer/keys").json()["keys"] if k["name"] == "second"][0]
    api.delete(f"/customer/keys/{second_key_id}")

    created = api.post("/customer/keys", {"name": "third"}, headers=key)

    assert_json_error(refused, 409)
    assert created.status_code in (200, 201), created.content


@pytest.mark.django_db
def test_revoking_a_key_twice_with_one_idempotency_key_replays(make_tenant):
    tenant = make_tenant("Acme", tier="team")
    api = ApiClient(tenant.plaintext)
    spare = api.post("/customer/keys", {"name": "spare"}).json()
    key = {"Idempotency-Key": "revoke-spare"}

    first = api.delete(f"/customer/keys/{spare['key_id']}", headers=key)
    revoked_at = ApiKey.objects.get(key_id=spare["key_id"]).revoked_at
    second = api.delete(f"/customer/keys/{spare['key_id']}", headers=key)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert first.json()["revoked"] is True
    assert revoked_at is not None
    assert ApiKey.objects.get(key_id=spare["key_id"]).revoked_at == revoked_at
    assert ApiClient(spare["key"]).get("/customer/profile").status_code == 401


@pytest.mark.django_db
def test_one_idempotency_key_on_two_different_key_ids_is_two_scopes(make_tenant):
    tenant = make_tenant("Acme", tier="team")
    api = ApiClient(tenant.plaintext)
    one = api.post("/customer/keys", {"name": "one"}).json()
    two = api.post("/customer/keys", {"name": "two"}).json()
    key = {"Idempotency-Key": "revoke"}

    assert api.delete(f"/customer/keys/{one['key_id']}", headers=key).status_code == 200
    assert api.delete(f"/customer/keys/{two['key_id']}", headers=key).status_code == 200

    assert ApiKey.objects.filter(key_id__in=[one["key_id"], two["key_id"]], revoked_at__isnull=True).count() == 0


# --- concurrency --------------------------------------------------------------------------

THREADS = 8


def in_memory_sqlite() -> bool:
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_requests_with_one_key_make_exactly_one_decision(request, tmp_path):
    if in_memory_sqlite():
        # See api_race.py: the same race, on a migrated SQLite file in a subprocess.
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'race.sqlite3'}"}
        run = subprocess.run([sys.executable, str(Path(api_race.__file__)), str(THREADS)], env=env,
                             capture_output=True, text=True, timeout=120, cwd=Path(api_race.__file__).parents[2])
        assert run.returncode == 0, run.stderr
        outcome = json.loads(run.stdout.strip().splitlines()[-1])
    else:
        tenant = request.getfixturevalue("make_tenant")("Busy", tier="team")
        outcome = api_race.outcome(tenant.plaintext, tenant.customer, THREADS, EXAMPLE_A)

    results = outcome["results"]
    statuses = [status for status, *_ in results]
    assert set(statuses) <= {200, 409}, results
    assert 200 in statuses, results
    decided = {body["decision_id"] for status, body, *_ in results if status == 200}
    assert len(decided) == 1, results
    for status, body, *_ in results:
        if status == 409:
            assert body["error"].startswith(IN_FLIGHT)
    assert outcome["decision_ids"] == list(decided)
    assert outcome["evaluations_counted"] == 1
