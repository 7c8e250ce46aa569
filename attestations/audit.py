"""The audit verification of stored attestations (run by workflows.operations.verify_all_chains
and `manage.py aegis_verify_chain --all`).

The append-only triggers stop ordinary writes; this catches what someone with database
rights changed behind them. Each attestation must still verify with the server's keyring
for its recorded digest and environment at its issue time, its statement_sha256 must be the
SHA-256 of the signed payload, and every column that repeats the payload (the ones the
pages, the API's GET and the queries read) must say what the payload says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator

from . import keys
from .models import Attestation
from .services import parse_moment, stored_error

READ_BATCH = 500
# Stored columns that repeat a key of the signed predicate.governance, under the same name.
SIGNED_COLUMNS = ("decision_id", "artifact_digest", "environment", "risk_class", "policy_version", "repository",
                  "workflow_ref", "run_id", "run_attempt", "issued_at", "expires_at")


@dataclass(frozen=True)
class Finding:
    """One problem with one stored attestation, named by its decision_id."""

    decision_id: str
    reason: str

    @property
    def message(self) -> str:
        return f"attestation {self.decision_id}: {self.reason}"

    def as_failure(self) -> dict[str, Any]:
        """The entry of ChainVerificationRun.failures ("message" for the pages that show it)."""
        return {"attestation_id": self.decision_id, "reason": self.reason, "message": self.message}


@dataclass
class Tally:
    """What a verification covered (filled in while verify_attestations runs)."""

    checked: int = 0  # stored attestations read
    broken: int = 0  # of them, with at least one finding


def signed_statement(attestation: Attestation) -> tuple[bytes, dict[str, Any]] | None:
    """The envelope's payload bytes and the statement they decode to, or None when the
    stored envelope holds no readable statement."""
    envelope = attestation.envelope
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, str):
        return None
    try:
        body = base64.b64decode(payload, validate=True)
        statement = json.loads(body)
    except (binascii.Error, ValueError, RecursionError):
        return None
    return (body, statement) if isinstance(statement, dict) else None


def problems(attestation: Attestation, ring: Any) -> list[str]:
    """What is wrong with one stored attestation (empty when nothing is)."""
    found = []
    error = stored_error(attestation, ring)
    if error is not None:
        found.append(f"its envelope does not verify for its recorded digest and environment at its issue time "
                     f"({error.value})")
    signed = signed_statement(attestation)
    if signed is None:
        found.append("its envelope's payload is not a base64-encoded JSON statement")
        return found
    body, statement = signed
    if hashlib.sha256(body).hexdigest() != attestation.statement_sha256:
        found.append("statement_sha256 is not the SHA-256 of the signed payload")
    predicate = statement.get("predicate")
    governance = predicate.get("governance") if isinstance(predicate, dict) else None
    if not isinstance(governance, dict):
        found.append("the signed statement has no predicate.governance")
        return found
    for column in SIGNED_COLUMNS:
        stored = getattr(attestation, column)
        if str(stored) != str(governance.get(column)):
            found.append(f"{column} is {str(stored)!r} but the signed payload says {governance.get(column)!r}")
    signed_expiry = parse_moment(str(governance.get("expires_at", "")))
    if signed_expiry != attestation.expires:
        found.append(f"expires is {attestation.expires.isoformat()} but the signed expires_at is "
                     f"{governance.get('expires_at')!r}")
    if attestation.predicate != predicate:
        found.append("the stored predicate differs from the signed one")
    return found


def verify_attestations(tally: Tally | None = None) -> Iterator[Finding]:
    """Every finding about stored attestations, streaming READ_BATCH rows at a time (memory
    stays flat however many there are); `tally` counts what was read and what is broken."""
    tally = tally if tally is not None else Tally()
    ring = None
    for attestation in Attestation.objects.order_by("pk").iterator(chunk_size=READ_BATCH):
        ring = ring or keys.keyring()  # only once there is something to check: no keys, no attestations
        tally.checked += 1
        found = problems(attestation, ring)
        if found:
            tally.broken += 1
        for reason in found:
            yield Finding(str(attestation.decision_id), reason)
