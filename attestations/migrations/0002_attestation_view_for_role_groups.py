"""The Risk Lead and Security Lead groups may read attestations (issue 14): the attestation
pages, and the attestations listed on a decision page, need `attestations.view_attestation`;
both roles check what a pipeline shipped. Going back takes the permission away again."""

import importlib

from django.db import migrations

ROLE_GRANTS = importlib.import_module("governance.migrations.0014_telemetry_view_for_role_groups")


class Migration(migrations.Migration):
    dependencies = [
        ("attestations", "0001_initial"),
        ("governance", "0014_telemetry_view_for_role_groups"),
        ("workflows", "0002_append_only_and_roles"),
    ]

    operations = [ROLE_GRANTS.role_group_permission("attestations", "view_attestation")]
