"""Contract test of attestations: the unmodified official client (`aegis-governance` 1.4.2,
sync `Aegis` and async `AsyncAegis`) against a live server over plain http, through every
answer of POST /attest, POST /attestations/verify, GET /attestations/{decision_id} and
GET /attestations/keys. Bad input the client checks itself is also sent raw (api_support's
HTTPS test client), so the server's own answer is tested too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc8785
from aegis import (Aegis, AsyncAegis, AttestationCollisionError, AttestationNotFoundError,
                   AttestationProviderUnavailableError, AttestationVerifyKey, ValidationError,
                   verify_attestation_locally)
from aegis.types import DSSEEnvelope
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # api_support, api_race

import api_race  # noqa: E402
from api_support import ApiClient, assert_json_error  # noqa: E402
from client_attest_support import (DIGEST, PROCEED_GATES, Blocking, attest_arguments, make_tenant,  # noqa: E402
                                   moment, statement_of)

from attestations import keys  # noqa: E402
from attestations.envelope import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE  # noqa: E402
from attestations.models import Attestation  # noqa: E402
from governance import decisions, services  # noqa: E402
from governance.models import TelemetryEvent  # noqa: E402
from governance.telemetry import Event  # noqa: E402
from workflows.roles import ROLE_GROUPS, Role  # noqa: E402
from workflows.services import actor_for, fire_event  # noqa: E402

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)
FLAVOURS = pytest.mark.parametrize("flavour", ["sync", "async"])
HEX64 = re.compile(r"[0-9a-f]{64}")
GOVERNANCE_FIELDS = {"decision_id", "artifact_digest", "environment", "risk_class", "policy_version", "issued_at",
                     "expires_at", "gate_pass_states", "repository", "workflow_ref", "run_id", "run_attempt"}


@pytest.fixture
def signing_pair(db):
    """The stored pair that signs (as `manage.py aegis_attestation_keys generate` makes it)."""
    return keys.generate_pair()


@pytest.fixture
def tenant(db):
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(db):
    return make_tenant("Globex")


@pytest.fixture
def connect(plain_http_live_server, monkeypatch):
    """connect(tenant, flavour) -> the official client (sync, or async run on one event loop)
    on the live server with that tenant's key; closed after the test."""
    monkeypatch.delenv("AEGIS_API_KEY", raising=False)
    monkeypatch.delenv("AEGIS_BASE_URL", raising=False)
    loop = asyncio.new_event_loop()
    opened: list = []

    def make(tenant, flavour: str = "sync"):
        options = {"api_key": tenant.plaintext, "base_url": plain_http_live_server.url, "max_retries": 0,
                   "timeout": 10.0}
        if flavour == "sync":
            client = Aegis(**options)
            opened.append(client.close)
            return client
        client = AsyncAegis(**options)
        opened.append(lambda: loop.run_until_complete(client.close()))
        return Blocking(client, loop)

    yield make
    for close in opened:
        close()
    loop.close()


def raw_attest(tenant, body, **headers):
    return ApiClient(tenant.plaintext).post("/attest", body, headers=headers)


