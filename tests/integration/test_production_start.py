"""The production start of docs/operations.md, for real: `manage.py collectstatic --no-input`, then gunicorn
with the project's config and DEBUG off, behind a TLS-terminating proxy
(SECURE_PROXY_SSL_HEADER=1, the proxy sending X-Forwarded-Proto).

Checked over HTTP: /health answers plain-HTTP probes while everything else is redirected;
the admin's CSS is served under its hashed name, gzip-compressed and cached for good; the
API docs' assets are local; unknown API paths answer JSON and unknown pages the project's
404; a server error answers JSON or the project's 500 page and is logged on stderr with its
request id and traceback, and counted in /metrics across workers. The URLconf adds views
that fail on purpose (tests/serving/serving_urls.py); everything else is production's.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from process_support import ROOT, database_url, free_port, start_gunicorn, stop, wait_for

BEHIND_TLS_PROXY = {"X-Forwarded-Proto": "https"}


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def production_environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env.update({
        "DEBUG": "0",
        "SECRET_KEY": "production-start-test-" + "s" * 40,
        "FERNET_KEYS": "production-start-pii-" + "f" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECURE_PROXY_SSL_HEADER": "1",
        "TMPDIR": str(tmp_path),
    })
    return env


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_documented_production_start_serves_static_files_errors_and_logs(tmp_path):
    env = production_environment(tmp_path)
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input"], cwd=ROOT,
                               env={**env, "DJANGO_SETTINGS_MODULE": "aegis_site.settings"},
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()

    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    server = start_gunicorn({**env, "DJANGO_SETTINGS_MODULE": "serving_settings"}, log_path, workers=2, port=port,
                            extra=("--pythonpath", "tests/serving"))
    try:
        def probe():
            try:
                return fetch(port, "/health")
            except OSError:
                return "exited" if server.poll() is not None else None

        answer = wait_for(probe, 60, "gunicorn to answer")
        assert answer != "exited", log_path.read_text()
        status, headers, body = answer

        # A load balancer's plain-HTTP probe is answered; anything else is sent to HTTPS.
        assert status == 200 and json.loads(body)["status"] == "ok", body
        status, headers, _ = fetch(port, "/admin/login/")
        assert status == 301 and headers["location"] == f"https://127.0.0.1:{port}/admin/login/"

        # The admin, through the proxy, links its CSS under the hashed name, and it is served.
        status, _, page = fetch(port, "/admin/login/", BEHIND_TLS_PROXY)
        assert status == 200, page[:300]
        stylesheet = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
        assert stylesheet, page[:1000]
        status, headers, css = fetch(port, stylesheet.group(1).decode(), {**BEHIND_TLS_PROXY, "Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-type"].startswith("text/css")
        assert headers.get("content-encoding") == "gzip"
        assert "immutable" in headers["cache-control"] and "max-age=315360000" in headers["cache-control"]
        original = (tmp_path / "static" / stylesheet.group(1).decode().removeprefix("/static/")).read_bytes()
        assert gzip.decompress(css) == original

        # The API docs' scripts and styles are the app's own files, served too.
        status, _, docs = fetch(port, "/api/docs", BEHIND_TLS_PROXY)
        assert status == 200 and not re.search(rb"https?://", docs)
        assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', docs)
        assert any(a.endswith(b".js") for a in assets) and any(a.endswith(b".css") for a in assets), assets
        for asset in assets:
            assert fetch(port, asset.decode(), BEHIND_TLS_PROXY)[0] == 200, asset

        # The favicon: /favicon.ico sends the browser to the hashed SVG, which is served.
        status, headers, _ = fetch(port, "/favicon.ico", BEHIND_TLS_PROXY)
        assert status == 301 and re.fullmatch(r"/static/aegis/favicon\.[0-9a-f]{12}\.svg", headers["location"])
        status, headers, icon = fetch(port, headers["location"], BEHIND_TLS_PROXY)
        assert status == 200 and headers["content-type"].startswith("image/svg+xml") and b"<svg" in icon

        # Unknown paths: JSON for the client, the project's page for a browser.
        status, headers, body = fetch(port, "/attest-nothing-here", BEHIND_TLS_PROXY)
        assert status == 404 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "No such endpoint: /attest-nothing-here"
        status, headers, page = fetch(port, "/workflows/no/such/page/", BEHIND_TLS_PROXY)
        assert status == 404 and b"Page not found (404)" in page and b"URLconf" not in page

        # Server errors: answered, logged on stderr with request id and traceback, counted.
        status, headers, body = fetch(port, "/api/test-failure/plain", BEHIND_TLS_PROXY)
        assert status == 500 and json.loads(body)["code"] == "internal_error"
        request_ids = [json.loads(body)["request_id"]]
        status, headers, page = fetch(port, "/workflows/test-failure/", BEHIND_TLS_PROXY)
        assert status == 500 and b"Something went wrong on the server (500)" in page
        request_ids.append(headers["x-aegis-request-id"])
        status, headers, body = fetch(port, "/api/test-failure/drf", BEHIND_TLS_PROXY)
        assert status == 500
        request_ids.append(json.loads(body)["request_id"])

        def counted():
            text = fetch(port, "/metrics", BEHIND_TLS_PROXY)[2].decode()
            return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                       if s.name == "aegis_server_errors_total" and s.labels == {"exception": "ServerFault"})

        for _ in range(4):  # whichever worker answers /metrics, it reports all three
            assert counted() == 3

        log = wait_for(lambda: (text := log_path.read_text()).count("Server error req_") >= 3 and text,
                       10, "the server errors in the log")
        for request_id, path in zip(request_ids, ["/api/test-failure/plain", "/workflows/test-failure/",
                                                  "/api/test-failure/drf"]):
            line = f"Server error {request_id} on GET {path}: ServerFault"
            assert line in log, log
            after = log[log.index(line):]
            assert after.splitlines()[1] == "Traceback (most recent call last):", after[:500]
    finally:
        stop(server)
