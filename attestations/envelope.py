"""DSSE envelopes of in-toto statements, signed with Ed25519 and ML-DSA-65 (no Django here).

The wire format is the hosted service's, which the official client's offline verifier and
the public verifier kit check:

- the payload is the RFC 8785 canonical JSON of the statement, every string (keys included)
  NFC-normalised first, and the envelope carries it base64-encoded;
- both signatures cover the same 32 bytes, SHA-256(`aegis-attestation-v1` ‖ PAE), where PAE
  is DSSE's pre-authentication encoding `DSSEv1 <len type> <type> <len body> <body>`;
- `signatures` holds exactly two entries, keyids `ed25519:<id>` and `ml-dsa-65:<id>`; here
  `<id>` is the SHA-256 of the raw public key, the fingerprint the kit's policy pins.

`verify_envelope` runs the client's checks in the client's order and answers the same one
of its 15 error classes for the same envelope, so a pipeline's offline gate and
`POST /attestations/verify` never disagree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from functools import cached_property
from typing import Any, Iterable

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aegis.undercurrentholdings.com/attestation/v1"
CONTEXT = b"aegis-attestation-v1"
ED25519_PREFIX = "ed25519:"
MLDSA65_PREFIX = "ml-dsa-65:"
ED25519_PUBLIC_BYTES = 32
MLDSA65_PUBLIC_BYTES = 1952


class ErrorClass(StrEnum):
    """Why an envelope does not verify, in the order the checks run."""

    PAYLOAD_TYPE_MISMATCH = "AttestationPayloadTypeMismatch"
    SIGNATURE_SET_INCOMPLETE = "AttestationSignatureSetIncomplete"
    PAYLOAD_DECODE_FAILED = "AttestationPayloadDecodeFailed"
    PAYLOAD_JSON_INVALID = "AttestationPayloadJsonInvalid"
    CANONICAL_BYTES_MISMATCH = "AttestationCanonicalBytesMismatch"
    STATEMENT_SHAPE_INVALID = "AttestationStatementShapeInvalid"
    ED25519_SIG_DECODE_FAILED = "AttestationEd25519SigDecodeFailed"
    ED25519_VERIFY_FAILED = "AttestationEd25519VerifyFailed"
    MLDSA_SIG_DECODE_FAILED = "AttestationMLDSASigDecodeFailed"
    MLDSA_VERIFY_FAILED = "AttestationMLDSAVerifyFailed"
    SUBJECT_MISSING = "AttestationSubjectMissing"
    DIGEST_MISMATCH = "AttestationDigestMismatch"
    ENVIRONMENT_MISMATCH = "AttestationEnvironmentMismatch"
    EXPIRES_AT_MALFORMED = "AttestationExpiresAtMalformed"
    EXPIRED = "AttestationExpired"

    @property
    def policy_name(self) -> str:
        """The snake_case name the verifier kit's policy lists (`fail_closed_on`)."""
        return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", self.value.removeprefix("Attestation")).lower()


def fingerprint(raw_public_key: bytes) -> str:
    """Lower-hex SHA-256 of a raw public key: its keyid suffix and the kit's pinned value."""
    return hashlib.sha256(raw_public_key).hexdigest()


def nfc(value: Any) -> Any:
    """`value` with every string in it (object keys too) in Unicode normal form C."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(key): nfc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nfc(item) for item in value]
    return value


def canonical_bytes(statement: Any) -> bytes:
    """The payload bytes: RFC 8785 JSON of the NFC-normalised statement."""
    return rfc8785.dumps(nfc(statement))


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode("ascii")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def signed_message(payload_type: str, body: bytes) -> bytes:
    """The 32 bytes both algorithms sign: SHA-256 of the context string and the PAE."""
    return hashlib.sha256(CONTEXT + pae(payload_type, body)).digest()


@dataclass(frozen=True)
class PublicPair:
    """The two public keys (raw bytes) that verify one signing pair's envelopes."""

    ed25519: bytes
    mldsa65: bytes

    @property
    def ed25519_keyid(self) -> str:
        return ED25519_PREFIX + fingerprint(self.ed25519)

    @property
    def mldsa65_keyid(self) -> str:
        return MLDSA65_PREFIX + fingerprint(self.mldsa65)


