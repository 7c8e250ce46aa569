"""Steps of the production-profile test that need the deployment's own Django (its database
and FERNET_KEYS), run as `honcho run python tests/integration/profile_setup.py STEP …` with
the deployment's environment file, as an operator runs manage.py. Each prints one JSON line.

  seed TENANTS WORKFLOWS SEAL_SECONDS   tenants (enterprise tier) with one API key each, a
                                        history of chained workflows, sealing every SEAL_SECONDS
  backup-at ISO_TIME                    the daily backup runs at ISO_TIME (UTC), then every day
  report DAY CUSTOMER_ID …              what is stored: decisions, the day's backup runs and file
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, as manage.py has it
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

import django  # noqa: E402

django.setup()

from django_celery_beat.models import IntervalSchedule, PeriodicTask  # noqa: E402

from governance import services  # noqa: E402
from governance.models import Decision, TelemetryEvent, Tier  # noqa: E402
from governance.telemetry import Event  # noqa: E402
from seed_support import make_workflows  # noqa: E402
from workflows.backup import check_backup  # noqa: E402
from workflows.operations import scheduled_backup_path  # noqa: E402
from workflows.persistence.models import BackupRun  # noqa: E402


def seed(tenants: str, workflows: str, seal_seconds: str) -> dict:
    enterprise = Tier.objects.get(name="enterprise")
    made = [services.create_customer(f"Profile integration {n}", tier=enterprise) for n in range(int(tenants))]
    make_workflows(int(workflows))
    every, _ = IntervalSchedule.objects.get_or_create(every=int(seal_seconds), period=IntervalSchedule.SECONDS)
    sealing = PeriodicTask.objects.get(task="aegis.decisions.seal")
    sealing.interval = every
    sealing.save()  # saving tells a running beat to reload its schedule
    return {"tenants": [{"customer_id": customer.customer_id, "key": plaintext}
                        for customer, _, plaintext in made]}


def backup_at(moment: str) -> dict:
    """Make the daily backup run every day from `moment` on: an interval of one day with a
    start time, which beat keeps to the second (a crontab names minutes, and beat loads only
    crontabs due within about two hours)."""
    daily = PeriodicTask.objects.get(task="aegis.backup.daily")
    daily.interval, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.DAYS)
    daily.crontab = None
    daily.start_time = datetime.fromisoformat(moment)
    daily.last_run_at = None  # with a start time, beat runs it at the start time first
    daily.save()  # saving tells a running beat to reload its schedule
    return {"start_time": daily.start_time.isoformat()}


def report(day: str, *customer_ids: str) -> dict:
    decided = Counter(str(decision_id) for decision_id in Decision.objects.filter(
        customer__customer_id__in=customer_ids).values_list("decision_id", flat=True))
    path = scheduled_backup_path(date.fromisoformat(day))
    return {
        "decisions": decided,
        "backup_runs": [{"day": run.day.isoformat(), "outcome": run.outcome, "path": run.path}
                        for run in BackupRun.objects.all()],
        "backups_succeeded": TelemetryEvent.objects.filter(name=Event.BACKUP_SUCCEEDED).count(),
        "backup_files": sorted(p.name for p in path.parent.iterdir()),
        "manifest": check_backup(path) if path.exists() else None,
    }


if __name__ == "__main__":
    step, *arguments = sys.argv[1:]
    steps = {"seed": seed, "backup-at": backup_at, "report": report}
    print(json.dumps(steps[step](*arguments)))
