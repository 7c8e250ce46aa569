"""`POST /attestations/verify` answers, for every row of attestation_cases.CASES, the error
class the official client's offline verifier gives for the same envelope (the server's
keyring being the pair that signed), and the keyid choice where the two differ by design."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from attestation_cases import (CASES, DIGEST, ENVIRONMENT, NOW, Keys, offline, offline_for, signed, statement,
                              value)
from attestation_http import Pipeline
from django.test.utils import override_settings

from attestations import services
from attestations.envelope import SigningPair
from governance.models import TelemetryEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(SigningPair.generate(), SigningPair.generate())


@pytest.fixture
def verify(keys, monkeypatch):
    """verify(envelope, digest, environment, now) -> the response of POST /attestations/verify
    on a server whose signing pair (from the environment) is `keys.signer`, at `now`."""
    pipeline = Pipeline("Parity Co")
    seeds = override_settings(AEGIS_ATTESTATION_ED25519_SEED=base64.b64encode(keys.signer.ed25519_seed).decode(),
                              AEGIS_ATTESTATION_MLDSA65_SEED=base64.b64encode(keys.signer.mldsa65_seed).decode())
    seeds.enable()

    def post(envelope, digest=DIGEST, environment=ENVIRONMENT, now=NOW):
        monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: now))
        return pipeline.verify(envelope, digest, environment)

    yield post
    seeds.disable()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_server_answers_what_the_offline_verifier_answers(case, keys, verify):
    envelope = case.make(keys)

    response = verify(envelope, case.digest, case.environment, case.now)

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["error_class"] == offline_for(case, envelope, keys) == value(case.expected)
    assert answer["valid"] is (case.expected is None)
    assert answer["verified_at"] == case.now.isoformat().replace("+00:00", "Z")
    event = TelemetryEvent.objects.filter(name="attestation.verified").latest("occurred_at")
    assert event.data["error_class"] == value(case.expected)


def test_an_envelope_naming_a_key_the_server_does_not_have_fails_on_the_server_only(keys, verify):
    """The server picks each key by the envelope's keyid (its keyring holds every pair it
    ever signed with); the offline verifier uses its one pinned pair whatever the keyid
    says. So an envelope whose keyid was altered still passes offline, and the server
    answers the class the client gives for a signature it cannot verify (docs/decisions.md)."""
    envelope = signed(keys)
    envelope["signatures"][0]["keyid"] = "ed25519:" + "0" * 64

    assert offline(envelope, keys) is None
    assert verify(envelope).json() == {"valid": False, "verified_at": "2026-12-03T12:00:00Z",
                                       "error_class": "AttestationEd25519VerifyFailed"}
    envelope = signed(keys)
    envelope["signatures"][1]["keyid"] = "ml-dsa-65:" + "0" * 64
    assert verify(envelope).json()["error_class"] == "AttestationMLDSAVerifyFailed"


def test_another_servers_envelope_does_not_verify_here(keys, verify):
    """Signed by a pair this server never had (its own keyids): refused at the first signature."""
    envelope = keys.other.sign(statement())[0]
    assert verify(envelope).json()["error_class"] == "AttestationEd25519VerifyFailed"


@pytest.mark.parametrize("body_change, field", [
    ({"envelope": "a string"}, "envelope"),
    ({"envelope": {"payload": 5, "signatures": []}}, "envelope.payload"),
    ({"envelope": {"payloadType": None, "payload": "", "signatures": []}}, "envelope.payloadType"),
    ({"envelope": {"payload": "", "signatures": [{"keyid": 1, "sig": ""}]}}, "envelope.signatures"),
    ({"envelope": {"payload": "", "signatures": {"keyid": "ed25519:x"}}}, "envelope.signatures"),
    ({"expected_digest": "abc"}, "expected_digest"),
    ({"expected_environment": "Production"}, "expected_environment"),
], ids=["envelope-string", "payload-number", "payloadType-null", "keyid-number", "signatures-object",
        "short-digest", "environment-case"])
def test_a_malformed_request_is_a_400_naming_the_field(keys, verify, body_change, field):
    """What the client could not even turn into a DSSEEnvelope is refused before verifying."""
    envelope = body_change.get("envelope", signed(keys))
    response = verify(envelope, body_change.get("expected_digest", DIGEST),
                      body_change.get("expected_environment", ENVIRONMENT))
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith(field + " must be")
