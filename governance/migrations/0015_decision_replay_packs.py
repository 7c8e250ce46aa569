"""Pre-packed replay days for the calibration preview (governance.replay_packs): the table,
packs for the existing decisions' closed days, and the hourly packing schedule (editable in
the admin). Reversing drops the schedule and the table (the packs are derived data)."""

import django.utils.timezone
from django.db import migrations, models

SCHEDULE = ("Replay packing", "aegis.decisions.pack_replay", 60)  # periodic task name, task, minutes


def build_packs(apps, schema_editor):
    from governance.replay_packs import pack_closed_days

    pack_closed_days(decision_model=apps.get_model("governance", "Decision"),
                     pack_model=apps.get_model("governance", "DecisionReplayPack"))


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
        ('governance', '0014_telemetry_view_for_role_groups'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='DecisionReplayPack',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField(unique=True)),
                ('count', models.PositiveIntegerField()),
                ('ids', models.BinaryField(help_text="The decisions' primary keys, little-endian int64, ascending.")),
                ('vectors', models.BinaryField(help_text='Their replay vectors (governance.engine.replay), in the same order.')),
                ('packed_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['day'],
            },
        ),
        migrations.AddIndex(
            model_name='decision',
            index=models.Index(fields=['created_at'], name='decision_time'),
        ),
        migrations.RunPython(build_packs, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
