"""Configuration version 1 from the interface contract; the approve permission for the
Risk Lead group; the system actor `drift-monitor` (a user that cannot log in)."""

import hashlib
import json

from django.contrib.auth.management import create_permissions
from django.db import migrations

SYSTEM_ACTORS = ["drift-monitor"]


def create_version_one(apps, schema_editor):
    from governance.engine.config import AegisConfig, contract_version

    ConfigurationVersion = apps.get_model("calibration", "ConfigurationVersion")
    if ConfigurationVersion.objects.exists():
        return
    parameters = AegisConfig.default().to_dict()
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    ConfigurationVersion.objects.create(version=1, parameters=parameters, content_hash=digest,
                                        source="schema_default", source_ref=f"interface-contract {contract_version()}",
                                        author="system")


def grant_approve_permission(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Risk Lead")
    wanted = ["approve_calibrationproposal", "view_calibrationproposal", "view_configurationversion"]
    group.permissions.add(*Permission.objects.filter(content_type__app_label="calibration", codename__in=wanted))


def create_system_actors(apps, schema_editor):
    User = apps.get_model("auth", "User")
    for name in SYSTEM_ACTORS:
        user, created = User.objects.get_or_create(username=name, defaults={"is_active": True})
        if created:
            user.password = "!system-actor-cannot-log-in"  # an unusable password hash
            user.save(update_fields=["password"])


class Migration(migrations.Migration):
    dependencies = [
        ("calibration", "0001_initial"),
        ("workflows", "0002_append_only_and_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_version_one, migrations.RunPython.noop),
        migrations.RunPython(grant_approve_permission, migrations.RunPython.noop),
        migrations.RunPython(create_system_actors, migrations.RunPython.noop),
    ]
