"""Backups, audit verifications and drift reports happen in Celery workers and commands,
not in the web server: /metrics reads them from the database, so they show whichever
process (or host) did the work."""

from datetime import date, timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from governance import drift, services
from governance.models import DriftReport, Tier
from governance.telemetry import Event, emit
from workflows.machines import Actor
from workflows.models import ChainVerificationRun
from workflows.operations import verify_all_chains

pytestmark = pytest.mark.django_db


def samples() -> dict[tuple[str, tuple], float]:
    response = Client().get("/metrics", secure=True)
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def report(customer, day: date, kl: float) -> DriftReport:
    baseline = customer.drift_baselines.first() or drift.set_baseline(
        customer, [0.05, 0.06, 0.04] * 10, actor=Actor("rita"), source="test")
    return DriftReport.objects.create(customer=customer, day=day, baseline=baseline, kl_divergence=kl,
                                      status="normal", action="none", message="", n_current=10, n_baseline=30,
                                      tau_warning=0.3, tau_critical=0.5, config_version=1)


def test_nothing_done_yet_reads_zero():
    values = samples()
    assert values[("aegis_backups_total", (("result", "succeeded"),))] == 0
    assert values[("aegis_backups_total", (("result", "failed"),))] == 0
    assert values[("aegis_audit_verifications_total", (("result", "valid"),))] == 0
    assert not [key for key in values if key[0] == "aegis_drift_kl_divergence"]


def test_work_recorded_by_other_processes_is_counted():
    """Rows as a Celery worker leaves them (nothing counted in this process's memory)."""
    with transaction.atomic():
        for _ in range(2):
            emit(Event.BACKUP_SUCCEEDED, actor="aegis-scheduler", subject="aegis-backup.json.gz")
        emit(Event.BACKUP_FAILED, actor="aegis-scheduler", subject="aegis-backup.json.gz")
        emit(Event.BACKUP_RESTORED, actor="aegis-restore", subject="aegis-backup.json.gz")  # not a backup
    now = timezone.now()
    ChainVerificationRun.objects.create(finished_at=now, checked=4, broken=0)
    ChainVerificationRun.objects.create(finished_at=now, checked=4, broken=2)
    ChainVerificationRun.objects.create(checked=0)  # still running: not counted yet
    acme, _, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    zeta, _, _ = services.create_customer("Zeta", tier=Tier.objects.get(name="team"))
    today = date(2026, 11, 26)
    report(acme, today - timedelta(days=1), 0.9)
    report(acme, today, 0.25)
    report(zeta, today - timedelta(days=3), 0.6)

    values = samples()
    assert values[("aegis_backups_total", (("result", "succeeded"),))] == 2
    assert values[("aegis_backups_total", (("result", "failed"),))] == 1
    assert values[("aegis_audit_verifications_total", (("result", "valid"),))] == 1
    assert values[("aegis_audit_verifications_total", (("result", "broken"),))] == 1
    assert values[("aegis_drift_kl_divergence", (("tenant", acme.customer_id),))] == 0.25  # the newest day
    assert values[("aegis_drift_kl_divergence", (("tenant", zeta.customer_id),))] == 0.6


def test_a_verification_run_here_is_counted_once():
    before = samples()[("aegis_audit_verifications_total", (("result", "valid"),))]
    verify_all_chains()
    assert samples()[("aegis_audit_verifications_total", (("result", "valid"),))] == before + 1


def test_last_successes_read_zero_until_there_is_one():
    values = samples()
    assert values[("aegis_backup_last_success_timestamp_seconds", ())] == 0
    assert values[("aegis_audit_verification_last_success_timestamp_seconds", ())] == 0
    assert values[("aegis_audit_verification_broken_chains", ())] == 0


def test_last_successful_backup_and_verification_and_the_newest_run_broken_chains():
    before = timezone.now()
    with transaction.atomic():
        emit(Event.BACKUP_SUCCEEDED, actor="aegis-scheduler", subject="a.json.gz")
    after = timezone.now()
    with transaction.atomic():
        emit(Event.BACKUP_FAILED, actor="aegis-scheduler", subject="b.json.gz")  # a failure is no success
    first, second = timezone.now() - timedelta(hours=30), timezone.now() - timedelta(hours=2)
    ChainVerificationRun.objects.create(finished_at=first, checked=4, broken=0)
    ChainVerificationRun.objects.create(finished_at=second, checked=4, broken=3)
    ChainVerificationRun.objects.create(checked=0)  # still running: not the newest finished run

    values = samples()
    assert before.timestamp() <= values[("aegis_backup_last_success_timestamp_seconds", ())] <= after.timestamp()
    assert values[("aegis_audit_verification_last_success_timestamp_seconds", ())] == pytest.approx(first.timestamp())
    assert values[("aegis_audit_verification_broken_chains", ())] == 3

    ChainVerificationRun.objects.create(finished_at=timezone.now(), checked=4, broken=0)  # repaired and re-run
    assert samples()[("aegis_audit_verification_broken_chains", ())] == 0


def test_drift_thresholds_of_each_tenant_newest_report():
    acme, _, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    today = date(2026, 11, 26)
    older = report(acme, today - timedelta(days=1), 0.9)
    DriftReport.objects.filter(pk=older.pk).update(tau_warning=0.1, tau_critical=0.2)
    report(acme, today, 0.25)
    values = samples()
    assert values[("aegis_drift_kl_threshold", (("level", "warning"), ("tenant", acme.customer_id)))] == 0.3
    assert values[("aegis_drift_kl_threshold", (("level", "critical"), ("tenant", acme.customer_id)))] == 0.5