@dataclass(frozen=True)
class SigningPair:
    """An Ed25519 and an ML-DSA-65 private key (each from its 32-byte seed) that sign together.
    The expanded keys are built once per pair (ML-DSA key expansion costs more than a signature)."""

    ed25519_seed: bytes
    mldsa65_seed: bytes

    @classmethod
    def generate(cls) -> "SigningPair":
        return cls(Ed25519PrivateKey.generate().private_bytes_raw(), MLDSA65PrivateKey.generate().private_bytes_raw())

    @cached_property
    def _ed25519(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.ed25519_seed)

    @cached_property
    def _mldsa65(self) -> MLDSA65PrivateKey:
        return MLDSA65PrivateKey.from_seed_bytes(self.mldsa65_seed)

    @cached_property
    def _public(self) -> PublicPair:
        return PublicPair(self._ed25519.public_key().public_bytes_raw(), self._mldsa65.public_key().public_bytes_raw())

    def public(self) -> PublicPair:
        return self._public

    def sign(self, statement: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The DSSE envelope of `statement`, and its canonical payload bytes."""
        body = canonical_bytes(statement)
        message = signed_message(PAYLOAD_TYPE, body)
        envelope = {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(body).decode("ascii"),
            "signatures": [
                {"keyid": self._public.ed25519_keyid,
                 "sig": base64.b64encode(self._ed25519.sign(message)).decode("ascii")},
                {"keyid": self._public.mldsa65_keyid,
                 "sig": base64.b64encode(self._mldsa65.sign(message)).decode("ascii")},
            ],
        }
        return envelope, body


# --- verification ---------------------------------------------------------------------------

class KeyRing:
    """Public keys by keyid (`ed25519:<fingerprint>`, `ml-dsa-65:<fingerprint>`): every
    pair this server signed with, retired ones included, so old envelopes keep verifying."""

    def __init__(self, pairs: Iterable[PublicPair]):
        self._keys: dict[str, bytes] = {}
        for pair in pairs:
            self._keys[pair.ed25519_keyid] = pair.ed25519
            self._keys[pair.mldsa65_keyid] = pair.mldsa65

    def get(self, keyid: str) -> bytes | None:
        return self._keys.get(keyid)


class _PinnedPair:
    """One pinned pair used whatever the keyids say, as an offline verifier does."""

    def __init__(self, pair: PublicPair):
        self.pair = pair

    def get(self, keyid: str) -> bytes | None:
        if keyid.startswith(ED25519_PREFIX):
            return self.pair.ed25519
        return self.pair.mldsa65


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _readable_statement(statement: Any) -> dict[str, Any] | None:
    """The fields the checks read, converted as the official client's statement types
    convert them; None where those types would fail (e.g. a list where an object goes, or
    a run_attempt that is not a number), which the client reports as a shape error."""
    try:
        subject = [dict(entry.get("digest") or {}) for entry in (statement.get("subject") or [])]
        predicate = statement.get("predicate", {})
        build = predicate.get("buildDefinition", {})
        str(build.get("buildType", ""))
        dict(build.get("externalParameters") or {})
        dict(predicate.get("runDetails", {}).get("builder") or {})
        governance = predicate.get("governance", {})
        dict(governance.get("gate_pass_states") or {})
        int(governance.get("run_attempt", 0))
        return {"subject_digests": subject, "environment": str(governance.get("environment", "")),
                "expires_at": str(governance.get("expires_at", ""))}
    except (AttributeError, TypeError, ValueError):
        return None


def _valid_signature(algorithm: str, public_key: bytes | None, signature: bytes, message: bytes) -> bool:
    if public_key is None:
        return False
    try:
        if algorithm == "ed25519":
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        else:
            MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_envelope(envelope: dict[str, Any], *, expected_digest: str, expected_environment: str,
                    keys: KeyRing | PublicPair, now: datetime | None = None) -> ErrorClass | None:
    """None when `envelope` verifies, else the first check it fails. `envelope` has string
    `payloadType` and `payload` and a list of `{keyid, sig}` strings (the API checks that).
    With a `PublicPair` the keyids are not looked up (the offline verifier's behaviour)."""
    ring = _PinnedPair(keys) if isinstance(keys, PublicPair) else keys
    if envelope.get("payloadType", PAYLOAD_TYPE) != PAYLOAD_TYPE:
        return ErrorClass.PAYLOAD_TYPE_MISMATCH
    signatures = envelope.get("signatures") or []
    if len(signatures) != 2:
        return ErrorClass.SIGNATURE_SET_INCOMPLETE
    ed_entry = next((s for s in signatures if s.get("keyid", "").startswith(ED25519_PREFIX)), None)
    ml_entry = next((s for s in signatures if s.get("keyid", "").startswith(MLDSA65_PREFIX)), None)
    if ed_entry is None or ml_entry is None:
        return ErrorClass.SIGNATURE_SET_INCOMPLETE
    try:
        body = _b64(envelope.get("payload", ""))
    except (binascii.Error, ValueError):
        return ErrorClass.PAYLOAD_DECODE_FAILED
    try:
        statement = json.loads(body)
    except (ValueError, RecursionError):
        return ErrorClass.PAYLOAD_JSON_INVALID
    try:
        canonical = canonical_bytes(statement)
    except Exception:  # NaN, integers past 2**53 …: nothing canonical, so nothing signed
        return ErrorClass.CANONICAL_BYTES_MISMATCH
    if canonical != body:
        return ErrorClass.CANONICAL_BYTES_MISMATCH
    fields = _readable_statement(statement)
    if fields is None:
        return ErrorClass.STATEMENT_SHAPE_INVALID
    message = signed_message(PAYLOAD_TYPE, canonical)
    for entry, algorithm, decode_failed, verify_failed in (
            (ed_entry, "ed25519", ErrorClass.ED25519_SIG_DECODE_FAILED, ErrorClass.ED25519_VERIFY_FAILED),
            (ml_entry, "mldsa65", ErrorClass.MLDSA_SIG_DECODE_FAILED, ErrorClass.MLDSA_VERIFY_FAILED)):
        try:
            signature = _b64(entry.get("sig", ""))
        except (binascii.Error, ValueError):
            return decode_failed
        if not _valid_signature(algorithm, ring.get(entry["keyid"]), signature, message):
            return verify_failed
    if not fields["subject_digests"]:
        return ErrorClass.SUBJECT_MISSING
    recorded = fields["subject_digests"][0].get("sha256", "")
    if not isinstance(recorded, str) or recorded.lower() != expected_digest.strip().lower():
        return ErrorClass.DIGEST_MISMATCH
    if fields["environment"] != expected_environment.strip():
        return ErrorClass.ENVIRONMENT_MISMATCH
    try:
        expires = datetime.fromisoformat(fields["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return ErrorClass.EXPIRES_AT_MALFORMED
    if expires.tzinfo is None:
        return ErrorClass.EXPIRES_AT_MALFORMED
    if expires <= (now or datetime.now(timezone.utc)):
        return ErrorClass.EXPIRED
    return None
