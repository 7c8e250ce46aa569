"""`manage.py aegis_tenant`: create a tenant (its first key printed once), list tenants,
revoke a key; bad input is a CommandError that says what is wrong."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from api_support import ApiClient, ensure_default_tiers
from django.core.management import CommandError, call_command

from governance import services
from governance.models import ApiKey, Customer, Tier

pytestmark = pytest.mark.django_db

KEY_LINE = re.compile(r"API key (key_[0-9a-f]+) \(shown only now\): (aegis_\S+)")


@pytest.fixture(autouse=True)
def tiers(db):
    ensure_default_tiers()


def run(*args: str) -> str:
    out = StringIO()
    call_command("aegis_tenant", *args, stdout=out)
    return out.getvalue()


def test_create_prints_a_working_key_of_the_chosen_tier():
    output = run("create", "Acme Robotics", "--tier", "team")

    key_id, plaintext = KEY_LINE.search(output).groups()
    customer = Customer.objects.get(name="Acme Robotics")
    assert customer.customer_id in output
    assert customer.tier.name == "team"
    assert ApiKey.objects.get(key_id=key_id).customer == customer
    profile = ApiClient(plaintext).get("/customer/profile")
    assert profile.status_code == 200, profile.content
    assert profile.json()["customer"]["customer_id"] == customer.customer_id
    assert profile.json()["tier_details"]["max_keys"] == 10


def test_create_defaults_to_the_free_tier_and_can_print_json():
    data = json.loads(run("create", "Solo", "--json", "--email", "solo@example.com"))

    customer = Customer.objects.get(customer_id=data["customer_id"])
    assert customer.tier.name == "free"
    assert customer.email == "solo@example.com"
    assert ApiClient(data["key"]).get("/customer/keys").json()["keys"][0]["key_id"] == data["key_id"]


def test_list_shows_every_tenant_with_tier_and_active_keys():
    acme, key, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    services.create_api_key(acme, "second")
    solo, solo_key, _ = services.create_customer("Solo", tier=Tier.objects.get(name="free"))
    services.revoke_api_key(solo, solo_key.key_id)

    lines = run("list").splitlines()

    assert len(lines) == 2
    acme_line = next(line for line in lines if acme.customer_id in line)
    solo_line = next(line for line in lines if solo.customer_id in line)
    assert "Acme" in acme_line and "team" in acme_line and "2 active" in acme_line
    assert "Solo" in solo_line and "free" in solo_line and "0 active" in solo_line


def test_revoke_key_makes_the_key_answer_401():
    output = run("create", "Acme")
    key_id, plaintext = KEY_LINE.search(output).groups()
    assert ApiClient(plaintext).get("/customer/profile").status_code == 200

    revoked = run("revoke-key", key_id)

    assert key_id in revoked
    response = ApiClient(plaintext).get("/customer/profile")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid API key"


def test_an_unknown_tier_is_a_command_error_naming_it_and_the_choices():
    with pytest.raises(CommandError) as error:
        run("create", "Acme", "--tier", "platinum")

    message = str(error.value)
    assert "platinum" in message
    assert "free" in message and "team" in message and "enterprise" in message
    assert not Customer.objects.exists()


def test_an_unknown_key_id_is_a_command_error_naming_it():
    with pytest.raises(CommandError) as error:
        run("revoke-key", "key_doesnotexist")

    assert "key_doesnotexist" in str(error.value)


def test_an_empty_name_is_a_command_error():
    with pytest.raises(CommandError, match="NAME"):
        run("create", "   ")
    assert not Customer.objects.exists()
