"""The default schedule of decision sealing (editable in the admin): every 5 minutes, so a
decision waits at most that long, plus one run, to be sealed (docs/decisions.md)."""

from django.db import migrations

SCHEDULE = ("Decision sealing", "aegis.decisions.seal", 5)  # periodic task name, task, minutes


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    name, task, minutes = SCHEDULE
    interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
    PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE[0]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0011_decision_seals"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
