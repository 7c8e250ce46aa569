"""Bulk-made history for integration tests: enough valid, chained workflows that a backup
takes seconds. Used in the test process and in scripts run against a deployment's database."""

from __future__ import annotations

from django.utils import timezone

from ledger import services as ledger
from workflows.chain import checkpoint_hash, transition_hash
from workflows.persistence.models import GENESIS_HASH, WorkflowCheckpoint, WorkflowInstance, WorkflowTransition


def make_workflows(count: int, transitions: int = 5) -> None:
    """Valid chained workflows written in bulk (fast), so a backup takes a while: each
    checkpoint matches its workflow row and each is in the ledger, so `aegis_verify_chain
    --all` passes."""
    now = timezone.now()
    instances = WorkflowInstance.objects.bulk_create(
        WorkflowInstance(workflow_type="consensus", current_state="voting", status="active",
                         state_data={"n": i}, version=transitions) for i in range(count))
    rows, checkpoints, recorded = [], [], []
    for instance in WorkflowInstance.objects.filter(version=transitions).select_related("customer"):
        recorded.append(ledger.workflow_item(instance))
        prev = GENESIS_HASH
        for seq in range(1, transitions + 1):
            fields = dict(workflow_id=instance.workflow_id, seq=seq, from_state="voting" if seq > 1 else "",
                          to_state="voting", triggered_by="bench", reason="", payload={"event": "vote"},
                          created_at=now, prev_hash=prev)
            digest = transition_hash(**fields)
            rows.append(WorkflowTransition(workflow_id=instance.id, hash=digest,
                                           **{k: v for k, v in fields.items() if k != "workflow_id"}))
            prev = digest
        recorded += ledger.transition_items(instance.workflow_id, rows[-transitions:])
        data = {"workflow_id": str(instance.workflow_id), "workflow_type": "consensus", "current_state": "voting",
                "status": "active", "state_data": instance.state_data, "version": transitions}
        checkpoints.append(WorkflowCheckpoint(workflow_id=instance.id, seq=transitions, checkpoint_data=data,
                                              hash=checkpoint_hash(data), created_at=now, created_by="bench"))
    WorkflowTransition.objects.bulk_create(rows, batch_size=2000)
    WorkflowCheckpoint.objects.bulk_create(checkpoints, batch_size=2000)
    ledger.record_many(recorded)  # as AEGIS records the workflows it makes
    ledger.chain_pending()
    assert len(instances) == count
