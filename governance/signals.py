"""Signals other apps react to (e.g. notifications), sent only once the action that caused
them has committed: a rolled-back action tells nobody, and a failing receiver never fails
the action (Django's robust on_commit logs its exception instead)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# A drift report was stored: report_id.
drift_reported = Signal()


def send_after_commit(signal: Signal, **kwargs) -> None:
    """Send `signal` with `kwargs` once the current transaction commits (now, outside one)."""
    transaction.on_commit(lambda: signal.send_robust(sender=None, **kwargs), robust=True)
