"""WorkflowPersistence: the seed's repository, on Django.

The seed awaits it (`await repo.list_workflows(status="pending")`), so its methods are
coroutines; each has a synchronous twin (`*_sync`) for views, commands and tasks.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ledger import services as ledger

from ..chain import checkpoint_hash
from ..snapshot import checkpoint_data_of
from ..workflow import WORKFLOW_CLASSES, Workflow
from .durable import verify_transitions
from .models import WorkflowCheckpoint, WorkflowInstance, WorkflowStatus, WorkflowTransition


class RestoreError(ValueError):
    """A workflow that cannot be saved as given (broken chain, conflicting history)."""


class WorkflowPersistence:
    # --- synchronous ---------------------------------------------------------------------

    def list_workflows_sync(self, status: str | None = None, workflow_type: str | None = None) -> list[Workflow]:
        if status is not None and status not in WorkflowStatus.values:
            raise ValueError(f"status must be one of {', '.join(WorkflowStatus.values)}, got {status!r}")
        rows = WorkflowInstance.objects.order_by("created_at", "id")
        if status is not None:
            rows = rows.filter(status=status)
        if workflow_type is not None:
            rows = rows.filter(workflow_type=workflow_type)
        return [self._to_workflow(row) for row in rows.prefetch_related("transitions")]

    def load_sync(self, workflow_id) -> Workflow:
        try:
            row = WorkflowInstance.objects.prefetch_related("transitions").get(workflow_id=workflow_id)
        except (WorkflowInstance.DoesNotExist, ValueError, ValidationError):
            raise LookupError(f"no workflow {workflow_id}") from None
        return self._to_workflow(row)

    def save_checkpoint_sync(self, workflow: Workflow, *, actor_id: str) -> WorkflowCheckpoint:
        """Persist `workflow` (creating it and any transitions the database lacks, after
        verifying their chain) and record a checkpoint of its current state."""
        count, problem, _ = verify_transitions(
            workflow.workflow_id,
            ((t["seq"], t["from_state"], t["to_state"], t["triggered_by"], t["reason"], t["payload"],
              t["created_at"], t["prev_hash"], t["hash"]) for t in workflow.transitions),
            version=workflow.version)
        if problem:
            raise RestoreError(f"workflow {workflow.workflow_id}: {problem}")
        if workflow.transitions and workflow.transitions[-1]["to_state"] != workflow.current_state:
            raise RestoreError(f"workflow {workflow.workflow_id}: current_state does not match its last transition")
        with transaction.atomic():
            row, created = WorkflowInstance.objects.select_for_update().get_or_create(
                workflow_id=workflow.workflow_id,
                defaults={"workflow_type": workflow.workflow_type, "current_state": workflow.current_state,
                          "status": workflow.status, "state_data": workflow.state_data,
                          "version": workflow.version, "created_at": workflow.created_at,
                          "updated_at": workflow.updated_at})
            stored = list(WorkflowTransition.objects.filter(workflow=row).order_by("seq").values_list("seq", "hash"))
            given = [(t["seq"], t["hash"]) for t in workflow.transitions]
            if given[:len(stored)] != stored:
                raise RestoreError(f"workflow {workflow.workflow_id}: its stored history differs from the one given")
            added = workflow.transitions[len(stored):]
            WorkflowTransition.objects.bulk_create(WorkflowTransition(workflow=row, **t) for t in added)
            try:
                ledger.record_again(([ledger.workflow_item(row)] if created else [])
                                    + ledger.transition_items(row.workflow_id, added))
            except ledger.LedgerConflict as exc:
                raise RestoreError(f"workflow {workflow.workflow_id}: {exc}") from None
            if not created and len(given) > len(stored):
                row.current_state, row.status, row.state_data = (workflow.current_state, workflow.status,
                                                                 workflow.state_data)
                row.version, row.updated_at = workflow.version, workflow.updated_at
                row.save()
            data = checkpoint_data_of(row)
            checkpoint, _ = WorkflowCheckpoint.objects.get_or_create(
                workflow=row, seq=row.version,
                defaults={"checkpoint_data": data, "hash": checkpoint_hash(data),
                          "created_at": timezone.now(), "created_by": actor_id})
        return checkpoint

    # --- awaitable (the seed's interface) ------------------------------------------------

    async def list_workflows(self, status: str | None = None, workflow_type: str | None = None) -> list[Workflow]:
        return await sync_to_async(self.list_workflows_sync)(status=status, workflow_type=workflow_type)

    async def load(self, workflow_id) -> Workflow:
        return await sync_to_async(self.load_sync)(workflow_id)

    async def save_checkpoint(self, workflow: Workflow, *, actor_id: str) -> WorkflowCheckpoint:
        return await sync_to_async(self.save_checkpoint_sync)(workflow, actor_id=actor_id)

    # -------------------------------------------------------------------------------------

    @staticmethod
    def _to_workflow(row: WorkflowInstance) -> Workflow:
        transitions = [{"seq": t.seq, "from_state": t.from_state, "to_state": t.to_state,
                        "triggered_by": t.triggered_by, "reason": t.reason, "payload": t.payload,
                        "created_at": t.created_at, "prev_hash": t.prev_hash, "hash": t.hash}
                       for t in sorted(row.transitions.all(), key=lambda t: t.seq)]
        return WORKFLOW_CLASSES[row.workflow_type](
            workflow_id=str(row.workflow_id), current_state=row.current_state, status=row.status,
            state_data=row.state_data, version=row.version, created_at=row.created_at,
            updated_at=row.updated_at, transitions=transitions)
