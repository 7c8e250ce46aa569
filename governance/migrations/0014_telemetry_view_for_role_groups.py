"""The Risk Lead and Security Lead groups may read the telemetry page (issue 13): both act on
what it shows (calibrations, overrides, drift, backups), and without the permission a
security lead was refused /telemetry/. Going back takes the permission away again.

`role_group_permission` is the one way a migration gives the role groups a permission
(attestations.migrations.0002 uses it too)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_GROUPS = ["Risk Lead", "Security Lead"]


def _permission(apps, app_label: str, codename: str):
    """The permission row, created first if this database never ran post_migrate for it."""
    app = apps.get_app_config(app_label)
    app.models_module = True
    create_permissions(app, apps=apps, verbosity=0)
    app.models_module = None
    return apps.get_model("auth", "Permission").objects.get(content_type__app_label=app_label, codename=codename)


def role_group_permission(app_label: str, codename: str) -> migrations.RunPython:
    """Grant `app_label.codename` to the role groups; backwards, take it away again."""
    def grant(apps, schema_editor):
        permission = _permission(apps, app_label, codename)
        Group = apps.get_model("auth", "Group")
        for name in ROLE_GROUPS:
            Group.objects.get_or_create(name=name)[0].permissions.add(permission)

    def revoke(apps, schema_editor):
        permission = _permission(apps, app_label, codename)
        for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS):
            group.permissions.remove(permission)

    return migrations.RunPython(grant, revoke)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0013_usage_all_channels"),
        ("workflows", "0002_append_only_and_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [role_group_permission("governance", "view_telemetryevent")]
