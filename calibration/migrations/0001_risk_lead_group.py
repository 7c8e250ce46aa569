"""Create the "Risk Lead" group: risk leads approve calibrations and overrides.

Its permissions are granted by the migrations that create the models they cover.
"""

from django.db import migrations

RISK_LEAD_GROUP = "Risk Lead"


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=RISK_LEAD_GROUP)


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=RISK_LEAD_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_group, delete_group)]
