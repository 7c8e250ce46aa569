"""A revoked API key stops working on every gunicorn worker within 5 seconds, although
each worker remembers valid keys for AEGIS_API_KEY_CACHE_SECONDS (2 s by default).

The key is revoked in this process (as an admin or another worker would), so no worker
hears of it: each must find out by its cache running out. The server uses the test
database, as the other integration tests do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_metrics_gunicorn import per_process

from governance import services
from governance.models import Tier
from process_support import answers, database_url, free_port, request, start_gunicorn, stop, wait_for

WORKERS = 3
REQUESTS = 60  # per round, on fresh connections
MAX_ROUNDS = 20  # which worker accepts is the kernel's choice: rounds until every one has answered
REVOCATION_DEADLINE = 5.0


def statuses(port: int, plaintext: str) -> list[int]:
    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(lambda _: request(port, "GET", "/customer/profile",
                                               headers={"Authorization": f"Bearer {plaintext}"})[0],
                             range(REQUESTS)))


def until_every_worker_answered(port: int, plaintext: str, metrics: Path, status: str) -> tuple[list[int], dict]:
    """Statuses of rounds of requests, sent until every worker counted one answered `status`."""
    before = per_process(metrics, "aegis_http_requests_total", status=status)
    seen, answered = [], {}
    for _ in range(MAX_ROUNDS):
        seen += statuses(port, plaintext)
        after = per_process(metrics, "aegis_http_requests_total", status=status)
        answered = {pid: n - before.get(pid, 0) for pid, n in after.items()}
        if len([pid for pid, n in answered.items() if n > 0]) == WORKERS:
            break
    return seen, answered


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_revoked_key_stops_working_on_every_worker_within_5_seconds(tmp_path):
    customer, key, plaintext = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    port = free_port()
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aegis_site.test_settings", "DATABASE_URL": database_url(),
           "SECURE_SSL_REDIRECT": "0", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    env.pop("AEGIS_API_KEY_CACHE_SECONDS", None)  # the default
    log_path = tmp_path / "gunicorn.log"
    server = start_gunicorn(env, log_path, workers=WORKERS, port=port)
    try:
        wait_for(lambda: answers(port) or server.poll() is not None, 60, "gunicorn to answer")
        assert server.poll() is None, log_path.read_text()
        wait_for(lambda: len(list(metrics.glob("histogram_*.db"))) >= WORKERS, 60, "every worker to load the app")

        accepted, warmed = until_every_worker_answered(port, plaintext, metrics, "200")  # not /health probes
        assert accepted == [200] * len(accepted)
        assert len([pid for pid, n in warmed.items() if n > 0]) == WORKERS, \
            f"not every worker has used (and cached) the key: {warmed}"

        services.revoke_api_key(customer, key.key_id)
        revoked_at = time.monotonic()
        while time.monotonic() - revoked_at < REVOCATION_DEADLINE:
            time.sleep(0.25)
        refused, answered = until_every_worker_answered(port, plaintext, metrics, "401")

        assert refused == [401] * len(refused), f"{refused.count(200)} requests still accepted 5 s after revocation"
        assert len([pid for pid, n in answered.items() if n > 0]) == WORKERS, \
            f"not every worker was asked after the revocation: {answered}"
    finally:
        stop(server)
