"""The default tiers. Self-hosted: no prices; administrators edit them in the admin."""

from django.db import migrations

TIERS = [
    # name, display name, evaluations/month, requests/minute, max keys, features
    ("free", "Free", 1_000, 60, 2, ["evaluate", "risk-check"]),
    ("team", "Team", 100_000, 600, 10, ["evaluate", "risk-check", "calibration", "workflows"]),
    ("enterprise", "Enterprise", 10_000_000, 6_000, 100,
     ["evaluate", "risk-check", "calibration", "workflows", "drift-monitoring"]),
]


def create_tiers(apps, schema_editor):
    Tier = apps.get_model("governance", "Tier")
    for name, display, monthly, rate, keys, features in TIERS:
        Tier.objects.get_or_create(name=name, defaults={
            "display_name": display, "monthly_evaluations": monthly, "rate_per_minute": rate,
            "max_keys": keys, "features": features})


def delete_tiers(apps, schema_editor):
    apps.get_model("governance", "Tier").objects.filter(name__in=[t[0] for t in TIERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [migrations.RunPython(create_tiers, delete_tiers)]
