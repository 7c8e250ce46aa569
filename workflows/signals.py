"""Signals of the workflow and operations layer, sent after commit (governance.signals.
send_after_commit), so apps above it (notifications) react without being imported here."""

from django.dispatch import Signal

# A workflow moved: workflow_id, workflow_type, from_state, to_state, seq.
workflow_transitioned = Signal()
# A chain verification run finished: run_id.
chains_verified = Signal()
# A scheduled backup failed: run_id.
backup_failed = Signal()
