"""The envelope engine without a database: a signed statement verifies, and on every row of
attestation_cases.CASES (tampered envelopes, validly signed odd statements) this server's
verifier and the official client's unmodified offline verifier give the same error class."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey
from attestation_cases import (CASES, DIGEST, ENVIRONMENT, NOW, Keys, offline, offline_for, signed, statement,
                              value)

from attestations.envelope import (CONTEXT, PAYLOAD_TYPE, ErrorClass, KeyRing, SigningPair, canonical_bytes,
                                   fingerprint, pae, verify_envelope)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(SigningPair.generate(), SigningPair.generate())


def test_a_signed_statement_verifies_with_the_pair_and_with_a_keyring(keys):
    envelope, body = keys.signer.sign(statement())
    public = keys.signer.public()

    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == body == rfc8785.dumps(statement())
    assert [s["keyid"] for s in envelope["signatures"]] == [f"ed25519:{fingerprint(public.ed25519)}",
                                                            f"ml-dsa-65:{fingerprint(public.mldsa65)}"]
    assert len(public.ed25519) == 32 and len(public.mldsa65) == 1952
    for ring in (public, KeyRing([keys.other.public(), public])):
        assert verify_envelope(envelope, expected_digest=DIGEST, expected_environment=ENVIRONMENT, keys=ring,
                               now=NOW) is None
    # Another server's keys do not verify it.
    assert verify_envelope(envelope, expected_digest=DIGEST, expected_environment=ENVIRONMENT,
                           keys=KeyRing([keys.other.public()]), now=NOW) is ErrorClass.ED25519_VERIFY_FAILED


def test_both_signatures_cover_the_hash_of_the_context_and_the_pae(keys):
    envelope, body = keys.signer.sign(statement())
    message = hashlib.sha256(CONTEXT + b"DSSEv1 28 application/vnd.in-toto+json %d " % len(body) + body).digest()
    assert pae(PAYLOAD_TYPE, body) == b"DSSEv1 28 application/vnd.in-toto+json %d " % len(body) + body
    ed, ml = (base64.b64decode(s["sig"]) for s in envelope["signatures"])
    Ed25519PublicKey.from_public_bytes(keys.signer.public().ed25519).verify(ed, message)
    MLDSA65PublicKey.from_public_bytes(keys.signer.public().mldsa65).verify(ml, message)


def test_the_payload_is_the_canonical_json_of_the_nfc_statement(keys):
    decomposed = statement({"repository": "acme/cafe\u0301"})
    envelope, body = keys.signer.sign(decomposed)
    assert json.loads(body)["predicate"]["governance"]["repository"] == "acme/caf\u00e9"
    assert body == canonical_bytes(decomposed)


def test_every_error_class_is_produced_by_a_row_of_the_table():
    assert {case.expected for case in CASES} - {None} == set(ErrorClass)
    assert len(ErrorClass) == 15
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_server_verifier_and_the_offline_verifier_agree(case, keys):
    envelope = case.make(keys)
    public = keys.signer.public()

    client = offline_for(case, envelope, keys)
    pinned = verify_envelope(envelope, expected_digest=case.digest, expected_environment=case.environment,
                             keys=public, now=case.now)
    ring = verify_envelope(envelope, expected_digest=case.digest, expected_environment=case.environment,
                           keys=KeyRing([keys.other.public(), public]), now=case.now)

    assert client == value(case.expected)
    assert value(pinned) == value(ring) == client


def test_the_error_classes_are_the_clients_in_its_order_with_the_kits_policy_names():
    """The order of the checks is the order of the enum (the client's _verify_local)."""
    assert [e.value for e in ErrorClass] == [
        "AttestationPayloadTypeMismatch", "AttestationSignatureSetIncomplete", "AttestationPayloadDecodeFailed",
        "AttestationPayloadJsonInvalid", "AttestationCanonicalBytesMismatch", "AttestationStatementShapeInvalid",
        "AttestationEd25519SigDecodeFailed", "AttestationEd25519VerifyFailed", "AttestationMLDSASigDecodeFailed",
        "AttestationMLDSAVerifyFailed", "AttestationSubjectMissing", "AttestationDigestMismatch",
        "AttestationEnvironmentMismatch", "AttestationExpiresAtMalformed", "AttestationExpired"]
    assert [e.policy_name for e in ErrorClass] == [
        "payload_type_mismatch", "signature_set_incomplete", "payload_decode_failed", "payload_json_invalid",
        "canonical_bytes_mismatch", "statement_shape_invalid", "ed25519_sig_decode_failed", "ed25519_verify_failed",
        "mldsa_sig_decode_failed", "mldsa_verify_failed", "subject_missing", "digest_mismatch",
        "environment_mismatch", "expires_at_malformed", "expired"]


@pytest.mark.parametrize("make, expected", [
    (lambda k: {**signed(k), "payload": base64.b64encode(b'{"a":NaN}').decode()}, ErrorClass.CANONICAL_BYTES_MISMATCH),
    (lambda k: {**signed(k), "payload": base64.b64encode(b'{"a":9007199254740993}').decode()},
     ErrorClass.CANONICAL_BYTES_MISMATCH),
    (lambda k: signed(k, statement(subject=[{"digest": {"sha256": 5}}])), ErrorClass.DIGEST_MISMATCH),
], ids=["NaN in the payload", "an integer past 2**53", "signed: a digest that is not a string"])
def test_where_the_offline_verifier_raises_the_server_still_fails_closed(make, expected, keys):
    """Envelopes on which the client's verifier raises instead of answering (rfc8785 refuses
    the payload; a digest without .lower()): the server answers an error class, never valid."""
    envelope = make(keys)
    assert verify_envelope(envelope, expected_digest=DIGEST, expected_environment=ENVIRONMENT,
                           keys=keys.signer.public(), now=NOW) is expected
    with pytest.raises((ValueError, AttributeError)):
        offline(envelope, keys)


ODD_VALUES = [None, 0, -1, 1.5, True, "", "x", "3", [], [1], {}, {"a": 1}, [["sha256", DIGEST]], "production",
              "2026-12-03T13:00:00+00:00"]


def field_paths(value, path=()):
    """The path of every value inside `value` (itself included)."""
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from field_paths(child, (*path, key))


def replaced(path, odd):
    if not path:
        return odd
    content = statement()
    parent = content
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = odd
    return content


def test_any_field_of_a_signed_statement_replaced_by_an_odd_value_gets_the_same_answer_from_both(keys):
    """Each value of the statement (every depth) replaced in turn by each of ODD_VALUES, then
    signed: both verifiers agree, except where the client's raises on a digest that is not
    a string (see the test above)."""
    disagreements, compared = [], 0
    for path in field_paths(statement()):
        for odd in ODD_VALUES:
            envelope = signed(keys, replaced(path, odd))
            ours = value(verify_envelope(envelope, expected_digest=DIGEST, expected_environment=ENVIRONMENT,
                                         keys=keys.signer.public(), now=NOW))
            if path == ("subject", 0, "digest", "sha256") and not isinstance(odd, str):
                assert ours == ErrorClass.DIGEST_MISMATCH.value
                continue
            compared += 1
            if ours != offline(envelope, keys):
                disagreements.append((path, odd, ours))
    assert compared > 400 and not disagreements
