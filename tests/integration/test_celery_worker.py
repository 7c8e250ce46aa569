"""Background jobs on a real Redis broker with a real Celery worker process (not eager).

Each test run starts its own redis-server on a free loopback port, and the worker
processes use the test database. A missing redis-server FAILS these tests (install
Debian's `redis-server`); it never skips them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings

from celery import Celery

from aegis_site.celery import app as celery_app
from governance.models import Customer, DriftBaseline, DriftReport, Tier
from workflows.backup import check_backup
from workflows.operations import BACKUP_LOCK_FILE, scheduled_backup_path
from workflows.persistence.models import BackupRun, ChainVerificationRun
from process_support import ROOT, running_redis, wait_for
from seed_support import make_workflows

VISIBILITY_TIMEOUT = 3  # seconds before Redis hands an unacknowledged task to another worker
WORKFLOWS = 5000


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """AEGIS_TEST_REDIS_URL (CI starts a server on a non-default port), else our own server."""
    if os.environ.get("AEGIS_TEST_REDIS_URL"):
        yield os.environ["AEGIS_TEST_REDIS_URL"]
        return
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def client(redis_url):
    """A Celery client on the test Redis that sends tasks by name (this process's own app
    stays eager, as configured without REDIS_URL)."""
    app = Celery("aegis-test-client", broker=redis_url, backend=redis_url)
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
    yield app
    app.close()


class Worker:
    """A `celery worker` process on the test database and the test Redis."""

    def __init__(self, redis: str, backup_dir: Path, log: Path):
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            database_url = f"sqlite:///{db['NAME']}"
        else:
            database_url = (f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/"
                            f"{db['NAME']}")
        env = {**os.environ, "REDIS_URL": redis, "DATABASE_URL": database_url, "BACKUP_DIR": str(backup_dir),
               "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "DJANGO_SETTINGS_MODULE": "aegis_site.test_settings"}
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "aegis_site", "worker", "--pool=solo", "--concurrency=1",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def start_worker(redis_url, tmp_path):
    workers: list[Worker] = []
    backup_dir = tmp_path / "backups"

    def start() -> Worker:
        worker = Worker(redis_url, backup_dir, tmp_path / "worker.log")
        workers.append(worker)
        return worker

    start.backup_dir = backup_dir
    start.log = tmp_path / "worker.log"
    yield start
    for worker in workers:
        worker.stop()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_task_round_trips_through_redis_and_a_real_worker(start_worker, client):
    worker = start_worker()
    result = client.send_task("aegis.audit.verify_chains")
    assert result.get(timeout=60) == {"checked": 1, "broken": 0}  # configuration v1
    assert ChainVerificationRun.objects.count() == 1
    assert worker.process.poll() is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_default_schedules_exist_and_beat_reads_them():
    from django_celery_beat.models import PeriodicTask

    celery_app.loader.import_default_modules()
    tasks = {t.task: t for t in PeriodicTask.objects.filter(enabled=True)}
    daily = {"aegis.drift.report_all", "aegis.backup.daily", "aegis.audit.verify_chains"}
    assert daily | {"aegis.workflows.expire_overrides"} <= set(tasks)
    for name in daily:
        crontab = tasks[name].crontab
        assert (crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == ("*", "*", "*"), name
        assert crontab.hour.isdigit() and crontab.minute.isdigit(), name
        assert name in celery_app.tasks, f"{name} is scheduled but no such task is registered"
    expiry = tasks["aegis.workflows.expire_overrides"]
    assert (expiry.interval.every, expiry.interval.period) == (5, "minutes")
    assert "aegis.workflows.expire_overrides" in celery_app.tasks


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_backup_is_replaced_and_the_backup_happens_exactly_once(start_worker, client):
    # Enough that writing the (encrypted) backup takes seconds, so the kill lands mid-way; the
    # assertion after the kill checks that it did.
    make_workflows(WORKFLOWS)
    day = date(2026, 11, 20)
    first = start_worker()
    client.send_task("aegis.backup.daily", args=[day.isoformat()])
    wait_for(lambda: BackupRun.objects.filter(day=day, outcome=BackupRun.Outcome.RUNNING).exists(), 60,
             "the backup task to start")
    time.sleep(0.3)  # well inside writing the file
    first.kill()
    assert not BackupRun.objects.filter(day=day, outcome=BackupRun.Outcome.SUCCEEDED).exists(), \
        "the backup finished before the worker was killed; the test proves nothing"
    final = scheduled_backup_path(day).name
    start_worker()
    # Redelivery waits for the broker's periodic restore of unacknowledged messages, which took
    # up to ~100 s here; then the whole (encrypted) backup is written again.
    wait_for(lambda: BackupRun.objects.filter(day=day, outcome=BackupRun.Outcome.SUCCEEDED).exists(), 300,
             "the redelivered backup task to finish")
    time.sleep(VISIBILITY_TIMEOUT + 1)  # a duplicate delivery would show up by now
    files = sorted(p.name for p in start_worker.backup_dir.iterdir() if p.name != BACKUP_LOCK_FILE)
    assert files == [final], files
    assert BackupRun.objects.filter(day=day).count() == 1
    manifest = check_backup(start_worker.backup_dir / final)
    assert manifest["counts"]["workflows"] == WORKFLOWS
    log = start_worker.log.read_text()
    assert log.count("Task aegis.backup.daily[") - log.count("] succeeded") == 2, "the task was not redelivered"
    assert log.count("] succeeded") == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_drift_report_task_on_a_real_worker_runs_once_per_day(start_worker, client):
    customer = Customer.objects.create(name="Acme", tier=Tier.objects.get(name="team"))
    DriftBaseline.objects.create(customer=customer, values=[0.01 * (i % 10) for i in range(100)], source="test",
                                 created_by="test")
    start_worker()
    day = date.today().isoformat()
    first = client.send_task("aegis.drift.report", args=[customer.pk, day]).get(timeout=60)
    second = client.send_task("aegis.drift.report", args=[customer.pk, day]).get(timeout=60)
    # No decisions yet: not enough current data, so no report and a clear reason.
    assert first["report_id"] is None and "at least" in first["message"]
    assert second == first
    assert DriftReport.objects.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failed_webhook_is_retried_by_a_real_worker_after_its_backoff(start_worker, client, monkeypatch):
    sys.path.insert(0, str(ROOT / "tests" / "notifications"))
    from notifications.models import NotificationDelivery, NotificationEvent
    from notifications.tasks import backoff
    from notify_support import WEBHOOK_SECRET, WebhookReceiver

    event = NotificationEvent.objects.create(key="backup-run:test", kind=NotificationEvent.Kind.BACKUP_FAILED,
                                             subject="Scheduled backup of 2026-11-20 failed",
                                             payload={"event": "backup.failed", "subject": "Scheduled backup failed"})
    delivery = NotificationDelivery.objects.create(event=event, channel=NotificationDelivery.Channel.WEBHOOK)
    with WebhookReceiver(status=503) as hook:
        monkeypatch.setenv("AEGIS_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("AEGIS_WEBHOOK_SECRET", WEBHOOK_SECRET)
        start_worker()
        client.send_task("aegis.notifications.deliver", args=[delivery.pk])
        wait_for(lambda: NotificationDelivery.objects.filter(pk=delivery.pk, status="failed").exists(), 60,
                 "the first attempt to fail")
        failed_at = time.monotonic()
        hook.status = 204  # the receiver is back
        wait_for(lambda: NotificationDelivery.objects.filter(pk=delivery.pk, status="sent").exists(),
                 backoff(0) + 60, "the retry to deliver it")
        waited = time.monotonic() - failed_at
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_error) == (2, "")
    assert waited >= backoff(0) - 1, f"retried after {waited:.1f} s, before its backoff"
    assert len(hook.requests) == 2 and hook.requests[0][1] == hook.requests[1][1]  # the same signed body
