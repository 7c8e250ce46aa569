"""What a checkpoint records of a workflow: one definition for writing and verifying."""

from __future__ import annotations

from typing import Any


def checkpoint_data_of(workflow) -> dict[str, Any]:
    return {
        "workflow_id": str(workflow.workflow_id),
        "workflow_type": workflow.workflow_type,
        "current_state": workflow.current_state,
        "status": workflow.status,
        "state_data": workflow.state_data,
        "version": workflow.version,
    }
