"""Scheduled operations next to the drift task (PLATFORM.md §5, §4): the daily backup with
rotation (settings.AEGIS_BACKUP_KEEP = 7), stale partial files, and the chain verification
run whose failure every staff page shows (id="audit-alert")."""

from __future__ import annotations

import os
import threading
import time as time_module
from datetime import date, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from governance.engine.inputs import parse_proposal
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import drop_append_only_triggers, https_client
from workflows import operations, services as workflow_services, tasks as workflow_tasks
from workflows.machines import Actor
from workflows.persistence.models import BackupRun, ChainVerificationRun, WorkflowTransition
from governance import services as governance_services
from governance.models import TelemetryEvent
from governance.telemetry import Event

pytestmark = pytest.mark.django_db

FIRST = date(2025, 1, 1)
NINE_DAYS = [FIRST + timedelta(days=i) for i in range(9)]


def _name(day: date) -> str:
    return f"aegis-backup-{day.isoformat()}.json.gz"


def _files(directory) -> list[str]:
    """The files in BACKUP_DIR, without the lock file concurrent backups take on SQLite."""
    return sorted(p.name for p in directory.iterdir() if p.name != operations.BACKUP_LOCK_FILE)


@pytest.fixture
def backup_dir(tmp_path):
    with override_settings(BACKUP_DIR=tmp_path):
        yield tmp_path


@pytest.fixture
def count_writes(monkeypatch):
    """Counts calls of the real write_backup made by run_scheduled_backup."""
    calls = []
    real = operations.write_backup

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(operations, "write_backup", counting)
    return calls


# --- backups ---------------------------------------------------------------------------------

def test_rotation_keeps_the_newest_seven_by_date(backup_dir, count_writes):
    assert settings.AEGIS_BACKUP_KEEP == 7
    for day in NINE_DAYS:
        run = workflow_tasks.daily_backup.delay(day.isoformat()).get()  # the eager Celery task
        assert run["outcome"] == BackupRun.Outcome.SUCCEEDED
    assert len(count_writes) == 9
    assert _files(backup_dir) == [_name(day) for day in NINE_DAYS[2:]]
    # Every day's run is recorded, whether or not its file is still kept.
    assert list(BackupRun.objects.order_by("day").values_list("day", "outcome")) == [
        (day, BackupRun.Outcome.SUCCEEDED) for day in NINE_DAYS]


def test_rotation_is_by_date_not_by_write_order(backup_dir):
    # Written newest first: the oldest by date go, whatever was written last.
    for day in reversed(NINE_DAYS[2:]):
        operations.run_scheduled_backup(day)
    operations.run_scheduled_backup(NINE_DAYS[1])  # an eighth, older than all: rotated at once
    assert _files(backup_dir) == [_name(day) for day in NINE_DAYS[2:]]


def test_a_completed_day_is_not_written_twice(backup_dir, count_writes):
    for day in NINE_DAYS:
        operations.run_scheduled_backup(day)
    newest = BackupRun.objects.get(day=NINE_DAYS[-1])
    mtime = (backup_dir / _name(NINE_DAYS[-1])).stat().st_mtime_ns
    count_writes.clear()

    again = operations.run_scheduled_backup(NINE_DAYS[-1])  # a redelivered task

    assert count_writes == []
    assert (again.pk, again.sha256, again.finished_at) == (newest.pk, newest.sha256, newest.finished_at)
    assert (backup_dir / _name(NINE_DAYS[-1])).stat().st_mtime_ns == mtime
    assert BackupRun.objects.count() == 9


def test_a_completed_day_whose_file_was_rotated_away_is_not_written_again(backup_dir, count_writes):
    """Regression (fixed in e712ce8): run_scheduled_backup returned a SUCCEEDED run unchanged
    only while its file existed. For a day already rotated out, a redelivered task wrote a
    whole new backup (today's data under that day's name), overwrote the run's
    sha256/counts/finished_at with it, and the rotation deleted the file again."""
    for day in NINE_DAYS:
        operations.run_scheduled_backup(day)
    oldest = BackupRun.objects.get(day=FIRST)
    count_writes.clear()

    again = operations.run_scheduled_backup(FIRST)

    assert _files(backup_dir) == [_name(day) for day in NINE_DAYS[2:]]
    assert count_writes == [], "a completed (rotated) day was written a second time"
    assert again.finished_at == oldest.finished_at


