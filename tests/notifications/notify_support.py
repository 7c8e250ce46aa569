"""Helpers for the notification tests (imported as `notify_support`; tests/browser adds this
directory to sys.path for its notification journey): users with roles and email addresses,
a real SMTP server (aiosmtpd's Controller: a socket on 127.0.0.1 served from a thread) and a
real HTTP receiver for the webhook (http.server in a thread)."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
from contextlib import contextmanager
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.mail.backends.base import BaseEmailBackend

from notifications.models import NotificationPreference

PASSWORD = "Correct-Horse-Battery-9"
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"


def make_user(username: str, *groups: str, email: str | None = None, staff: bool = True, active: bool = True,
              email_enabled: bool = True, password: str | None = None):
    """A user in `groups`, with `<username>@example.com` unless `email` says otherwise ("" for none);
    without `password` it cannot sign in (hashing one costs a fifth of a second)."""
    user = get_user_model().objects.create_user(
        username, email=f"{username}@example.com" if email is None else email, password=password, is_staff=staff,
        is_active=active)
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])  # made by a migration; flushes empty it
    if not email_enabled:
        NotificationPreference.objects.create(user=user, email_enabled=False)
    return user


class FailingEmailBackend(BaseEmailBackend):
    """An SMTP server that refuses everything, as a backend (EMAIL_BACKEND in the tests)."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


# --- a real SMTP server -------------------------------------------------------------------

class _Inbox:
    def __init__(self):
        self.messages = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.arrived:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
            self.arrived.notify_all()
        return "250 Message accepted"


@contextmanager
def smtp_server():
    """An SMTP server on 127.0.0.1 (a free port); yields (port, inbox) where inbox.messages
    collects (recipients, email.message.EmailMessage)."""
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


# --- a real HTTP receiver -----------------------------------------------------------------

class WebhookReceiver:
    """Records each POST (headers and exact body bytes) and answers `status`."""

    def __init__(self, status: int = 204):
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/aegis"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]
