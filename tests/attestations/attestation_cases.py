"""The envelopes on which this server's verifier (`attestations.envelope.verify_envelope`),
`POST /attestations/verify` and the official client's unmodified offline verifier must give
the same answer: a valid one, tampered copies of it, and statements with odd contents that
are validly signed (so the checks after the signatures are reached).

Imported as `attestation_cases` (tests/ has no packages) by test_envelope.py (no database)
and test_verify_parity.py (the server). No Django here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import rfc8785
from aegis import AttestationVerifyKey, verify_attestation_locally
from aegis.types import DSSEEnvelope

from attestations.envelope import PREDICATE_TYPE, STATEMENT_TYPE, ErrorClass, SigningPair

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
DIGEST = hashlib.sha256(b"the artifact").hexdigest()
OTHER_DIGEST = hashlib.sha256(b"another artifact").hexdigest()
ENVIRONMENT = "production"


@dataclass(frozen=True)
class Keys:
    """The pair that signs (the server's) and a stranger's pair."""

    signer: SigningPair
    other: SigningPair


def statement(governance: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A well-formed statement for DIGEST in ENVIRONMENT, valid at NOW for an hour;
    `governance` and `top` replace fields of the governance block / the statement."""
    base = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "acme/shop", "digest": {"sha256": DIGEST}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {"buildType": "https://slsa.dev/github-actions-workflow/v0.1",
                                "externalParameters": {"ref": "refs/heads/main"}},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
            "governance": {
                "decision_id": "6f1c1f2e-8d4b-4a57-9a53-2f7b8c0d1e21", "artifact_digest": DIGEST,
                "environment": ENVIRONMENT, "risk_class": "medium", "policy_version": "1.0.0",
                "issued_at": NOW.isoformat(), "expires_at": (NOW + timedelta(hours=1)).isoformat(),
                "gate_pass_states": {"risk": "pass", "utility": "skipped"}, "repository": "acme/shop",
                "workflow_ref": "acme/shop/.github/workflows/release.yml@refs/heads/main",
                "run_id": "9001", "run_attempt": 1,
            },
        },
    }
    base["predicate"]["governance"].update(governance or {})
    base.update(top)
    return base


# --- building tampered envelopes -------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signed(keys: Keys, content: Any = None) -> dict[str, Any]:
    """The signer's envelope of `content` (default: the well-formed statement)."""
    return keys.signer.sign(statement() if content is None else content)[0]


def payload_of(envelope: dict[str, Any]) -> bytes:
    return base64.b64decode(envelope["payload"])


def with_payload(keys: Keys, body: bytes) -> dict[str, Any]:
    """The valid envelope with its payload replaced (the signatures stay those of the original)."""
    return {**signed(keys), "payload": b64(body)}


def with_sig(envelope: dict[str, Any], index: int, sig: str) -> dict[str, Any]:
    changed = copy.deepcopy(envelope)
    changed["signatures"][index]["sig"] = sig
    return changed


