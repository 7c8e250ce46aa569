"""A failed audit-chain verification is shown on every page a staff member opens."""

from .operations import latest_verification


def audit_alert(request):
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated and user.is_staff):
        return {}
    run = latest_verification()
    return {"audit_alert": run} if run is not None and run.broken else {}
