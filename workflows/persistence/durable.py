"""DurableWorkflowEngine: audit-chain verification and resume (the seed's
`workflows.persistence.durable`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from django.core.exceptions import ValidationError

from governance.fields import Undecryptable, undecryptable_as_marker

from ..chain import checkpoint_hash, transition_hash
from ..snapshot import checkpoint_data_of
from .models import GENESIS_HASH, WorkflowCheckpoint, WorkflowInstance, WorkflowTransition

TRANSITION_COLUMNS = ("workflow_id", "seq", "from_state", "to_state", "triggered_by", "reason", "payload",
                      "created_at", "prev_hash", "hash")
STREAM_CHUNK = 500  # workflows per batch: bounds the decoded checkpoints held at once


@dataclass(frozen=True)
class ChainReport:
    workflow_id: str
    is_valid: bool
    message: str
    transitions: int
    checkpoints: int
    broken_seq: int | None = None

    def as_tuple(self) -> tuple[bool, str]:
        return self.is_valid, self.message


def verify_transitions(workflow_id: str, rows: Iterable[tuple], *, version: int | None = None) -> tuple[int, str | None, int | None]:
    """Check one workflow's transitions, given in seq order as TRANSITION_COLUMNS tuples
    (workflow_id excluded). Returns (count, first problem or None, its seq)."""
    expected_seq, prev = 1, GENESIS_HASH
    count = 0
    for seq, from_state, to_state, triggered_by, reason, payload, created_at, prev_hash, stored in rows:
        count += 1
        if any(isinstance(value, Undecryptable) for value in (triggered_by, reason, payload)):
            return count, f"seq {seq}: cannot decrypt (no key in FERNET_KEYS decrypts its encrypted columns)", seq
        if seq != expected_seq:
            return count, f"seq {expected_seq}: gap in seq (next stored transition is seq {seq})", expected_seq
        if prev_hash != prev:
            return count, f"seq {seq}: broken link (prev_hash does not match the hash of seq {seq - 1})", seq
        computed = transition_hash(workflow_id=workflow_id, seq=seq, from_state=from_state, to_state=to_state,
                                   triggered_by=triggered_by, reason=reason, payload=payload,
                                   created_at=created_at, prev_hash=prev_hash)
        if computed != stored:
            return count, f"seq {seq}: hash mismatch (stored {stored[:12]}…, computed {computed[:12]}…)", seq
        prev = stored
        expected_seq += 1
    if version is not None and count != version:
        missing = count + 1
        return count, (f"seq {missing}: gap in seq (the workflow records {version} transitions, "
                       f"{count} are stored)"), missing
    return count, None, None


class DurableWorkflowEngine:
    """Verifies audit chains and resumes workflows from their last checkpoint."""

    def verify_audit_chain(self, workflow_id) -> tuple[bool, str]:
        """(is_valid, message); the message names the first broken seq and why."""
        return self.report(workflow_id).as_tuple()

    def report(self, workflow_id) -> ChainReport:
        """One workflow's report. A value no key decrypts makes the chain broken (reported),
        not the verification (raised)."""
        with undecryptable_as_marker():
            try:
                workflow = WorkflowInstance.objects.get(workflow_id=workflow_id)
            except (WorkflowInstance.DoesNotExist, ValueError, ValidationError):
                return ChainReport(str(workflow_id), False, f"no workflow {workflow_id}", 0, 0)
            rows = list(WorkflowTransition.objects.filter(workflow=workflow).order_by("seq")
                        .values_list(*TRANSITION_COLUMNS[1:]))
            checkpoints = list(WorkflowCheckpoint.objects.filter(workflow=workflow).order_by("seq")
                               .values_list("seq", "checkpoint_data", "hash"))
        return self._judge(workflow, rows, checkpoints)

    def verify_all(self) -> Iterator[ChainReport]:
        """Every workflow's report, streaming transitions in chunks (memory stays flat)."""
        workflows = WorkflowInstance.objects.order_by("id").values_list("id", flat=True)
        last_id = 0
        while True:
            batch = list(workflows.filter(id__gt=last_id)[:STREAM_CHUNK])
            if not batch:
                return
            last_id = batch[-1]
            transitions: dict[int, list[tuple]] = {pk: [] for pk in batch}
            checkpoints: dict[int, list[tuple]] = {pk: [] for pk in batch}
            # Marked, not raised, while reading only (never across the yields below).
            with undecryptable_as_marker():
                instances = {w.id: w for w in WorkflowInstance.objects.filter(id__in=batch)}
                for row in (WorkflowTransition.objects.filter(workflow_id__in=batch).order_by("workflow_id", "seq")
                            .values_list(*TRANSITION_COLUMNS).iterator(chunk_size=STREAM_CHUNK)):
                    transitions[row[0]].append(row[1:])
                for row in (WorkflowCheckpoint.objects.filter(workflow_id__in=batch).order_by("workflow_id", "seq")
                            .values_list("workflow_id", "seq", "checkpoint_data", "hash")
                            .iterator(chunk_size=STREAM_CHUNK)):
                    checkpoints[row[0]].append(row[1:])
            for pk in batch:
                yield self._judge(instances[pk], transitions[pk], checkpoints[pk])

    def _judge(self, workflow: WorkflowInstance, rows: Iterable[tuple], checkpoints: list[tuple]) -> ChainReport:
        workflow_id = str(workflow.workflow_id)
        rows = list(rows)
        count, problem, broken = verify_transitions(workflow_id, rows, version=workflow.version)
        if problem:
            return ChainReport(workflow_id, False, problem, count, len(checkpoints), broken)
        to_state = {row[0]: row[2] for row in rows}
        last_state = rows[-1][2] if rows else ""
        if workflow.current_state != last_state:
            return ChainReport(workflow_id, False, f"seq {count}: checkpoint mismatch (the workflow row's state "
                                                   f"{workflow.current_state!r} differs from its last transition's "
                                                   f"{last_state!r})",
                               count, len(checkpoints), count)
        for seq, data, stored in checkpoints:
            if isinstance(data, Undecryptable):
                return ChainReport(workflow_id, False, f"seq {seq}: cannot decrypt its checkpoint",
                                   count, len(checkpoints), seq)
            if checkpoint_hash(data) != stored:
                return ChainReport(workflow_id, False, f"seq {seq}: checkpoint mismatch (hash of its data differs)",
                                   count, len(checkpoints), seq)
            if seq not in to_state or data.get("current_state") != to_state[seq] or data.get("version") != seq:
                return ChainReport(workflow_id, False,
                                   f"seq {seq}: checkpoint mismatch (does not match transition {seq})",
                                   count, len(checkpoints), seq)
        if workflow.version:
            newest = checkpoints[-1] if checkpoints else None
            if newest is None or newest[0] != workflow.version:
                return ChainReport(workflow_id, False,
                                   f"seq {workflow.version}: checkpoint mismatch (no checkpoint of the current state)",
                                   count, len(checkpoints), workflow.version)
            if isinstance(workflow.state_data, Undecryptable):
                return ChainReport(workflow_id, False, f"seq {workflow.version}: cannot decrypt the workflow's state",
                                   count, len(checkpoints), workflow.version)
            if newest[1] != checkpoint_data_of(workflow):
                return ChainReport(workflow_id, False,
                                   f"seq {workflow.version}: checkpoint mismatch (the workflow row differs from "
                                   f"its checkpoint)", count, len(checkpoints), workflow.version)
        return ChainReport(workflow_id, True, f"chain valid: {count} transitions, {len(checkpoints)} checkpoints",
                           count, len(checkpoints))

    def resume(self, workflow_id) -> dict[str, Any]:
        """The state to resume from after a crash: the newest checkpoint that verifies."""
        for seq, data, stored in (WorkflowCheckpoint.objects.filter(workflow__workflow_id=workflow_id)
                                  .order_by("-seq").values_list("seq", "checkpoint_data", "hash")):
            if checkpoint_hash(data) == stored:
                return data
        raise LookupError(f"no valid checkpoint for workflow {workflow_id}")
