"""Shown on every page a staff member opens: a failed audit-chain verification, and how
many items wait for them (the navigation's Home count)."""

from .operations import latest_verification
from .waiting import waiting_for_request


def _staff(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_staff)


def audit_alert(request):
    if not _staff(request):
        return {}
    run = latest_verification()
    return {"audit_alert": run} if run is not None and run.broken else {}


def waiting_count(request):
    """Counted lazily: a page that never shows the navigation runs no query for it."""
    if not _staff(request):
        return {}
    return {"waiting_count": lambda: len(waiting_for_request(request))}
