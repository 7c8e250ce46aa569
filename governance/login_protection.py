"""Sign-in protection with django-axes (settings AXES_*): who the client is, and what a
locked-out client is told — the project's page in a browser, the JSON error on an API path."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from .api.errors import error_body, is_page_path


def _valid_address(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The TCP peer, or behind AEGIS_TRUSTED_PROXY_COUNT reverse proxies the address the
    outermost of them saw: each proxy appends its peer to X-Forwarded-For, so the entries to
    the left of that one were written by the client and are not trusted. A header shorter than
    the proxy count, or an entry that is not an address, falls back to the peer (the proxy):
    such a client shares the proxy's count rather than choosing its own."""
    peer = _valid_address(request.META.get("REMOTE_ADDR"))
    hops = settings.AEGIS_TRUSTED_PROXY_COUNT
    if hops <= 0:
        return peer
    forwarded = [entry for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(forwarded) < hops:
        return peer
    return _valid_address(forwarded[-hops]) or peer


def lockout_message() -> str:
    if settings.AXES_COOLOFF_TIME is None:
        wait = "until an administrator unlocks it"
    else:
        minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
        wait = f"for {minutes} minute{'s' if minutes != 1 else ''} after the last attempt, or until an administrator unlocks it"
    return (f"Too many failed sign-ins ({settings.AXES_FAILURE_LIMIT}) for this username or from this address: "
            f"signing in is blocked {wait}")


def locked_out_json(request) -> JsonResponse:
    return JsonResponse(error_body(request, lockout_message(), "locked_out"), status=429)


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 either way; no Retry-After, since every attempt during the
    lock starts the wait again."""
    if not is_page_path(request.path_info):
        return locked_out_json(request)
    return render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)
