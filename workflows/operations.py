"""Scheduled operations: the daily backup with rotation and the chain verification run
(workflow chains, sealed decisions, signed attestations and configuration versions). Both
are idempotent so that a redelivered task (a worker killed mid-way) finishes the work
exactly once."""

from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from attestations import audit as attestation_audit
from calibration.integrity import verify_all_versions
from governance import sealing
from governance.signals import send_after_commit
from governance.telemetry import Event, emit
from ledger.audit import audit_ledger

from .backup import write_backup
from .persistence.durable import DurableWorkflowEngine
from .persistence.models import BackupRun, ChainVerificationRun, VerificationDepth
from .signals import backup_failed, chains_verified

BACKUP_PATTERN = "aegis-backup-*.json.gz"
FAILURES_KEPT = 50
# PostgreSQL advisory lock key of the scheduled backup (any fixed 64-bit number).
BACKUP_LOCK_KEY = int.from_bytes(hashlib.sha256(b"aegis.scheduled-backup").digest()[:8], "big", signed=True)
BACKUP_LOCK_FILE = ".aegis-backup.lock"


def scheduled_backup_path(day: date) -> Path:
    return Path(settings.BACKUP_DIR) / f"aegis-backup-{day.isoformat()}.json.gz"


@contextmanager
def exclusive_backup():
    """Held while a scheduled backup is written. Two deliveries of the task can run at once
    on two workers (a backup that outlives the broker's visibility timeout is handed out
    again; so is a task of a worker presumed dead): the second waits here, then finds the
    day done. Whoever holds it and dies, even by SIGKILL, releases it with its process.
    PostgreSQL: a session advisory lock, shared by every machine. SQLite (one machine): an
    flock on a file in BACKUP_DIR."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [BACKUP_LOCK_KEY])
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [BACKUP_LOCK_KEY])
            except DatabaseError:
                pass  # the connection is gone, and the lock with its session
        return
    directory = Path(settings.BACKUP_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / BACKUP_LOCK_FILE, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        yield


def run_scheduled_backup(day: date) -> BackupRun:
    """Write `day`'s backup once (a finished run is returned as it is), then keep only the
    newest AEGIS_BACKUP_KEEP scheduled backups."""
    with exclusive_backup():
        return _run_scheduled_backup(day)


def _run_scheduled_backup(day: date) -> BackupRun:
    path = scheduled_backup_path(day)
    with transaction.atomic():
        run, _ = BackupRun.objects.select_for_update().get_or_create(day=day, defaults={"path": str(path)})
        if run.outcome == BackupRun.Outcome.SUCCEEDED:
            return run  # done (its file may since have been rotated away): never written twice
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = write_backup(path)  # written beside the target and renamed: never half a file
    except Exception as exc:
        with transaction.atomic():
            BackupRun.objects.filter(pk=run.pk).update(outcome=BackupRun.Outcome.FAILED, error=str(exc)[:2000],
                                                       finished_at=timezone.now())
            emit(Event.BACKUP_FAILED, actor="aegis-scheduler", subject=path.name, data={"error": str(exc)[:500]})
            send_after_commit(backup_failed, run_id=run.pk)
        raise
    with transaction.atomic():
        BackupRun.objects.filter(pk=run.pk).update(outcome=BackupRun.Outcome.SUCCEEDED, sha256=manifest["sha256"],
                                                   counts=manifest["counts"], error="", finished_at=timezone.now())
        emit(Event.BACKUP_SUCCEEDED, actor="aegis-scheduler", subject=path.name,
             data={"sha256": manifest["sha256"], "counts": manifest["counts"]})
    rotate_backups(Path(settings.BACKUP_DIR), settings.AEGIS_BACKUP_KEEP)
    run.refresh_from_db()
    return run


def rotate_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled backups (and any stale partial file)."""
    backups = sorted(directory.glob(BACKUP_PATTERN), reverse=True)  # ISO dates sort by time
    removed = backups[keep:]
    for old in removed:
        old.unlink(missing_ok=True)
    for partial in directory.glob(BACKUP_PATTERN + ".partial"):
        if partial.with_suffix("").exists() or partial.stat().st_mtime < timezone.now().timestamp() - 86400:
            partial.unlink(missing_ok=True)
    return removed


