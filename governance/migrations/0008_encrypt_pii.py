"""Encrypt PLATFORM.md §7's PII at rest: decisions, telemetry events and drift baselines.

Every existing value is re-written encrypted under the first of FERNET_KEYS; see
governance.encryption_migration.
"""

from django.db import migrations, models

from governance.encryption_migration import encrypt_columns


class Migration(migrations.Migration):
    dependencies = [("governance", "0007_decision_drift_index")]

    operations = [
        *encrypt_columns("decision", {
            "proposal_summary": models.TextField(),
            "agent_id": models.TextField(blank=True),
            "session_id": models.TextField(blank=True),
            "metadata": models.JSONField(default=dict, blank=True),
        }, app_label="governance"),
        *encrypt_columns("telemetryevent", {
            "actor": models.TextField(blank=True),
            "data": models.JSONField(default=dict, blank=True),
        }, app_label="governance"),
        *encrypt_columns("driftbaseline", {"created_by": models.CharField(max_length=150)}, app_label="governance"),
    ]