def with_keyids(envelope: dict[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    changed = copy.deepcopy(envelope)
    for entry in changed["signatures"]:
        entry["keyid"] = rename(entry["keyid"])
    return changed


def one_byte_edited(keys: Keys) -> dict[str, Any]:
    """One hex digit of the signed digest changed in the payload bytes (still canonical JSON)."""
    body = bytearray(payload_of(signed(keys)))
    at = body.index(DIGEST.encode())
    body[at] = ord("0") if body[at] != ord("0") else ord("1")
    return with_payload(keys, bytes(body))


def field_changed(keys: Keys) -> dict[str, Any]:
    """The environment changed in the statement, re-encoded canonically."""
    content = json.loads(payload_of(signed(keys)))
    content["predicate"]["governance"]["environment"] = "staging"
    return with_payload(keys, rfc8785.dumps(content))


def swapped_sigs(keys: Keys) -> dict[str, Any]:
    envelope = signed(keys)
    ed, ml = (entry["sig"] for entry in envelope["signatures"])
    return with_sig(with_sig(envelope, 0, ml), 1, ed)


def sig_from(keys: Keys, index: int) -> dict[str, Any]:
    """The stranger's signature (over the same payload) under the signer's keyid."""
    return with_sig(signed(keys), index, keys.other.sign(statement())[0]["signatures"][index]["sig"])


def corrupted_mldsa(keys: Keys) -> dict[str, Any]:
    envelope = signed(keys)
    sig = bytearray(base64.b64decode(envelope["signatures"][1]["sig"]))
    sig[100] ^= 0x01
    return with_sig(envelope, 1, b64(bytes(sig)))


def truncated_mldsa(keys: Keys) -> dict[str, Any]:
    envelope = signed(keys)
    return with_sig(envelope, 1, b64(base64.b64decode(envelope["signatures"][1]["sig"])[:-1]))


def without(keys: Keys, index: int) -> dict[str, Any]:
    envelope = signed(keys)
    return {**envelope, "signatures": [s for i, s in enumerate(envelope["signatures"]) if i != index]}


def third_added(keys: Keys) -> dict[str, Any]:
    envelope = signed(keys)
    return {**envelope, "signatures": envelope["signatures"] + [keys.other.sign(statement())[0]["signatures"][0]]}


def two_ed25519(keys: Keys) -> dict[str, Any]:
    envelope = signed(keys)
    return {**envelope, "signatures": [envelope["signatures"][0], envelope["signatures"][0]]}


def nfd_string(keys: Keys) -> dict[str, Any]:
    """A payload whose repository is in Unicode form D: canonical JSON, but not of the NFC text."""
    decomposed = statement({"repository": "acme/cafe\u0301"})
    return with_payload(keys, rfc8785.dumps(decomposed))


# --- the table -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Keys], dict[str, Any]]
    expected: ErrorClass | None  # None: valid
    digest: str = DIGEST
    environment: str = ENVIRONMENT
    now: datetime = NOW


E = ErrorClass
EXPIRES = NOW + timedelta(hours=1)

CASES = [
    # Valid, including the variations both verifiers accept.
    Case("untouched", lambda k: signed(k), None),
    Case("signatures in reverse order", lambda k: {**signed(k), "signatures": signed(k)["signatures"][::-1]}, None),
    Case("payloadType absent (the default type)",
         lambda k: {key: value for key, value in signed(k).items() if key != "payloadType"}, None),
    Case("signed digest in upper case", lambda k: signed(k, statement(subject=[
        {"name": "acme/shop", "digest": {"sha256": DIGEST.upper()}}])), None),
    Case("expected digest in upper case with spaces", lambda k: signed(k), None, digest=f" {DIGEST.upper()} "),
    Case("expires_at with a Z", lambda k: signed(k, statement({"expires_at": "2026-12-03T13:00:00Z"})), None),
    Case("run_attempt as a numeric string", lambda k: signed(k, statement({"run_attempt": "3"})), None),
    Case("one second before expiry", lambda k: signed(k), None, now=EXPIRES - timedelta(seconds=1)),
    # The envelope.
    Case("payloadType changed", lambda k: {**signed(k), "payloadType": "application/json"}, E.PAYLOAD_TYPE_MISMATCH),
    Case("ML-DSA-65 signature dropped", lambda k: without(k, 1), E.SIGNATURE_SET_INCOMPLETE),
    Case("Ed25519 signature dropped", lambda k: without(k, 0), E.SIGNATURE_SET_INCOMPLETE),
    Case("no signatures", lambda k: {**signed(k), "signatures": []}, E.SIGNATURE_SET_INCOMPLETE),
    Case("a third signature added", third_added, E.SIGNATURE_SET_INCOMPLETE),
    Case("two Ed25519 entries", two_ed25519, E.SIGNATURE_SET_INCOMPLETE),
    Case("keyid prefixes missing", lambda k: with_keyids(signed(k), lambda keyid: keyid.split(":", 1)[1]),
         E.SIGNATURE_SET_INCOMPLETE),
    Case("keyid prefixes in upper case", lambda k: with_keyids(signed(k), str.upper), E.SIGNATURE_SET_INCOMPLETE),
    # The payload.
    Case("payload not base64", lambda k: {**signed(k), "payload": "not base64!"}, E.PAYLOAD_DECODE_FAILED),
    Case("payload base64 without its padding", lambda k: {**signed(k), "payload": b64(b'{"a":1}').rstrip("=")},
         E.PAYLOAD_DECODE_FAILED),
    Case("payload not JSON", lambda k: with_payload(k, b"not json"), E.PAYLOAD_JSON_INVALID),
    Case("payload not UTF-8", lambda k: with_payload(k, b'{"a":"\x80"}'), E.PAYLOAD_JSON_INVALID),
    Case("non-canonical: keys reordered",
         lambda k: with_payload(k, json.dumps(statement(), separators=(",", ":")).encode()),
         E.CANONICAL_BYTES_MISMATCH),
    Case("non-canonical: spaces",
         lambda k: with_payload(k, json.dumps(statement(), sort_keys=True).encode()), E.CANONICAL_BYTES_MISMATCH),
    Case("non-canonical: a string not in NFC", nfd_string, E.CANONICAL_BYTES_MISMATCH),
    # The signatures.
    Case("payload edited by one byte", one_byte_edited, E.ED25519_VERIFY_FAILED),
    Case("a field changed and re-encoded canonically", field_changed, E.ED25519_VERIFY_FAILED,
         environment="staging"),
    Case("signatures swapped between the entries", swapped_sigs, E.ED25519_VERIFY_FAILED),
    Case("Ed25519 signature from another key", lambda k: sig_from(k, 0), E.ED25519_VERIFY_FAILED),
    Case("Ed25519 signature empty", lambda k: with_sig(signed(k), 0, ""), E.ED25519_VERIFY_FAILED),
    Case("Ed25519 signature not base64", lambda k: with_sig(signed(k), 0, "*not base64*"),
         E.ED25519_SIG_DECODE_FAILED),
    Case("ML-DSA-65 signature not base64", lambda k: with_sig(signed(k), 1, "*not base64*"),
         E.MLDSA_SIG_DECODE_FAILED),
    Case("ML-DSA-65 signature corrupted", corrupted_mldsa, E.MLDSA_VERIFY_FAILED),
    Case("ML-DSA-65 signature truncated", truncated_mldsa, E.MLDSA_VERIFY_FAILED),
    Case("ML-DSA-65 signature from another key", lambda k: sig_from(k, 1), E.MLDSA_VERIFY_FAILED),
    # Validly signed statements of odd shape or contents.
    Case("signed: run_attempt 'x'", lambda k: signed(k, statement({"run_attempt": "x"})),
         E.STATEMENT_SHAPE_INVALID),
    Case("signed: predicate a list", lambda k: signed(k, statement(predicate=[])), E.STATEMENT_SHAPE_INVALID),
    Case("signed: the statement a list", lambda k: signed(k, [statement()]), E.STATEMENT_SHAPE_INVALID),
    Case("signed: subject a string", lambda k: signed(k, statement(subject="acme/shop")),
         E.STATEMENT_SHAPE_INVALID),
    Case("signed: governance null", lambda k: signed(k, statement(predicate={"governance": None})),
         E.STATEMENT_SHAPE_INVALID),
    Case("signed: empty subject", lambda k: signed(k, statement(subject=[])), E.SUBJECT_MISSING),
    Case("signed: no subject", lambda k: signed(k, {key: value for key, value in statement().items()
                                                    if key != "subject"}), E.SUBJECT_MISSING),
    Case("wrong digest", lambda k: signed(k), E.DIGEST_MISMATCH, digest=OTHER_DIGEST),
    Case("wrong environment", lambda k: signed(k), E.ENVIRONMENT_MISMATCH, environment="staging"),
    Case("signed: environment in another case", lambda k: signed(k, statement({"environment": "Production"})),
         E.ENVIRONMENT_MISMATCH),
    Case("signed: expires_at without an offset", lambda k: signed(k, statement({"expires_at": "2026-12-03T13:00:00"})),
         E.EXPIRES_AT_MALFORMED),
    Case("signed: expires_at garbage", lambda k: signed(k, statement({"expires_at": "next tuesday"})),
         E.EXPIRES_AT_MALFORMED),
    Case("signed: expires_at null", lambda k: signed(k, statement({"expires_at": None})), E.EXPIRES_AT_MALFORMED),
    Case("expired (one second after expiry)", lambda k: signed(k), E.EXPIRED, now=EXPIRES + timedelta(seconds=1)),
    Case("at the moment of expiry", lambda k: signed(k), E.EXPIRED, now=EXPIRES),
]


def offline(envelope: dict[str, Any], keys: Keys, *, digest: str = DIGEST, environment: str = ENVIRONMENT,
            now: datetime = NOW) -> str | None:
    """The official client's verdict (its error class, None when valid), pinned to the signer."""
    public = keys.signer.public()
    valid, error_class = verify_attestation_locally(
        envelope=DSSEEnvelope.from_response(envelope), expected_digest=digest, expected_environment=environment,
        keys=AttestationVerifyKey(public.ed25519, public.mldsa65), now=now)
    assert valid is (error_class is None)
    return error_class


def offline_for(case: Case, envelope: dict[str, Any], keys: Keys) -> str | None:
    """`offline` with the case's expected digest, environment and moment."""
    return offline(envelope, keys, digest=case.digest, environment=case.environment, now=case.now)


def value(error: ErrorClass | None) -> str | None:
    return error.value if error is not None else None

