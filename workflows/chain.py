"""The audit chain's hashing (PLATFORM.md §4): SHA-256 over canonical JSON — sorted
keys, UTF-8, no whitespace, UTC timestamps — of exactly the covered fields."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from .serialization import utc_iso

TRANSITION_FIELDS = ("workflow_id", "seq", "from_state", "to_state", "triggered_by", "reason",
                     "payload", "created_at", "prev_hash")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def transition_hash(*, workflow_id: Any, seq: int, from_state: str, to_state: str, triggered_by: str,
                    reason: str, payload: Any, created_at: datetime | str, prev_hash: str) -> str:
    return sha256_hex(canonical_json({
        "workflow_id": str(workflow_id), "seq": seq, "from_state": from_state, "to_state": to_state,
        "triggered_by": triggered_by, "reason": reason, "payload": payload,
        "created_at": utc_iso(created_at), "prev_hash": prev_hash,
    }))


def checkpoint_hash(checkpoint_data: Any) -> str:
    return sha256_hex(canonical_json(checkpoint_data))
