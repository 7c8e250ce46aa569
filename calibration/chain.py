"""The hash chain of configuration versions (no Django: the data migration uses it too).

Each version's chain hash covers what it is (number, content hash, where it came from, when)
and the chain hash of the version stored before it, so an inserted, deleted or edited
version breaks the chain from there on."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from workflows.chain import canonical_json, sha256_hex
from workflows.serialization import utc_iso

GENESIS_CHAIN_HASH = "0" * 64  # the "previous chain hash" of version 1


def content_hash(parameters: dict[str, Any]) -> str:
    """SHA-256 of a version's parameters as canonical JSON."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_hash_of(*, version: int, content_hash: str, source: str, source_ref: str, parent_chain_hash: str,
                  created_at: datetime | str) -> str:
    return sha256_hex(canonical_json({
        "version": version, "content_hash": content_hash, "source": source, "source_ref": source_ref,
        "parent_chain_hash": parent_chain_hash, "created_at": _to_milliseconds(utc_iso(created_at))}))


def _to_milliseconds(iso: str) -> str:
    """Django's JSON serializer (dumpdata, serialized test databases) keeps milliseconds
    only: a version so copied must still verify."""
    return iso[:23] + "Z"
