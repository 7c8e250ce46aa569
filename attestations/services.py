"""Attestation verbs: issue one (checking what it claims against the governance decision it
names), verify an envelope, and read a tenant's attestation back. The API and the pages
call these; nothing else writes an attestation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance import rows
from governance import decisions as decision_verbs
from governance.api.errors import ApiError
from governance.engine.gates import GATE_NAMES
from governance.idempotency import body_fingerprint
from governance.models import Customer
from governance.telemetry import Event, emit
from workflows.services import WorkflowError

from . import keys
from .envelope import PREDICATE_TYPE, STATEMENT_TYPE, ErrorClass, canonical_bytes, nfc, verify_envelope
from .models import Attestation

ENVIRONMENTS = ("production", "staging", "preview")
RISK_CLASSES = ("low", "medium", "high", "critical")
GATE_STATES = ("pass", "fail", "skipped")
DEFAULT_BUILD_TYPE = "https://slsa.dev/github-actions-workflow/v0.1"
UUID36 = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX64 = re.compile(r"[0-9a-f]{64}")
REQUIRED = ("decision_id", "subject_digest_sha256", "environment", "risk_class", "policy_version", "repository",
            "workflow_ref", "run_id", "run_attempt", "gate_pass_states", "builder_id", "expires_at")
OPTIONAL = ("external_parameters", "subject_name", "build_type", "aegis_evaluate_decision_id")
MAX_RUN_ATTEMPT = 2**31 - 1  # the column's range on every database, and well inside RFC 8785's integers
TEXT_LIMITS = {"policy_version": 200, "repository": 500, "workflow_ref": 1000, "run_id": 200, "builder_id": 1000,
               "subject_name": 1000, "build_type": 1000}


def invalid(field: str, expected: str, got: Any = None, *, show: bool = True) -> ApiError:
    detail = f", got {got!r}" if show else ""
    return ApiError(400, "invalid_request", f"{field} must be {expected}{detail}")


def checked_uuid(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or UUID36.fullmatch(value) is None:
        raise invalid(field, "a 36-character UUID (8-4-4-4-12 hex digits)", value)
    return value.lower()


def parse_moment(text: str) -> datetime | None:
    """An ISO-8601 time with its UTC offset, read exactly as the offline verifier reads it."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class AttestRequest:
    fields: dict[str, Any]
    expires: datetime


