"""/metrics under a real gunicorn with two workers (aegis_site/gunicorn.conf.py).

Each worker is its own process with its own counters; only prometheus_client's
multiprocess mode makes /metrics report the whole server, whichever worker answers.
The server uses the test database, as the Celery worker of test_celery_worker.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from governance import services
from governance.models import Tier
from process_support import answers, database_url, free_port, request, start_gunicorn, stop, wait_for

EVALUATIONS = 16  # per round
MAX_ROUNDS = 20
CONCURRENCY = 4  # requests in flight at once: more than one sync worker has to answer
# ENGINE.md §7 example A, as the API tests send it.
PROPOSAL = {
    "proposal_summary": "Add Redis caching layer to reduce API latency",
    "estimated_impact": "medium",
    "risk_baseline": 0.02,
    "risk_proposed": 0.05,
    "profit_baseline": 0.98,
    "profit_proposed": 0.98,
    "novelty_score": 0.75,
    "complexity_score": 0.8,
    "quality_score": 0.85,
}


def totals(text: str) -> dict[str, float]:
    """Sample name -> sum over its label sets, for the decision and gate counters."""
    sums = {"aegis_decisions_total": 0.0, "aegis_gate_results_total": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return sums


def per_process(directory: Path, sample_name: str, **labels: str) -> dict[int, float]:
    """From the worker's own counter file: pid -> that process's sum of `sample_name`."""
    result = {}
    for path in directory.glob("counter_*.db"):
        value = sum(sample.value for metric in MultiProcessCollector.merge([str(path)])
                    for sample in metric.samples
                    if sample.name == sample_name and labels.items() <= sample.labels.items())
        result[int(path.stem.split("_")[1])] = value
    return result


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("metrics_dir", ["unset", "given, with samples of an earlier run"])
def test_metrics_add_up_all_gunicorn_workers(tmp_path, metrics_dir):
    customer, key, plaintext = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env.update({"DJANGO_SETTINGS_MODULE": "aegis_site.test_settings", "DATABASE_URL": database_url(),
                "SECURE_SSL_REDIRECT": "0", "TMPDIR": str(tmp_path / "tmp")})
    (tmp_path / "tmp").mkdir()
    if metrics_dir == "unset":
        directory = None  # the config makes a temporary one, in TMPDIR
    else:
        directory = tmp_path / "prometheus"
        directory.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        # A finished process's counter file, as an earlier run leaves it behind.
        subprocess.run([sys.executable, "-c", "from prometheus_client import Counter; "
                        "Counter('aegis_decisions_total', 'stale', ['status', 'shadow'])"
                        ".labels(status='approve', shadow='false').inc(1000)"], env=env, check=True)
        assert list(directory.glob("counter_*.db"))

    log_path = tmp_path / "gunicorn.log"
    server = start_gunicorn(env, log_path, workers=2, port=port)
    try:
        wait_for(lambda: answers(port) or server.poll() is not None, 60, "gunicorn to answer")
        assert server.poll() is None, log_path.read_text()
        if directory is None:
            made = [p for p in (tmp_path / "tmp").iterdir() if p.is_dir()]
            assert len(made) == 1, f"expected the config's temporary metrics directory, found {made}"
            directory = made[0]
        # Each worker creates its histogram file when it loads the app: both are ready.
        wait_for(lambda: len(list(directory.glob("histogram_*.db"))) >= 2, 60, "both workers to load the app")

        # Which worker accepts a connection is up to the kernel: send rounds until both have
        # answered some, so that the totals below really add up two processes.
        responses, decided = [], {}
        for _ in range(MAX_ROUNDS):
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                responses += pool.map(lambda i: request(port, "POST", "/evaluate", {
                    **PROPOSAL, "proposal_summary": f"proposal {i}"}, {"Authorization": f"Bearer {plaintext}"}),
                    range(len(responses), len(responses) + EVALUATIONS))
            decided = per_process(directory, "aegis_decisions_total")
            if len([pid for pid, count in decided.items() if count > 0]) >= 2:
                break
        else:
            pytest.fail(f"one worker made every decision in {len(responses)} requests: {decided}")
        assert [status for status, _ in responses] == [200] * len(responses), responses[0]
        # Every gate a decision reports is counted once: five here (the sixth, utility, is
        # evaluated only for proposals that carry a utility_result).
        gates = sum(len(json.loads(body)["gates"]) for _, body in responses)
        assert gates == 5 * len(responses)

        scrapes, scraped = [], {}
        for _ in range(MAX_ROUNDS):
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                scrapes += pool.map(lambda i: request(port, "GET", "/metrics"), range(8))
            scraped = per_process(directory, "aegis_http_requests_total", method="GET", status="200")
            if len([pid for pid, count in scraped.items() if count > 0]) >= 2:
                break
        else:
            pytest.fail(f"one worker answered every /metrics request: {scraped}")
        for status, body in scrapes:
            assert status == 200
            assert totals(body.decode()) == {"aegis_decisions_total": len(responses),
                                             "aegis_gate_results_total": gates}

        stop(server)
        assert server.returncode == 0, log_path.read_text()
        if metrics_dir == "unset":
            assert not directory.exists(), "the config's temporary directory outlived the server"
    finally:
        stop(server)