def person(username: str, role: Role):
    """The actor of a signed-in person holding `role` (a custodian of reviews and overrides)."""
    user = get_user_model().objects.create_user(username, password=None, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
    return actor_for(user)


# --- POST /attest: a new attestation, replays, collisions ---------------------------------

@live
@FLAVOURS
def test_a_new_attestation_is_201_with_a_signed_in_toto_statement(flavour, signing_pair, tenant, connect):
    arguments = attest_arguments(subject_name="payments-api.tar.gz", build_type="https://example.com/build/v1")

    result = connect(tenant, flavour).attestations.attest(**arguments)

    assert result.idempotent_replayed is False
    assert result.request_id.startswith("req_")
    assert result.decision_id == arguments["decision_id"]
    assert result.expires_at == arguments["expires_at"]  # as asked, never clipped
    envelope = result.envelope.to_dict()
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert [s["keyid"].split(":")[0] for s in envelope["signatures"]] == ["ed25519", "ml-dsa-65"]
    payload = base64.b64decode(envelope["payload"])
    assert result.statement_canonical_sha256 == hashlib.sha256(payload).hexdigest()
    statement = statement_of(envelope)
    assert payload == rfc8785.dumps(statement)  # canonical: what both signatures cover
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == [{"name": "payments-api.tar.gz", "digest": {"sha256": DIGEST}}]
    predicate = statement["predicate"]
    assert predicate["buildDefinition"] == {"buildType": "https://example.com/build/v1",
                                            "externalParameters": arguments["external_parameters"]}
    assert predicate["runDetails"] == {"builder": {"id": arguments["builder_id"]}}
    governance = predicate["governance"]
    assert set(governance) == GOVERNANCE_FIELDS  # medium risk: no nonce
    expected = {name: arguments[name] for name in GOVERNANCE_FIELDS & set(arguments)}
    assert {name: governance[name] for name in expected} == expected
    assert governance["artifact_digest"] == DIGEST
    assert governance["issued_at"] == result.issued_at and result.issued_at < result.expires_at
    stored = Attestation.objects.get(decision_id=arguments["decision_id"])
    assert stored.customer == tenant.customer and stored.signing_pair == signing_pair
    assert stored.envelope == envelope and stored.statement_sha256 == result.statement_canonical_sha256


@live
def test_a_pipeline_verifies_offline_with_the_keys_the_server_publishes(signing_pair, tenant, connect):
    result = connect(tenant).attestations.attest(**attest_arguments())

    listed = Client().get("/attestations/keys", secure=True).json()["keys"]

    raw = {entry["algorithm"]: base64.b64decode(entry["public_key"]) for entry in listed}
    pinned = AttestationVerifyKey(ed25519_public=raw["ed25519"], mldsa65_public=raw["ml-dsa-65"])
    assert verify_attestation_locally(envelope=result.envelope, expected_digest=DIGEST,
                                      expected_environment="production", keys=pinned) == (True, None)
    assert verify_attestation_locally(envelope=result.envelope, expected_digest=DIGEST,
                                      expected_environment="staging", keys=pinned) == (
        False, "AttestationEnvironmentMismatch")


@live
@FLAVOURS
def test_the_same_attestation_again_is_a_200_replay(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    arguments = attest_arguments()

    first = client.attestations.attest(**arguments, idempotency_key="deploy-7")
    same_key = client.attestations.attest(**arguments, idempotency_key="deploy-7")
    same_decision_id = client.attestations.attest(**arguments)  # the client sends a new key of its own

    assert first.idempotent_replayed is False
    for replay in (same_key, same_decision_id):
        assert replay.idempotent_replayed is True
        assert replay.envelope == first.envelope
        assert (replay.decision_id, replay.statement_canonical_sha256, replay.issued_at, replay.expires_at) == (
            first.decision_id, first.statement_canonical_sha256, first.issued_at, first.expires_at)
    assert Attestation.objects.count() == 1
    assert TelemetryEvent.objects.filter(name=Event.ATTESTATION_ISSUED).count() == 1
    for raw in (raw_attest(tenant, arguments, **{"Idempotency-Key": "deploy-7"}), raw_attest(tenant, arguments)):
        assert (raw.status_code, raw["X-AEGIS-Idempotent-Replayed"]) == (200, "true")  # the second without a key
        assert raw.json()["envelope"] == first.envelope.to_dict()


@pytest.mark.django_db
def test_the_same_contents_written_differently_are_the_same_attestation(signing_pair, tenant):
    arguments = attest_arguments(external_parameters={}, workflow_ref="deploy-caf\u00e9.yml@refs/heads/main")
    first = raw_attest(tenant, arguments)
    written_differently = {name: value for name, value in arguments.items() if name != "external_parameters"}
    written_differently.update(decision_id=arguments["decision_id"].upper(),
                               workflow_ref="deploy-cafe\u0301.yml@refs/heads/main")  # NFD

    again = raw_attest(tenant, written_differently)

    assert first.status_code == 201, first.content
    assert (again.status_code, again["X-AEGIS-Idempotent-Replayed"]) == (200, "true"), again.content
    assert again.json() == first.json()
    assert Attestation.objects.count() == 1


@live
@FLAVOURS
def test_a_decision_id_used_before_with_other_contents_or_by_another_tenant_is_409(
        flavour, signing_pair, tenant, other_tenant, connect):
    arguments = attest_arguments()
    connect(tenant, flavour).attestations.attest(**arguments)

    with pytest.raises(AttestationCollisionError) as other_contents:
        connect(tenant, flavour).attestations.attest(**{**arguments, "subject_digest_sha256": "b" * 64})
    with pytest.raises(AttestationCollisionError) as other_tenants:
        connect(other_tenant, flavour).attestations.attest(**arguments)

    assert other_contents.value.status_code == other_tenants.value.status_code == 409
    assert "already attested with different contents" in other_contents.value.message
    assert "another tenant" in other_tenants.value.message
    assert [a.customer for a in Attestation.objects.all()] == [tenant.customer]
    assert Attestation.objects.get().artifact_digest == DIGEST


@live
@FLAVOURS
def test_an_idempotency_key_reused_with_another_body_is_422(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    client.attestations.attest(**attest_arguments(), idempotency_key="deploy-8")

    with pytest.raises(ValidationError) as reused:
        client.attestations.attest(**attest_arguments(), idempotency_key="deploy-8")

    assert reused.value.status_code == 422
    assert "Idempotency-Key reused with a different request body" in reused.value.message
    assert Attestation.objects.count() == 1


@live
@FLAVOURS
def test_without_a_signing_pair_attest_and_verify_are_503(flavour, tenant, connect):
    client = connect(tenant, flavour)
    arguments = attest_arguments()
    envelope = DSSEEnvelope.from_response({"payload": "e30=", "signatures": []})

    with pytest.raises(AttestationProviderUnavailableError) as on_attest:
        client.attestations.attest(**arguments, idempotency_key="deploy-9")
    with pytest.raises(AttestationProviderUnavailableError) as on_verify:
        client.attestations.verify(envelope=envelope, expected_digest=DIGEST, expected_environment="production")

    for error in (on_attest.value, on_verify.value):
        assert error.status_code == 503
        assert "aegis_attestation_keys generate" in error.message
    assert Attestation.objects.count() == 0
    keys.generate_pair()  # the refusal kept neither the decision_id nor the Idempotency-Key
    assert client.attestations.attest(**arguments, idempotency_key="deploy-9").idempotent_replayed is False
    assert Attestation.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("who, status", [("anonymous", 401), ("revoked key", 401), ("tenant's key", 201)])
def test_attest_needs_a_valid_api_key(signing_pair, tenant, who, status):
    if who == "revoked key":
        services.revoke_api_key(tenant.customer, tenant.key.key_id)
    client = ApiClient() if who == "anonymous" else ApiClient(tenant.plaintext)

    response = client.post("/attest", attest_arguments())

    assert response.status_code == status, response.content
    assert Attestation.objects.count() == (1 if status == 201 else 0)


@pytest.mark.django_db
@pytest.mark.parametrize("method, path", [("POST", "/attestations/verify"),
                                          ("GET", "/attestations/0f8e7d6c-5b4a-4392-8100-aabbccddeeff")])
@pytest.mark.parametrize("key", [None, "aegis_thisKeyWasNeverIssued"], ids=["anonymous", "unknown key"])
def test_verify_and_get_need_a_valid_api_key(signing_pair, method, path, key):
    body = {"envelope": {}, "expected_digest": DIGEST, "expected_environment": "production"}

    response = ApiClient(key).request(method, path, body if method == "POST" else None)

    assert_json_error(response, 401)


@pytest.mark.django_db
def test_the_answers_carry_exactly_the_documented_fields(signing_pair, tenant):
    api = ApiClient(tenant.plaintext)
    created = raw_attest(tenant, attest_arguments())
    decision_id = created.json()["decision_id"]

    verified = api.post("/attestations/verify", {"envelope": created.json()["envelope"], "expected_digest": DIGEST,
                                                 "expected_environment": "production"})
    got = api.get(f"/attestations/{decision_id}")

    assert created.status_code == 201 and not created.has_header("X-AEGIS-Idempotent-Replayed")
    assert set(created.json()) == {"decision_id", "envelope", "statement_canonical_sha256", "issued_at", "expires_at"}
    assert set(created.json()["envelope"]) == {"payloadType", "payload", "signatures"}
    assert all(set(signature) == {"keyid", "sig"} for signature in created.json()["envelope"]["signatures"])
    assert verified.status_code == 200 and set(verified.json()) == {"valid", "verified_at", "error_class"}
    assert got.status_code == 200 and set(got.json()) == {
        "decision_id", "envelope", "predicate", "artifact_digest", "environment", "risk_class", "policy_version",
        "repository", "workflow_ref", "run_id", "run_attempt", "expires_at", "created_at", "customer_id",
        "aegis_evaluate_decision_id"}


# --- POST /attest: bad input -----------------------------------------------------------------

MISSING = object()  # a field left out of the body
RUN_ATTEMPT_RANGE = "run_attempt must be an integer from 1 to 2147483647"


@pytest.mark.django_db
@pytest.mark.parametrize("changes, status, named", [
    pytest.param({"run_attempt": 0}, 400, RUN_ATTEMPT_RANGE, id="run_attempt 0"),
    pytest.param({"run_attempt": "1"}, 400, RUN_ATTEMPT_RANGE, id="run_attempt a string"),
    pytest.param({"run_attempt": True}, 400, RUN_ATTEMPT_RANGE, id="run_attempt a bool"),
    pytest.param({"run_attempt": 1.5}, 400, RUN_ATTEMPT_RANGE, id="run_attempt a float"),
    pytest.param({"run_attempt": 2 ** 31}, 400, RUN_ATTEMPT_RANGE, id="run_attempt 2**31"),
    pytest.param({"run_attempt": 2 ** 60}, 400, RUN_ATTEMPT_RANGE, id="run_attempt 2**60"),
    pytest.param({"gate_pass_states": {**PROCEED_GATES, "risk": "passed"}}, 400,
                 "gate_pass_states.risk must be one of pass, fail, skipped", id="gate state unknown"),
    pytest.param({"gate_pass_states": {}}, 400, "gate_pass_states must be", id="gate states empty"),
    pytest.param({"gate_pass_states": ["risk"]}, 400, "gate_pass_states must be", id="gate states a list"),
    pytest.param({"gate_pass_states": MISSING}, 400, "Missing required field(s): gate_pass_states",
                 id="gate states missing"),
    pytest.param({"requested_by": "ci"}, 422, "Unknown field(s): requested_by", id="unknown field"),
    pytest.param({"expires_at": "2026-12-03T18:00:00"}, 400, "expires_at must be an ISO-8601 time with its UTC offset",
                 id="expires_at without offset"),
    pytest.param({"expires_at": "tomorrow"}, 400, "expires_at must be an ISO-8601 time", id="expires_at not a time"),
    pytest.param({"expires_at": moment(minutes=-1)}, 400, "expires_at must be after the time of issue",
                 id="expires_at in the past"),
    pytest.param({"expires_at": moment(hours=24, minutes=5)}, 400, "expires_at must be at most 24 hours after",
                 id="medium beyond 24 h"),
    pytest.param({"risk_class": "high", "expires_at": moment(hours=4, minutes=5)}, 400,
                 "expires_at must be at most 4 hours after", id="high beyond 4 h"),
    pytest.param({"external_parameters": ["ref"]}, 400, "external_parameters must be a JSON object",
                 id="external_parameters a list"),
    pytest.param({"external_parameters": "ref=main"}, 400, "external_parameters must be a JSON object",
                 id="external_parameters a string"),
    pytest.param({"external_parameters": {"build": 2 ** 60}}, 400, "external_parameters must be JSON that has a "
                 "canonical form", id="external_parameters 2**60"),
    pytest.param({"decision_id": "deploy-42"}, 400, "decision_id must be a 36-character UUID", id="decision_id"),
    pytest.param({"aegis_evaluate_decision_id": "no"}, 400, "aegis_evaluate_decision_id must be a 36-character UUID",
                 id="aegis_evaluate_decision_id"),
    pytest.param({"subject_digest_sha256": "A3F1" * 16}, 400, "subject_digest_sha256 must be 64 lower-case hex",
                 id="digest in upper case"),
    pytest.param({"environment": "prod"}, 400, "environment must be one of production, staging, preview",
                 id="environment"),
    pytest.param({"risk_class": "severe"}, 400, "risk_class must be one of low, medium, high, critical",
                 id="risk_class"),
    pytest.param({"repository": " "}, 400, "repository must be a non-empty string", id="repository blank"),
    pytest.param({"policy_version": "1." * 101}, 400,
                 "policy_version must be a non-empty string of at most 200 characters, got '202 characters'",
                 id="policy_version too long"),
    pytest.param({"run_id": 4242}, 400, "run_id must be a non-empty string", id="run_id a number"),
    pytest.param({"builder_id": MISSING}, 400, "Missing required field(s): builder_id", id="builder_id missing"),
])
def test_bad_input_sent_raw_is_refused_naming_the_field(signing_pair, tenant, changes, status, named):
    body = {name: value for name, value in attest_arguments(**changes).items() if value is not MISSING}

    error = assert_json_error(raw_attest(tenant, body), status)["error"]

    assert error.startswith(named), error
    assert Attestation.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ['["decision_id"]', '{"decision_id": ', ""])
def test_a_body_that_is_not_a_json_object_is_400(signing_pair, tenant, raw):
    assert_json_error(ApiClient(tenant.plaintext).post("/attest", raw=raw), 400)
    assert Attestation.objects.count() == 0


@live
@FLAVOURS
def test_the_client_raises_validation_error_for_what_only_the_server_checks(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    cases = [({"run_attempt": 0}, "run_attempt"), ({"run_attempt": True}, "run_attempt"),
             ({"gate_pass_states": {**PROCEED_GATES, "utility": "n/a"}}, "gate_pass_states.utility"),
             ({"expires_at": "2026-12-03T18:00:00"}, "expires_at"), ({"expires_at": moment(hours=-2)}, "expires_at"),
             ({"expires_at": moment(hours=30)}, "expires_at"), ({"external_parameters": {"n": 2 ** 60}},
                                                                "external_parameters")]

    for changes, named in cases:
        with pytest.raises(ValidationError) as refused:
            client.attestations.attest(**attest_arguments(**changes))
        assert refused.value.status_code == 400, changes
        assert named in refused.value.message, (changes, refused.value.message)
    assert Attestation.objects.count() == 0


# --- the predicate's nonce and the time to live ----------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("risk_class, has_nonce", [("low", False), ("medium", False), ("high", True),
                                                   ("critical", True)])
def test_high_and_critical_attestations_carry_a_256_bit_nonce(signing_pair, tenant, risk_class, has_nonce):
    nonces = []
    for _ in range(2):
        response = raw_attest(tenant, attest_arguments(risk_class=risk_class, expires_at=moment(hours=3)))
        assert response.status_code == 201, response.content
        nonces.append(statement_of(response.json()["envelope"])["predicate"]["governance"].get("nonce"))

    if has_nonce:
        assert all(HEX64.fullmatch(nonce) for nonce in nonces)
        assert nonces[0] != nonces[1]
    else:
        assert nonces == [None, None]


@pytest.mark.django_db
def test_the_time_to_live_of_each_risk_class_comes_from_the_settings(signing_pair, tenant, settings):
    settings.AEGIS_ATTESTATION_TTL_HOURS = {"low": 2, "medium": 24, "high": 6, "critical": 1}

    low_too_long = raw_attest(tenant, attest_arguments(risk_class="low", expires_at=moment(hours=2, minutes=5)))
    low = raw_attest(tenant, attest_arguments(risk_class="low", expires_at=moment(hours=1, minutes=55)))
    high = raw_attest(tenant, attest_arguments(risk_class="high", expires_at=moment(hours=5, minutes=55)))
    critical_too_long = raw_attest(tenant, attest_arguments(risk_class="critical", expires_at=moment(minutes=65)))

    for refused, hours, risk_class in ((low_too_long, 2, "low"), (critical_too_long, 1, "critical")):
        error = assert_json_error(refused, 400)["error"]
        assert f"expires_at must be at most {hours} hours after the time of issue" in error
        assert f"AEGIS_ATTESTATION_TTL_HOURS_{risk_class.upper()}" in error
    assert low.status_code == high.status_code == 201
    assert Attestation.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("suffix, offset", [("Z", timedelta(0)), ("+02:00", timedelta(hours=2)),
                                            ("-05:30", -timedelta(hours=5, minutes=30))])
def test_expires_at_in_any_offset_is_signed_as_written(signing_pair, tenant, suffix, offset):
    local = (datetime.now(timezone.utc) + timedelta(hours=3)).astimezone(timezone(offset))
    written = local.replace(microsecond=0, tzinfo=None).isoformat() + suffix

    response = raw_attest(tenant, attest_arguments(expires_at=written))

    assert response.status_code == 201, response.content
    assert response.json()["expires_at"] == written
    assert statement_of(response.json()["envelope"])["predicate"]["governance"]["expires_at"] == written
    verified = ApiClient(tenant.plaintext).post("/attestations/verify", {
        "envelope": response.json()["envelope"], "expected_digest": DIGEST, "expected_environment": "production"})
    assert verified.json()["valid"] is True, verified.json()


# --- the governance decision an attestation names ---------------------------------------------

@live
@FLAVOURS
def test_an_attestation_naming_a_proceed_decision_is_stored_with_the_link(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    decision = client.evaluate(proposal_summary="Cache the rate table")
    assert decision.status == "proceed" and decision.gates.utility is None  # skipped

    result = client.attestations.attest(**attest_arguments(aegis_evaluate_decision_id=decision.decision_id.upper()))
    record = client.attestations.get(result.decision_id)

    assert record.aegis_evaluate_decision_id == decision.decision_id
    stored = Attestation.objects.get(decision_id=result.decision_id)
    assert str(stored.aegis_evaluate_decision_id) == decision.decision_id
    # The link lives beside the predicate, not in it: the signed statement is the same either way.
    assert "aegis_evaluate_decision_id" not in statement_of(result.envelope.to_dict())["predicate"]["governance"]


@live
def test_gate_states_that_differ_from_the_decision_are_422_naming_the_gate(signing_pair, tenant, connect):
    client = connect(tenant)
    decision_id = client.evaluate(proposal_summary="Cache the rate table").decision_id
    cases = [({**PROCEED_GATES, "novelty": "fail"}, "gate_pass_states.novelty is 'fail'", "recorded 'pass'"),
             ({**PROCEED_GATES, "utility": "pass"}, "gate_pass_states.utility is 'pass'", "recorded 'skipped'"),
             ({name: state for name, state in PROCEED_GATES.items() if name != "quality"},
              "gate_pass_states.quality is 'missing'", "recorded 'pass'"),
             ({**PROCEED_GATES, "drift": "pass"}, "gate_pass_states.drift is 'pass'", "recorded 'not evaluated'")]

    for gates, claimed, recorded in cases:
        with pytest.raises(ValidationError) as refused:
            client.attestations.attest(**attest_arguments(gate_pass_states=gates,
                                                          aegis_evaluate_decision_id=decision_id))
        assert refused.value.status_code == 422
        assert claimed in refused.value.message and recorded in refused.value.message, refused.value.message
    assert Attestation.objects.count() == 0


@pytest.mark.django_db
def test_another_tenants_decision_answers_like_a_missing_one(signing_pair, tenant, other_tenant):
    theirs = ApiClient(other_tenant.plaintext).post("/evaluate", {"proposal_summary": "x"}).json()["decision_id"]
    missing = str(uuid.uuid4())

    bodies = [assert_json_error(raw_attest(tenant, attest_arguments(aegis_evaluate_decision_id=wanted)), 422)
              for wanted in (theirs, missing)]

    assert [body["code"] for body in bodies] == ["decision_not_found"] * 2
    assert bodies[0]["error"].replace(theirs, "ID") == bodies[1]["error"].replace(missing, "ID")
    assert bodies[0]["error"] == f"aegis_evaluate_decision_id: this tenant has no decision {theirs}"
    assert Attestation.objects.count() == 0


@live
@FLAVOURS
def test_a_decision_that_did_not_proceed_is_422_until_a_risk_lead_approves_it(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    paused = client.evaluate(proposal_summary="Bigger change", estimated_impact="high")
    halted = client.evaluate(proposal_summary="Novel payments router", novelty_score=0.9)
    escalated = client.evaluate(proposal_summary="Novel and big", novelty_score=0.9, estimated_impact="high")
    novelty_failed = {**PROCEED_GATES, "novelty": "fail"}
    assert (paused.status, halted.status, escalated.status) == ("pause", "halt", "escalate")

    refusals = {}
    for decision, gates in ((paused, PROCEED_GATES), (halted, novelty_failed), (escalated, novelty_failed)):
        with pytest.raises(ValidationError) as refused:
            client.attestations.attest(**attest_arguments(gate_pass_states=gates,
                                                          aegis_evaluate_decision_id=decision.decision_id))
        assert refused.value.status_code == 422
        refusals[decision.status] = refused.value.message
    decisions.act(paused.decision_id, "approve", actor=person("rita", Role.RISK_LEAD), comment="Reviewed the plan")
    approved = client.attestations.attest(**attest_arguments(aegis_evaluate_decision_id=paused.decision_id))

    assert refusals["pause"] == (f"Decision {paused.decision_id} is pause (its review is in_review): only a decision "
                                 f"whose effective status is proceed can be attested")
    assert refusals["halt"].startswith(f"Decision {halted.decision_id} is halt")
    assert refusals["escalate"].startswith(f"Decision {escalated.decision_id} is escalate")
    assert approved.idempotent_replayed is False
    assert [str(a.aegis_evaluate_decision_id) for a in Attestation.objects.all()] == [paused.decision_id]


@pytest.mark.django_db
def test_a_halt_whose_two_key_override_was_approved_can_be_attested(signing_pair, tenant):
    api = ApiClient(tenant.plaintext)
    halted = api.post("/evaluate", {"proposal_summary": "Novel payments router", "novelty_score": 0.9}).json()
    arguments = attest_arguments(gate_pass_states={**PROCEED_GATES, "novelty": "fail"},
                                 aegis_evaluate_decision_id=halted["decision_id"])
    before = raw_attest(tenant, arguments)
    override = api.post(f"/api/decisions/{halted['decision_id']}/override", {"justification": "Launch needs it"})
    assert override.status_code in (200, 201), override.content

    for custodian in (person("rita", Role.RISK_LEAD), person("sam", Role.SECURITY_LEAD)):
        fire_event(override.json()["workflow_id"], "approve", actor=custodian, comment="Reviewed")
    after = raw_attest(tenant, arguments)

    assert halted["status"] == "halt"
    assert assert_json_error(before, 422)["code"] == "decision_not_proceed"
    assert after.status_code == 201, after.content


@pytest.mark.django_db
def test_a_server_that_requires_the_decision_refuses_an_attestation_without_it(signing_pair, tenant, settings):
    settings.AEGIS_ATTEST_REQUIRE_DECISION = True
    decision_id = ApiClient(tenant.plaintext).post("/evaluate", {"proposal_summary": "x"}).json()["decision_id"]

    refused = raw_attest(tenant, attest_arguments())
    accepted = raw_attest(tenant, attest_arguments(aegis_evaluate_decision_id=decision_id))

    error = assert_json_error(refused, 400)["error"]
    assert "aegis_evaluate_decision_id" in error and "AEGIS_ATTEST_REQUIRE_DECISION" in error
    assert accepted.status_code == 201, accepted.content


# --- POST /attestations/verify ---------------------------------------------------------------

@live
@FLAVOURS
def test_verify_answers_valid_or_the_error_class(flavour, signing_pair, tenant, connect):
    client = connect(tenant, flavour)
    envelope = client.attestations.attest(**attest_arguments()).envelope

    valid = client.attestations.verify(envelope=envelope, expected_digest=DIGEST, expected_environment="production")
    other_digest = client.attestations.verify(envelope=envelope, expected_digest="b" * 64,
                                              expected_environment="production")
    other_environment = client.attestations.verify(envelope=envelope, expected_digest=DIGEST,
                                                   expected_environment="staging")

    assert (valid.valid, valid.error_class) == (True, None)
    assert valid.verified_at.endswith("Z") and valid.request_id.startswith("req_")
    assert (other_digest.valid, other_digest.error_class) == (False, "AttestationDigestMismatch")
    assert (other_environment.valid, other_environment.error_class) == (False, "AttestationEnvironmentMismatch")


@pytest.mark.django_db
@pytest.mark.parametrize("change, named", [
    ({"envelope": ["payload"]}, "envelope"),
    ({"envelope": "eyJ9"}, "envelope"),
    ({"envelope": {"payload": 7, "signatures": []}}, "envelope.payload"),
    ({"envelope": {"payload": "e30=", "signatures": "none"}}, "envelope.signatures"),
    ({"expected_digest": "sha256:abc"}, "expected_digest"),
    ({"expected_environment": "prod"}, "expected_environment"),
])
def test_a_malformed_verify_request_is_400_naming_the_field(signing_pair, tenant, change, named):
    body = {"envelope": {"payloadType": PAYLOAD_TYPE, "payload": "e30=", "signatures": []},
            "expected_digest": DIGEST, "expected_environment": "production", **change}

    error = assert_json_error(ApiClient(tenant.plaintext).post("/attestations/verify", body), 400)["error"]

    assert error.startswith(f"{named} must be")
    assert not TelemetryEvent.objects.filter(name=Event.ATTESTATION_VERIFIED).exists()


# --- GET /attestations/{decision_id} and GET /attestations/keys ------------------------------

@live
@FLAVOURS
def test_get_returns_the_stored_record_to_its_tenant_only(flavour, signing_pair, tenant, other_tenant, connect):
    arguments = attest_arguments(risk_class="high", expires_at=moment(hours=3))
    result = connect(tenant, flavour).attestations.attest(**arguments)

    record = connect(tenant, flavour).attestations.get(arguments["decision_id"].upper())
    with pytest.raises(AttestationNotFoundError) as missing:
        connect(tenant, flavour).attestations.get(str(uuid.uuid4()))
    with pytest.raises(AttestationNotFoundError) as theirs:
        connect(other_tenant, flavour).attestations.get(arguments["decision_id"])

    assert record.envelope == result.envelope
    assert record.predicate.to_dict() == statement_of(result.envelope.to_dict())["predicate"]
    assert record.predicate.governance.nonce is not None
    assert (record.decision_id, record.artifact_digest, record.environment, record.risk_class, record.policy_version,
            record.repository, record.workflow_ref, record.run_id, record.run_attempt, record.expires_at) == (
        arguments["decision_id"], DIGEST, "production", "high", "1.2.0", "acme/payments", arguments["workflow_ref"],
        "4242", 1, arguments["expires_at"])
    assert record.customer_id == tenant.customer.customer_id
    assert record.created_at.endswith("Z") and record.aegis_evaluate_decision_id is None
    assert missing.value.status_code == theirs.value.status_code == 404


@pytest.mark.django_db
def test_a_missing_and_another_tenants_attestation_answer_the_same_404(signing_pair, tenant, other_tenant):
    mine = attest_arguments(decision_id="0f8e7d6c-5b4a-4392-8100-aabbccddeeff")
    assert raw_attest(tenant, mine).status_code == 201

    theirs = ApiClient(other_tenant.plaintext).get(f"/attestations/{mine['decision_id']}")
    missing = ApiClient(other_tenant.plaintext).get("/attestations/0f8e7d6c-5b4a-4392-8100-aabbccddeef0")

    bodies = [assert_json_error(response, 404) for response in (theirs, missing)]
    for body in bodies:
        del body["request_id"]
    assert bodies[0] == {**bodies[1], "error": bodies[1]["error"].replace("eef0", "eeff")}
    assert bodies[0]["error"] == f"No attestation {mine['decision_id']}"
    assert_json_error(ApiClient(other_tenant.plaintext).get("/attestations/not-a-uuid"), 400)


@live
def test_the_public_keys_are_listed_without_a_key_and_name_the_envelopes_keyids(signing_pair, tenant, connect):
    envelope = connect(tenant).attestations.attest(**attest_arguments()).envelope

    response = Client().get("/attestations/keys", secure=True)

    assert response.status_code == 200
    listed = response.json()["keys"]
    assert [entry["keyid"] for entry in listed] == [s.keyid for s in envelope.signatures]
    assert [entry["algorithm"] for entry in listed] == ["ed25519", "ml-dsa-65"]
    for entry in listed:
        raw = base64.b64decode(entry["public_key"])
        assert entry["fingerprint_sha256"] == hashlib.sha256(raw).hexdigest()
        assert entry["keyid"] == f"{entry['algorithm']}:{entry['fingerprint_sha256']}"
        assert entry["status"] == "active" and entry["created_at"].endswith("Z")


# --- telemetry and /metrics --------------------------------------------------------------

def attestation_counts() -> dict[str, float]:
    text = Client().get("/metrics", secure=True).content.decode()
    counts = {}
    for result in ("issued", "valid", "invalid"):
        line = f'aegis_attestations_total{{result="{result}"}}'
        counts[result] = sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))
    return counts


@live
def test_issuing_and_verifying_are_telemetry_events_and_metrics(signing_pair, tenant, connect):
    client = connect(tenant)
    before = attestation_counts()
    arguments = attest_arguments(aegis_evaluate_decision_id=client.evaluate(proposal_summary="x").decision_id)

    envelope = client.attestations.attest(**arguments).envelope
    client.attestations.attest(**arguments)  # a replay is not issued again
    client.attestations.verify(envelope=envelope, expected_digest=DIGEST, expected_environment="production")
    client.attestations.verify(envelope=envelope, expected_digest=DIGEST, expected_environment="preview")
    after = attestation_counts()

    assert {result: after[result] - before[result] for result in after} == {"issued": 1, "valid": 1, "invalid": 1}
    [issued] = TelemetryEvent.objects.filter(name=Event.ATTESTATION_ISSUED)
    assert issued.subject == arguments["decision_id"] and issued.actor == f"customer:{tenant.customer.customer_id}"
    assert issued.data["keyid"] == envelope.signatures[0].keyid
    assert issued.data["aegis_evaluate_decision_id"] == arguments["aegis_evaluate_decision_id"]
    assert issued.request_id.startswith("req_")
    verified = TelemetryEvent.objects.filter(name=Event.ATTESTATION_VERIFIED).order_by("id")
    assert [(e.data["valid"], e.data["error_class"]) for e in verified] == [
        (True, None), (False, "AttestationEnvironmentMismatch")]


# --- concurrency -------------------------------------------------------------------------

THREADS = 16


@live
@pytest.mark.parametrize("headers", [{"Idempotency-Key": api_race.KEY}, {}], ids=["one-key", "no-key"])
def test_concurrent_attests_of_one_decision_id_store_one_attestation(signing_pair, tenant, headers):
    body = attest_arguments()

    results = api_race.race(tenant.plaintext, THREADS, body, path="/attest", headers=headers)

    assert all(status in (200, 201) for status, *_ in results), results
    assert [status for status, *_ in results].count(201) == 1, results
    assert all(replayed == "true" for status, _, replayed in results if status == 200), results
    envelopes = [answer["envelope"] for _, answer, _ in results]
    assert all(envelope == envelopes[0] for envelope in envelopes)
    assert Attestation.objects.filter(decision_id=body["decision_id"]).count() == 1
    assert Attestation.objects.get().envelope == envelopes[0]
    assert TelemetryEvent.objects.filter(name=Event.ATTESTATION_ISSUED).count() == 1