def parse_attest_request(data: dict[str, Any]) -> AttestRequest:
    """The request's fields, checked and normalised, or a 400/422 naming the field."""
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
    missing = [name for name in REQUIRED if name not in data]
    if settings.AEGIS_ATTEST_REQUIRE_DECISION and "aegis_evaluate_decision_id" not in data:
        missing.append("aegis_evaluate_decision_id")
    if missing:
        extra = (" (this server requires every attestation to name its governance decision: "
                 "AEGIS_ATTEST_REQUIRE_DECISION)" if "aegis_evaluate_decision_id" in missing else "")
        raise ApiError(400, "invalid_request", "Missing required field(s): " + ", ".join(missing) + extra)
    fields: dict[str, Any] = {"decision_id": checked_uuid(data, "decision_id")}
    digest = data["subject_digest_sha256"]
    if not isinstance(digest, str) or HEX64.fullmatch(digest) is None:
        raise invalid("subject_digest_sha256", "64 lower-case hex digits (a SHA-256)", digest)
    fields["subject_digest_sha256"] = digest
    for name, allowed in (("environment", ENVIRONMENTS), ("risk_class", RISK_CLASSES)):
        if data[name] not in allowed:
            raise invalid(name, "one of " + ", ".join(allowed), data[name])
        fields[name] = data[name]
    for name, limit in TEXT_LIMITS.items():
        if name not in data:
            continue
        value = data[name]
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            got = (value if len(value) <= 80 else f"{len(value)} characters") if isinstance(value, str) else (
                type(value).__name__)
            raise invalid(name, f"a non-empty string of at most {limit} characters", got)
        fields[name] = nfc(value)
    attempt = data["run_attempt"]
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= MAX_RUN_ATTEMPT:
        raise invalid("run_attempt", f"an integer from 1 to {MAX_RUN_ATTEMPT}", attempt)
    fields["run_attempt"] = attempt
    fields["gate_pass_states"] = _gate_states(data["gate_pass_states"])
    expires_at = data["expires_at"]
    expires = parse_moment(expires_at) if isinstance(expires_at, str) else None
    if expires is None:
        raise invalid("expires_at", "an ISO-8601 time with its UTC offset, e.g. 2026-12-03T18:00:00+00:00",
                      expires_at)
    fields["expires_at"] = expires_at
    parameters = data.get("external_parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise invalid("external_parameters", "a JSON object", type(parameters).__name__)
    try:
        canonical_bytes(parameters)
    except Exception:
        raise invalid("external_parameters", "JSON that has a canonical form (RFC 8785: integers within ±2**53, "
                      "no NaN or Infinity)", show=False) from None
    fields["external_parameters"] = nfc(parameters)
    if "aegis_evaluate_decision_id" in data:
        fields["aegis_evaluate_decision_id"] = checked_uuid(data, "aegis_evaluate_decision_id")
    return AttestRequest(fields, expires)


def _gate_states(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise invalid("gate_pass_states", "a non-empty object of gate name → pass, fail or skipped",
                      type(value).__name__)
    for gate, state in value.items():
        if not gate or len(gate) > 100:
            raise invalid("gate_pass_states", "keyed by gate names of 1 to 100 characters", gate)
        if state not in GATE_STATES:
            raise invalid(f"gate_pass_states.{gate}", "one of " + ", ".join(GATE_STATES), state)
    return {nfc(gate): state for gate, state in value.items()}


def decision_gate_states(decision) -> dict[str, str]:
    """The stored decision's gates as attestation gate states, in the engine's order."""
    gates = decision.response.get("gates", {})
    skipped = set(decision.response.get("gates_skipped", []))
    states = {}
    for name in GATE_NAMES:
        if name in gates:
            states[name] = "pass" if gates[name]["passed"] else "fail"
        elif name in skipped:
            states[name] = "skipped"
    return states


def check_against_decision(customer: Customer, fields: dict[str, Any]) -> None:
    """An attestation naming a governance decision must agree with it, and the decision must
    have let the change ship (effective status proceed); 422 saying what differs."""
    decision_id = fields.get("aegis_evaluate_decision_id")
    if decision_id is None:
        return
    try:
        decision = decision_verbs.find(decision_id, customer=customer)
    except WorkflowError:
        raise ApiError(422, "decision_not_found",
                       f"aegis_evaluate_decision_id: this tenant has no decision {decision_id}") from None
    stored = decision_gate_states(decision)
    claimed = fields["gate_pass_states"]
    for gate in list(stored) + [g for g in claimed if g not in stored]:
        if claimed.get(gate) != stored.get(gate):
            recorded = stored.get(gate, "not evaluated")
            raise ApiError(422, "gate_mismatch",
                           f"gate_pass_states.{gate} is {claimed.get(gate, 'missing')!r} but decision {decision_id} "
                           f"recorded {recorded!r} for it")
    status = decision_verbs.effective_status(decision)
    if status != "proceed":
        review = decision.workflow.current_state if decision.workflow is not None else None
        why = f" (its review is {review})" if review else ""
        raise ApiError(422, "decision_not_proceed",
                       f"Decision {decision_id} is {status}{why}: only a decision whose effective status is proceed "
                       f"can be attested")


def _moment_text(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="seconds")


def build_statement(fields: dict[str, Any], *, issued_at: str, nonce: str | None) -> dict[str, Any]:
    governance = {
        "decision_id": fields["decision_id"], "artifact_digest": fields["subject_digest_sha256"],
        "environment": fields["environment"], "risk_class": fields["risk_class"],
        "policy_version": fields["policy_version"], "issued_at": issued_at, "expires_at": fields["expires_at"],
        "gate_pass_states": fields["gate_pass_states"], "repository": fields["repository"],
        "workflow_ref": fields["workflow_ref"], "run_id": fields["run_id"], "run_attempt": fields["run_attempt"],
    }
    if nonce is not None:
        governance["nonce"] = nonce
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": fields.get("subject_name") or fields["repository"],
                     "digest": {"sha256": fields["subject_digest_sha256"]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {"buildType": fields.get("build_type") or DEFAULT_BUILD_TYPE,
                                "externalParameters": fields["external_parameters"]},
            "runDetails": {"builder": {"id": fields["builder_id"]}},
            "governance": governance,
        },
    }


def answer(attestation: Attestation) -> dict[str, Any]:
    """The body of POST /attest for a stored attestation."""
    return {"decision_id": str(attestation.decision_id), "envelope": attestation.envelope,
            "statement_canonical_sha256": attestation.statement_sha256, "issued_at": attestation.issued_at,
            "expires_at": attestation.expires_at}


def _existing(decision_id: str, customer: Customer, request_hash: str) -> tuple[int, dict[str, Any]] | None:
    """A replay of an attestation already stored under `decision_id`, or the refusal."""
    found = Attestation.objects.filter(decision_id=decision_id).first()
    if found is None:
        return None
    if found.customer_id != customer.pk:
        raise ApiError(409, "attestation_collision",
                       f"decision_id {decision_id} is already used by another tenant's attestation; choose a new one")
    if found.request_hash != request_hash:
        raise ApiError(409, "attestation_collision",
                       f"decision_id {decision_id} was already attested with different contents (subject sha256 "
                       f"{found.artifact_digest}); attest a new artifact or run under a new decision_id")
    return 200, answer(found)


def issue_attestation(customer: Customer, data: dict[str, Any], *, request_id: str = "",
                      now: datetime | None = None) -> tuple[int, dict[str, Any]]:
    """(201, body) for a new attestation, (200, body) for the same one again; the caller's
    transaction holds it (the Idempotency-Key record commits with it)."""
    request = parse_attest_request(data)
    fields = request.fields
    request_hash = body_fingerprint(fields)  # as read, so the same contents written differently replay
    replay = _existing(fields["decision_id"], customer, request_hash)
    if replay is not None:
        return replay
    now = now or timezone.now()
    if request.expires <= now:
        raise invalid("expires_at", f"after the time of issue ({_moment_text(now)})", fields["expires_at"])
    ttl_hours = settings.AEGIS_ATTESTATION_TTL_HOURS[fields["risk_class"]]
    if request.expires > now + timedelta(hours=ttl_hours):
        raise invalid("expires_at", f"at most {ttl_hours} hours after the time of issue ({_moment_text(now)}) for "
                      f"risk_class {fields['risk_class']} (AEGIS_ATTESTATION_TTL_HOURS_{fields['risk_class'].upper()})",
                      fields["expires_at"])
    check_against_decision(customer, fields)
    row, pair = keys.signer()
    issued_at = _moment_text(now)
    nonce = secrets.token_hex(32) if fields["risk_class"] in keys.NONCE_RISK_CLASSES else None
    statement = build_statement(fields, issued_at=issued_at, nonce=nonce)
    envelope, body = pair.sign(statement)
    attestation = Attestation(
        decision_id=uuid.UUID(fields["decision_id"]), customer=customer, envelope=envelope,
        statement_sha256=hashlib.sha256(body).hexdigest(), predicate=nfc(statement)["predicate"],
        artifact_digest=fields["subject_digest_sha256"], environment=fields["environment"],
        risk_class=fields["risk_class"], policy_version=fields["policy_version"], repository=fields["repository"],
        workflow_ref=fields["workflow_ref"], run_id=fields["run_id"], run_attempt=fields["run_attempt"],
        issued_at=issued_at, expires_at=fields["expires_at"], expires=request.expires, created_at=now,
        aegis_evaluate_decision_id=fields.get("aegis_evaluate_decision_id"), signing_pair=row,
        request_hash=request_hash)
    try:
        with transaction.atomic():
            rows.insert(attestation)
    except IntegrityError:  # a concurrent request stored this decision_id first
        replay = _existing(fields["decision_id"], customer, request_hash)
        if replay is None:
            raise
        return replay
    emit(Event.ATTESTATION_ISSUED, actor=f"customer:{customer.customer_id}", subject=fields["decision_id"],
         data={"environment": fields["environment"], "risk_class": fields["risk_class"],
               "artifact_digest": fields["subject_digest_sha256"], "keyid": row.public().ed25519_keyid,
               "aegis_evaluate_decision_id": fields.get("aegis_evaluate_decision_id")},
         request_id=request_id)
    return 201, answer(attestation)


# --- verifying -------------------------------------------------------------------------------

def parse_verify_request(data: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    unknown = sorted(set(data) - {"envelope", "expected_digest", "expected_environment"})
    if unknown:
        raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
    envelope = data.get("envelope")
    if not isinstance(envelope, dict):
        raise invalid("envelope", "a DSSE envelope object {payloadType, payload, signatures}",
                      type(envelope).__name__)
    for name in ("payloadType", "payload"):
        if not isinstance(envelope.get(name, ""), str):
            raise invalid(f"envelope.{name}", "a string", type(envelope[name]).__name__)
    signatures = envelope.get("signatures", [])
    if not isinstance(signatures, list) or not all(
            isinstance(s, dict) and isinstance(s.get("keyid", ""), str) and isinstance(s.get("sig", ""), str)
            for s in signatures):
        raise invalid("envelope.signatures", "a list of {keyid, sig} objects with string values", show=False)
    digest = data.get("expected_digest")
    if not isinstance(digest, str) or HEX64.fullmatch(digest.strip().lower()) is None:
        raise invalid("expected_digest", "64 hex digits (the artifact's SHA-256)", digest)
    environment = data.get("expected_environment")
    if environment not in ENVIRONMENTS:
        raise invalid("expected_environment", "one of " + ", ".join(ENVIRONMENTS), environment)
    return envelope, digest, environment


def verify(customer: Customer, data: dict[str, Any], *, request_id: str = "",
           now: datetime | None = None) -> dict[str, Any]:
    """`{valid, verified_at, error_class}` for an envelope (400 for a malformed request)."""
    envelope, digest, environment = parse_verify_request(data)
    ring = keys.keyring()
    now = now or timezone.now()
    error = verify_envelope(envelope, expected_digest=digest, expected_environment=environment, keys=ring, now=now)
    with transaction.atomic():
        emit(Event.ATTESTATION_VERIFIED, actor=f"customer:{customer.customer_id}",
             data={"valid": error is None, "error_class": error.value if error else None,
                   "expected_digest": digest.strip().lower(), "expected_environment": environment},
             request_id=request_id)
    return {"valid": error is None, "verified_at": now.isoformat().replace("+00:00", "Z"),
            "error_class": error.value if error else None}


# --- reading ---------------------------------------------------------------------------------

def find(decision_id: str, *, customer: Customer | None) -> Attestation:
    """A tenant's attestation (another tenant's answers like a missing one); every one for
    a signed-in person (customer None). Raises WorkflowError NOT_FOUND."""
    return decision_verbs.find_by_decision_id(Attestation.objects.select_related("customer", "signing_pair"),
                                              decision_id, customer=customer, what="attestation")


def record(attestation: Attestation) -> dict[str, Any]:
    """GET /attestations/{decision_id}: the stored record."""
    return {
        "decision_id": str(attestation.decision_id), "envelope": attestation.envelope,
        "predicate": attestation.predicate, "artifact_digest": attestation.artifact_digest,
        "environment": attestation.environment, "risk_class": attestation.risk_class,
        "policy_version": attestation.policy_version, "repository": attestation.repository,
        "workflow_ref": attestation.workflow_ref, "run_id": attestation.run_id,
        "run_attempt": attestation.run_attempt, "expires_at": attestation.expires_at,
        "created_at": attestation.created_at.isoformat().replace("+00:00", "Z"),
        "customer_id": attestation.customer.customer_id,
        "aegis_evaluate_decision_id": (str(attestation.aegis_evaluate_decision_id)
                                       if attestation.aegis_evaluate_decision_id else None),
    }


def attestations_of_decision(decision) -> list[Attestation]:
    """The attestations that name a governance decision (its page lists them)."""
    return list(Attestation.objects.filter(aegis_evaluate_decision_id=decision.decision_id))


def stored_error(attestation: Attestation, ring=None) -> ErrorClass | None:
    """Whether a stored envelope still verifies for what it records (the audit check);
    expiry is not a fault of the record, so it is checked at the moment of issue."""
    ring = ring or keys.keyring()
    issued = parse_moment(attestation.issued_at) or attestation.created_at
    return verify_envelope(attestation.envelope, expected_digest=attestation.artifact_digest,
                           expected_environment=attestation.environment, keys=ring, now=issued)