def test_stale_partial_files_are_removed_and_a_fresh_one_is_kept(backup_dir):
    for day in NINE_DAYS[:8]:
        operations.run_scheduled_backup(day)
    two_days_ago = time_module.time() - 2 * 86400
    stale = backup_dir / (_name(date(2024, 12, 1)) + ".partial")  # a crashed run, long ago
    stale.write_bytes(b"half a backup")
    os.utime(stale, (two_days_ago, two_days_ago))
    finished = backup_dir / (_name(NINE_DAYS[7]) + ".partial")  # its final file exists
    finished.write_bytes(b"left over")
    in_progress = backup_dir / (_name(date(2025, 2, 1)) + ".partial")  # a run writing right now
    in_progress.write_bytes(b"being written")

    operations.run_scheduled_backup(NINE_DAYS[8])

    assert not stale.exists() and not finished.exists()
    assert in_progress.exists()
    assert _files(backup_dir) == sorted([_name(day) for day in NINE_DAYS[2:]] + [in_progress.name])


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_write_the_day_once(backup_dir, monkeypatch):
    """Two workers may run the same day's task at once (a slow backup outlives the broker's
    visibility timeout and is handed out again). The second waits for the first, then
    returns its run: one write, one file, one backup.succeeded event. Before, both passed
    the "already succeeded?" check and wrote into the same .partial file together."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory SQLite database is not shared between threads")
    writing, release = threading.Event(), threading.Event()
    writes, results, errors = [], [], []
    real = operations.write_backup

    def slow_write(path):
        writes.append(path)
        writing.set()
        assert release.wait(timeout=30)
        return real(path)

    monkeypatch.setattr(operations, "write_backup", slow_write)

    def deliver():
        try:
            results.append(operations.run_scheduled_backup(FIRST))
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    first, second = threading.Thread(target=deliver), threading.Thread(target=deliver)
    first.start()
    assert writing.wait(timeout=30)
    second.start()
    second.join(timeout=1.5)
    try:
        assert second.is_alive(), "the second delivery did not wait for the backup being written"
        assert len(writes) == 1
    finally:
        release.set()
        first.join(timeout=60)
        second.join(timeout=60)

    assert errors == [] and len(results) == 2
    assert len(writes) == 1, "the day was written twice"
    assert {run.outcome for run in results} == {BackupRun.Outcome.SUCCEEDED}
    assert results[0].pk == results[1].pk and results[0].sha256 == results[1].sha256
    assert _files(backup_dir) == [_name(FIRST)]
    assert TelemetryEvent.objects.filter(name=Event.BACKUP_SUCCEEDED).count() == 1


# --- chain verification and the staff banner ------------------------------------------------------

SUBMITTER = Actor("submitter", id=None, roles=frozenset())


def _workflows(n: int):
    return [governance_services.submit_proposal(parse_proposal({"proposal_summary": f"Change {i}"}),
                                              actor=SUBMITTER) for i in range(n)]


def _page(client, path: str) -> str:
    response = client.get(path, secure=True)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


def test_verification_run_records_the_broken_count_and_staff_see_the_banner(make_user):
    workflows = _workflows(3)
    staff, plain = make_user("stella", staff=True), make_user("paul")
    staff_client, plain_client = https_client(staff), https_client(plain)

    clean = workflow_tasks.verify_chains.delay().get()  # the eager Celery task
    assert clean == {"checked": 7, "broken": 0}  # three workflow chains, their three (sealed) decisions, configuration v1
    assert 'id="audit-alert"' not in _page(staff_client, "/workflows/")

    # Tamper with one stored transition (the append-only trigger dropped first).
    target = workflows[1]
    drop_append_only_triggers()
    original_reason = WorkflowTransition.objects.get(workflow=target, seq=1).reason
    WorkflowTransition.objects.filter(workflow=target, seq=1).update(reason="rewritten after the fact")

    run = operations.verify_all_chains()
    stored = ChainVerificationRun.objects.get(pk=run.pk)
    assert (stored.checked, stored.broken) == (7, 1) and stored.finished_at is not None and not stored.ok
    assert [f["workflow_id"] for f in stored.failures] == [str(target.workflow_id)]
    assert stored.failures[0]["message"].startswith("seq 1: hash mismatch")

    page = _page(staff_client, "/workflows/")
    assert 'id="audit-alert"' in page and "1 of 7 audit records (workflow chains, decisions, attestations and configuration versions) are broken" in page
    assert str(target.workflow_id) in page
    admin = _page(staff_client, "/admin/")
    assert 'id="audit-alert"' in admin and "1 of 7 audit records (workflow chains, decisions, attestations and configuration versions) are broken" in admin
    assert 'id="audit-alert"' in _page(staff_client, "/drift/")  # every staff page
    assert 'id="audit-alert"' not in _page(plain_client, "/workflows/")
    assert 'id="audit-alert"' not in _page(plain_client, "/drift/")

    # Repaired and verified again: the newest run is clean, the banner goes.
    WorkflowTransition.objects.filter(workflow=target, seq=1).update(reason=original_reason)
    assert operations.verify_all_chains().broken == 0
    assert 'id="audit-alert"' not in _page(staff_client, "/workflows/")
