"""Idempotency-Key handling (API.md): scope (tenant, method, path, key), kept 24 hours.

The work and its stored outcome commit together (one transaction per request), and the
unique constraint on the scope decides between concurrent twins, so a replay always
returns exactly what the first request answered. Only successful outcomes are kept: a
failed first attempt leaves the key free for a retry. (A record left unfinished answers
409 while it is fresh; one older than AEGIS_IDEMPOTENCY_STALE_SECONDS is cleared.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .api.errors import ApiError
from . import rows
from .models import Customer, IdempotencyRecord

RETENTION = timedelta(hours=24)
IN_FLIGHT_MESSAGE = "Concurrent request with the same Idempotency-Key is still in flight; retry later"
MISMATCH_MESSAGE = "Idempotency-Key reused with a different request body"
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def body_fingerprint(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "AEGIS_IDEMPOTENCY_STALE_SECONDS", 120))


def run_idempotent(customer: Customer, method: str, path: str, key: str | None, data: Any,
                   work: Callable[[], tuple[int, dict[str, Any]]],
                   last: Callable[[], None] | None = None) -> Outcome:
    """Run `work` once per key. The outcome is stored in the same transaction as the work,
    so there is one commit per request. A fresh key (the usual case) costs no lookup: the
    unique constraint finds an earlier request, whose work then rolls back, and the answer
    is the earlier outcome (also when the work itself refused, e.g. an exhausted quota).
    `last` runs after the key's record, as the transaction's last write."""
    if not key:
        with transaction.atomic():
            outcome = Outcome(*work())
            if last is not None:
                last()
            return outcome
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters")
    scope = {"customer": customer, "method": method, "path": path, "key": key}
    fingerprint = body_fingerprint(data)
    for attempt in (1, 2):  # twice only if the first found an expired record and cleared it
        try:
            with transaction.atomic():
                status, body = work()
                rows.insert(IdempotencyRecord(request_hash=fingerprint, created_at=timezone.now(), completed=True,
                                              response_status=status, response_body=body, **scope))
                if last is not None:
                    last()
            return Outcome(status, body)
        except (IntegrityError, ApiError) as error:
            replay = _earlier_outcome(scope, fingerprint)
            if replay is not None:
                return replay
            if isinstance(error, ApiError) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _earlier_outcome(scope: dict[str, Any], fingerprint: str) -> Outcome | None:
    """The stored outcome for this key (replayed), or an error; None when the key is free.
    Records older than 24 hours, and unfinished ones whose process died, are cleared."""
    existing = IdempotencyRecord.objects.filter(**scope).first()
    if existing is None:
        return None
    now = timezone.now()
    if existing.created_at < now - RETENTION:
        IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
        return None
    if existing.request_hash != fingerprint:
        raise ApiError(422, "idempotency_mismatch", MISMATCH_MESSAGE)
    if existing.completed:
        return Outcome(existing.response_status, existing.response_body, replayed=True)
    if existing.created_at < now - _stale_after():
        IdempotencyRecord.objects.filter(pk=existing.pk, completed=False).delete()
        return None
    raise ApiError(409, "idempotency_in_flight", IN_FLIGHT_MESSAGE)
