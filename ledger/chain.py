"""The ledger's hashing (no Django: the data migration uses it too).

An entry's hash covers its place (seq), what it records (kind, ref, digest) and the hash of
the entry before it; not the time it was written, so the entries a fresh server's data
migrations write (configuration version 1) are the same on every server and a backup's
ledger continues them."""

from __future__ import annotations

from typing import Any

from workflows.chain import canonical_json, sha256_hex
from workflows.serialization import utc_iso

GENESIS_HASH = "0" * 64

WORKFLOW, TRANSITION, CONFIGURATION_VERSION, DECISION_SEAL = (
    "workflow", "transition", "configuration_version", "decision_seal")
KINDS = (WORKFLOW, TRANSITION, CONFIGURATION_VERSION, DECISION_SEAL)


def entry_hash(*, seq: int, kind: str, ref: str, digest: str, prev_hash: str) -> str:
    return sha256_hex(canonical_json({"seq": seq, "kind": kind, "ref": ref, "digest": digest,
                                      "prev_hash": prev_hash}))


def workflow_ref(workflow_id: Any) -> str:
    """32 lowercase hex digits: how SQLite stores a UUID, and the order both databases sort
    workflow ids in."""
    return str(workflow_id).replace("-", "").lower()


def transition_ref(workflow_id: Any, seq: int) -> str:
    """Zero-padded, so the refs of a workflow's transitions sort in seq order."""
    return f"{workflow_ref(workflow_id)}:{seq:010d}"


def number_ref(number: int) -> str:
    """A configuration version's or seal block's number, zero-padded so refs sort as numbers."""
    return f"{number:010d}"


def workflow_digest(*, workflow_id: Any, workflow_type: str, created_at, customer_id: str | None) -> str:
    """What a workflow is from its creation on (its history has ledger entries of its own)."""
    return sha256_hex(canonical_json({"workflow_id": workflow_ref(workflow_id), "workflow_type": workflow_type,
                                      "created_at": utc_iso(created_at), "customer": customer_id}))


def configuration_digest(*, version: int, content_hash: str, source: str, source_ref: str) -> str:
    """A version's number, parameters (by their hash, recomputed by the verifier) and where
    it came from; not when it was stored (a fresh server's version 1 has its own time)."""
    return sha256_hex(canonical_json({"version": version, "content_hash": content_hash, "source": source,
                                      "source_ref": source_ref}))


def describe(kind: str, ref: str) -> str:
    """The object an entry is about, as people read it."""
    if kind == WORKFLOW:
        return f"workflow {_dashed(ref)}"
    if kind == TRANSITION:
        workflow, _, seq = ref.partition(":")
        return f"transition {int(seq)} of workflow {_dashed(workflow)}"
    if kind == CONFIGURATION_VERSION:
        return f"configuration version v{int(ref)}"
    if kind == DECISION_SEAL:
        return f"decision seal block {int(ref)}"
    return f"{kind} {ref}"


def _dashed(hex32: str) -> str:
    if len(hex32) != 32:
        return hex32
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"
