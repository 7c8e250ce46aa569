"""The metrics the alert rules need besides the stored-work ones (those:
tests/telemetry/test_stored_work_metrics.py): /evaluate's own requests and latency, and
the Celery broker's queue length."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # api_support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # process_support

from api_support import ApiClient, ensure_default_tiers  # noqa: E402
from process_support import running_redis  # noqa: E402

from governance import metrics, services  # noqa: E402
from governance.models import Tier  # noqa: E402
from governance.metrics import CeleryQueueCollector  # noqa: E402


def scraped() -> str:
    return Client().get("/metrics", secure=True).content.decode()


def value(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and sample.labels == labels)


@pytest.mark.django_db
def test_evaluate_requests_are_counted_by_status_and_timed():
    ensure_default_tiers()
    _, _, key = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    before = scraped()
    api = ApiClient(key)
    assert api.post("/evaluate", {"proposal_summary": "Add a cache"}).status_code == 200
    assert api.post("/evaluate", {"proposal_summary": 5}).status_code == 400
    assert api.get("/health").status_code == 200  # not /evaluate: not counted
    after = scraped()
    for status in ("200", "400"):
        assert value(after, "aegis_evaluate_requests_total", status=status) == value(
            before, "aegis_evaluate_requests_total", status=status) + 1
    assert value(after, "aegis_evaluate_request_duration_seconds_count") == value(
        before, "aegis_evaluate_request_duration_seconds_count") + 2


@pytest.mark.django_db
def test_without_a_broker_nothing_waits():
    assert value(scraped(), "aegis_celery_queue_length", queue="celery") == 0


@pytest.fixture
def redis_url(tmp_path):
    """AEGIS_TEST_REDIS_URL (CI starts a server), else a throwaway one."""
    if os.environ.get("AEGIS_TEST_REDIS_URL"):
        yield os.environ["AEGIS_TEST_REDIS_URL"]
        return
    with running_redis(tmp_path) as url:
        yield url


def queue_length(app: Celery) -> list:
    return [(sample.labels, sample.value) for family in CeleryQueueCollector(app).collect()
            for sample in family.samples]


def test_tasks_waiting_on_a_real_broker_are_counted(redis_url):
    app = Celery("aegis-queue-probe", broker=redis_url)
    queue = app.conf.task_default_queue = f"aegis-test-{uuid.uuid4().hex[:8]}"
    try:
        assert queue_length(app) == [({"queue": queue}, 0)]  # nothing ever sent: no list in Redis
        for _ in range(3):
            app.send_task("aegis.no_worker_takes_this")
        assert queue_length(app) == [({"queue": queue}, 3)]
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
        app.close()


def test_an_unreachable_broker_gives_no_sample_and_the_scrape_goes_on(caplog):
    app = Celery("aegis-queue-probe", broker="redis://127.0.0.1:1/0")
    assert queue_length(app) == []
    assert "Celery broker unreachable for aegis_celery_queue_length: OperationalError" in caplog.text
    assert "127.0.0.1:1" not in caplog.text  # the broker URL (it may hold a password) is never logged
    app.close()


@pytest.mark.django_db
def test_the_collectors_describe_what_they_collect():
    """The preflight's list of exported metrics comes from `describe`: it must match `collect`."""
    for collector in metrics.STORED_WORK_COLLECTORS:
        assert [(family.name, family.type) for family in collector.describe()] == [
            (family.name, family.type) for family in collector.collect()]
