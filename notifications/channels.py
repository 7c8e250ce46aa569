"""The two ways out: an email through Django's email framework, and a signed JSON POST to
AEGIS_WEBHOOK_URL. Both raise on failure; the delivery verb records it."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from workflows.serialization import ensure_utc

from .events import absolute_url
from .models import NotificationEvent

SIGNATURE_HEADER = "X-AEGIS-Signature"


def email_subject(event: NotificationEvent) -> str:
    return f"[AEGIS] {event.subject}"


def email_body(event: NotificationEvent) -> str:
    """Plain text: what waits, for which tenant, the numbers, the deadline and where to act."""
    payload = event.payload
    lines = [event.subject, "", f"What: {event.get_kind_display()}"]
    if payload.get("tenant"):
        lines.append(f"Tenant: {payload['tenant']}")
    if payload.get("summary"):
        lines.append(f"Summary: {payload['summary']}")
    for name, value in payload.get("numbers", {}).items():
        lines.append(f"{name.replace('_', ' ').capitalize()}: {_shown(value)}")
    deadline = payload.get("deadline")
    lines += [f"Deadline: {utc_text(deadline) if deadline else 'none'}", f"Occurred: {utc_text(payload['occurred_at'])}",
              "", f"Open it here: {payload['url']}", "",
              "You receive this because AEGIS lets you act on it. Turn these emails off on your profile page: "
              f"{absolute_url(reverse('notifications:profile'))}"]
    return "\n".join(lines) + "\n"


def utc_text(iso: str) -> str:
    """An ISO-8601 time as emails show it: 2026-12-03 09:00 UTC."""
    return f"{ensure_utc(iso):%Y-%m-%d %H:%M} UTC"


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_shown(item)}" for key, item in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def send_email(event: NotificationEvent, address: str) -> None:
    EmailMessage(email_subject(event), email_body(event), to=[address]).send()


def webhook_body(event: NotificationEvent) -> bytes:
    """The exact bytes that are signed and posted."""
    return json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    """The X-AEGIS-Signature value: sha256=<hex HMAC-SHA256 of the body, keyed by the secret>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post_webhook(event: NotificationEvent) -> None:
    """POST the event; any answer but 2xx, a refused connection or the timeout raises."""
    body = webhook_body(event)
    request = urllib.request.Request(settings.AEGIS_WEBHOOK_URL, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "AEGIS-notifications/1",
        SIGNATURE_HEADER: signature(body, settings.AEGIS_WEBHOOK_SECRET)})
    with urllib.request.urlopen(request, timeout=settings.AEGIS_WEBHOOK_TIMEOUT) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"the webhook answered HTTP {response.status}")
