"""Idempotency-Key handling (API.md): scope (tenant, method, path, key), kept 24 hours.

A request first *claims* its key in a short transaction of its own (the unique
constraint makes concurrent claims race safely); the work and the stored outcome then
commit together, so a replay always returns exactly what the first request answered.
Only successful outcomes are kept: a failed first attempt frees the key for a retry.
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
                   work: Callable[[], tuple[int, dict[str, Any]]]) -> Outcome:
    """Run `work` once per key; `work` runs inside the transaction that stores its outcome."""
    if not key:
        with transaction.atomic():
            return Outcome(*work())
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters")
    fingerprint = body_fingerprint(data)
    record, replay = _claim(customer, method, path, key, fingerprint)
    if replay is not None:
        return replay
    try:
        with transaction.atomic():
            status, body = work()
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                completed=True, response_status=status, response_body=body)
        return Outcome(status, body)
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk, completed=False).delete()
        raise


def _claim(customer, method, path, key, fingerprint) -> tuple[IdempotencyRecord | None, Outcome | None]:
    scope = {"customer": customer, "method": method, "path": path, "key": key}
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(request_hash=fingerprint, created_at=now, **scope), None
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(**scope).first()
        if existing is None:
            continue  # freed meanwhile: claim again
        if existing.created_at < now - RETENTION:
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.request_hash != fingerprint:
            raise ApiError(422, "idempotency_mismatch", MISMATCH_MESSAGE)
        if existing.completed:
            return None, Outcome(existing.response_status, existing.response_body, replayed=True)
        if existing.created_at < now - _stale_after():
            # The first request's process died mid-way: take the key over, exactly once.
            taken = IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at,
                                                     completed=False).update(created_at=now)
            if taken:
                existing.created_at = now
                return existing, None
            continue
        raise ApiError(409, "idempotency_in_flight", IN_FLIGHT_MESSAGE)
    raise ApiError(409, "idempotency_in_flight", IN_FLIGHT_MESSAGE)
