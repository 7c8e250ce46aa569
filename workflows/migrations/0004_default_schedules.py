"""The default schedules (editable in the admin): drift reports daily, backup daily,
chain verification nightly, override expiry every 5 minutes."""

from django.db import migrations

CRONTABS = {
    # task name: (periodic task name, minute, hour)
    "aegis.drift.report_all": ("Daily drift reports", "30", "0"),
    "aegis.backup.daily": ("Daily backup", "0", "1"),
    "aegis.audit.verify_chains": ("Nightly audit chain verification", "0", "2"),
}
EXPIRY_TASK = ("Override expiry", "aegis.workflows.expire_overrides", 5)


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for task, (name, minute, hour) in CRONTABS.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(minute=minute, hour=hour, day_of_week="*",
                                                           day_of_month="*", month_of_year="*", timezone="UTC")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": crontab})
    name, task, minutes = EXPIRY_TASK
    interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
    PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def delete_schedules(apps, schema_editor):
    names = [name for name, _, _ in CRONTABS.values()] + [EXPIRY_TASK[0]]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0003_backup_and_verification_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
