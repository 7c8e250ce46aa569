"""Hostile input against a production-like server (gunicorn with the production settings,
on the loopback): what hand fuzzing found there, each answered by a 4xx JSON error and none
by a 500 (docs/decisions.md, "Hostile input"; tests/api/test_hostile_input.py has the
details). The server uses the test database, as in test_metrics_gunicorn.py."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time

import pytest
from test_metrics_gunicorn import PROPOSAL

from governance import services
from governance.models import ApiKey, Decision, Tier
from process_support import answers, database_url, free_port, start_gunicorn, stop, wait_for

DECLARED_BYTES = 200 * 1024 * 1024
PROPOSAL_TEXT = json.dumps(PROPOSAL).encode()


def deep(depth: int) -> str:
    return '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1)


def call(port: int, method: str, path: str, body: str | None, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request on a fresh connection, the body sent exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else body.encode(),
                     headers={"Content-Type": "application/json", "Connection": "close", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def send_head_and_wait(port: int, head: bytes, body_start: bytes) -> tuple[int, dict, float]:
    """Sends a request head and the first bytes of its body, then only reads: the answer's
    status, JSON body and the seconds it took to come."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body_start)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), time.monotonic() - started


@pytest.fixture
def server(tmp_path):
    """gunicorn (one sync worker, the production settings with plain http) on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env.update({"DJANGO_SETTINGS_MODULE": "aegis_site.test_settings", "DATABASE_URL": database_url(),
                "SECURE_SSL_REDIRECT": "0", "TMPDIR": str(tmp_path)})
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(env, log_path, workers=1, port=port)
    try:
        wait_for(lambda: answers(port) or process.poll() is not None, 60, "gunicorn to answer")
        assert process.poll() is None, log_path.read_text()
        yield port, log_path
    finally:
        stop(process)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_hostile_requests_get_4xx_json_from_gunicorn(server):
    port, log_path = server
    customer, key, plaintext = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    keyed = {"Authorization": f"Bearer {plaintext}"}
    summary_and_impact = json.dumps(PROPOSAL)[:-1]
    cases = [
        # (what, method, path, raw body, headers, expected status, expected code)
        ("990 levels on /evaluate", "POST", "/evaluate", f'{summary_and_impact}, "metadata": {deep(989)}}}', keyed,
         400, "json_too_deep"),
        ("990 levels on the keyless sandbox", "POST", "/sandbox/evaluate", deep(990), {}, 400, "json_too_deep"),
        ("duplicate estimated_impact", "POST", "/evaluate", f'{summary_and_impact}, "estimated_impact": "critical"}}',
         keyed, 400, "duplicate_key"),
        ("NUL in an API key name", "POST", "/customer/keys", '{"name": "ops\\u0000"}', keyed, 400, "nul_character"),
        ("NUL in a summary", "POST", "/evaluate", json.dumps({**PROPOSAL, "proposal_summary": "a\u0000b"}), keyed,
         400, "nul_character"),
        ("month 0000-01", "GET", "/customer/decisions?month=0000-01", None, keyed, 400, "invalid_request"),
        ("month with a newline", "GET", "/customer/decisions?month=2026-12%0A", None, keyed, 400, "invalid_request"),
        ("usage of month 0000-01", "GET", "/customer/usage/0000-01", None, keyed, 400, "invalid_request"),
        ("NUL in a key id", "DELETE", f"/customer/keys/{key.key_id}%00", None, keyed, 400, "nul_character"),
        ("NUL in a page search", "GET", "/decisions/?q=%00", None, {}, 400, "nul_character"),
    ]
    answered = {what: call(port, method, path, body, headers) for what, method, path, body, headers, _, _ in cases}

    wrong = {what: answered[what] for what, *_, status, code in cases
             if answered[what][0] != status or json.loads(answered[what][1]).get("code") != code}
    assert wrong == {}

    # Claims 200 MB, sends 1 KB and waits: the answer comes at once, the rest is never asked for.
    head = (f"POST /sandbox/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {DECLARED_BYTES}\r\n\r\n").encode()
    status, body, seconds = send_head_and_wait(port, head, b'{"proposal_summary": "' + b"x" * 1000)
    assert status == 413, body
    assert body["code"] == "payload_too_large" and "8,388,608 bytes" in body["error"]
    assert seconds < 5

    chunked = (b"POST /sandbox/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    status, body, _ = send_head_and_wait(port, chunked, b"%x\r\n%s\r\n0\r\n\r\n" % (len(PROPOSAL_TEXT), PROPOSAL_TEXT))
    assert (status, body["code"]) == (411, "length_required"), body

    assert answers(port), "the worker died"
    assert Decision.objects.count() == 0
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1
    log = log_path.read_text()
    assert "Traceback" not in log and "Internal Server Error" not in log, log