def verify_all_chains(*, full: bool | None = None) -> ChainVerificationRun:
    """Verify every workflow chain, then seal what is unsealed and verify every decision
    against its block, then every stored attestation against its signed envelope: one run,
    counting workflows, decisions and attestations in `checked` and `broken`, keeping the
    first FAILURES_KEPT failures of each kind. `full` (default: the AEGIS_VERIFY_FULL
    setting) also re-hashes every older checkpoint; the run records which depth it used.
    The chains are split over AEGIS_VERIFY_PROCESSES worker processes."""
    full = settings.AEGIS_VERIFY_FULL if full is None else full
    depth = VerificationDepth.FULL if full else VerificationDepth.NEWEST
    run = ChainVerificationRun.objects.create(depth=depth)
    checked, broken, failures = 0, 0, []
    engine = DurableWorkflowEngine(depth=depth, processes=settings.AEGIS_VERIFY_PROCESSES, seal=True)
    by_seal = 0
    for report in engine.verify_all():
        checked += 1
        by_seal += report.by_seal
        if not report.is_valid:
            broken += 1
            if broken <= FAILURES_KEPT:
                failures.append({"workflow_id": report.workflow_id, "message": report.message})
    sealed = sealing.seal_decisions()  # sealed as they stand now, so only the broken are reported
    tally = sealing.Tally()
    decision_failures = []
    for finding in sealing.verify_decisions(tally):
        if len(decision_failures) < FAILURES_KEPT:
            decision_failures.append(finding.as_failure())
    attestations = attestation_audit.Tally()
    attestation_failures = []
    for finding in attestation_audit.verify_attestations(attestations):
        if len(attestation_failures) < FAILURES_KEPT:
            attestation_failures.append(finding.as_failure())
    checked += tally.checked + attestations.checked
    broken += tally.broken + attestations.broken
    configurations = verify_all_versions()  # each rejected version is one broken record
    checked += configurations.checked
    broken += len(configurations.rejected)
    configuration_failures = [{"configuration_version": r.version, "message": r.reason}
                              for r in configurations.rejected[:FAILURES_KEPT]]
    ledger = audit_ledger(keep=FAILURES_KEPT)  # last: everything above has been recorded and sealed by now
    broken += ledger.broken
    ledger_failures = [finding.as_failure() for finding in ledger.findings]
    with transaction.atomic():
        ChainVerificationRun.objects.filter(pk=run.pk).update(
            checked=checked, broken=broken, failures=failures + decision_failures + attestation_failures + configuration_failures
            + ledger_failures,
            finished_at=timezone.now())
        emit(Event.AUDIT_VERIFIED, actor="aegis-scheduler", subject=str(run.pk),
             data={"checked": checked, "broken": broken, "depth": str(depth), "chains_unchanged_since_sealed": by_seal,
                   "decisions": tally.checked,
                   "decisions_broken": tally.broken, "decisions_sealed_now": sealed,
                   "decisions_unsealed": tally.unsealed, "seal_head": tally.head_seq,
                   "attestations": attestations.checked, "attestations_broken": attestations.broken,
                   "configuration_versions": configurations.checked,
                   "configuration_versions_rejected": len(configurations.rejected),
                   "ledger_entries": ledger.tally.entries, "ledger_broken": ledger.broken,
                   "ledger_head": ledger.tally.head_seq, "ledger_anchor": ledger.anchor_note})
        send_after_commit(chains_verified, run_id=run.pk)
    run.refresh_from_db()
    return run


def latest_verification() -> ChainVerificationRun | None:
    return ChainVerificationRun.objects.exclude(finished_at=None).first()
