"""Helpers for the official client's attestation contract tests (imported as
`client_attest_support`; the module name is unique in the suite because tests/ has no
packages): a pipeline's attest request, tenants, the async client driven from sync code,
and the payload of an envelope. Its importer puts tests/api on the path first (api_support)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from api_support import Tenant, ensure_default_tiers

from governance import services
from governance.models import Tier

DIGEST = "a3f1" * 16
# What the engine records for a default proposal: five gates pass, utility is skipped.
PROCEED_GATES = {"risk": "pass", "profit": "pass", "novelty": "pass", "complexity": "pass", "quality": "pass",
                 "utility": "skipped"}


def moment(**delta: float) -> str:
    """Now + delta as ISO-8601 with its offset, as a pipeline writes expires_at."""
    return (datetime.now(timezone.utc) + timedelta(**delta)).isoformat(timespec="seconds")


def attest_arguments(**changes: Any) -> dict[str, Any]:
    """A CI pipeline's attest call (the client's keyword arguments, also the raw body):
    a fresh decision_id, production, medium risk, expiring in two hours."""
    arguments = {
        "decision_id": str(uuid.uuid4()),
        "subject_digest_sha256": DIGEST,
        "environment": "production",
        "risk_class": "medium",
        "policy_version": "1.2.0",
        "repository": "acme/payments",
        "workflow_ref": ".github/workflows/deploy.yml@refs/heads/main",
        "run_id": "4242",
        "run_attempt": 1,
        "gate_pass_states": dict(PROCEED_GATES),
        "builder_id": "https://github.com/acme/payments/actions",
        "expires_at": moment(hours=2),
        "external_parameters": {"ref": "refs/heads/main", "inputs": {"canary": True}},
    }
    arguments.update(changes)
    return arguments


def make_tenant(name: str) -> Tenant:
    """A tenant on the team tier (its per-minute limit leaves room for a race) with its first key."""
    ensure_default_tiers()
    customer, key, plaintext = services.create_customer(name, tier=Tier.objects.get(name="team"))
    return Tenant(customer, key, plaintext)


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement an envelope's payload carries."""
    return json.loads(base64.b64decode(envelope["payload"]))


class Blocking:
    """An object of the async client (AsyncAegis, its `attestations`) called from sync test
    code: each coroutine runs to completion on the one event loop its transport is bound to."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop):
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return Blocking(value, self._loop)

        def call(*args, **kwargs):
            return self._loop.run_until_complete(value(*args, **kwargs))
        return call
