"""Tamper evidence for decisions: each stored decision's digest, sealed into hash-chained
blocks (see docs/decisions.md, "Sealed decisions")."""

from __future__ import annotations

from workflows.chain import canonical_json, sha256_hex
from workflows.serialization import utc_iso

# Every stored column of a decision except the ids the database assigns; references by
# their public ids, so a restore into another database keeps every digest.
DIGEST_COLUMNS = ("channel", "status", "shadow", "config_version", "idempotency_key", "request_id",
                  "proposal_summary", "agent_id", "session_id", "metadata", "estimated_impact",
                  "requires_human_approval", "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
                  "novelty_score", "complexity_score", "quality_score", "has_zero_subscore", "utility_mean",
                  "utility_std_error", "drift_status", "request_data", "response")


def decision_digest(decision) -> str:
    """SHA-256 of the decision's canonical record (plaintext of its encrypted columns)."""
    record = {name: getattr(decision, name) for name in DIGEST_COLUMNS}
    record.update(
        decision_id=str(decision.decision_id),
        customer=decision.customer.customer_id if decision.customer_id else None,
        api_key=decision.api_key.key_id if decision.api_key_id else None,
        review_workflow_id=str(decision.review_workflow_id) if decision.review_workflow_id else None,
        created_at=utc_iso(decision.created_at),
        replay_vector=bytes(decision.replay_vector).hex())
    return sha256_hex(canonical_json(record))
