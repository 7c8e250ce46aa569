"""Rewrite the tables whose PII the previous migrations encrypted, so the plaintext of the
dropped columns (and of the row versions the copy replaced) leaves the database files.
Not atomic: VACUUM cannot run inside a transaction."""

from django.db import migrations

from governance.encryption_migration import purge_plaintext

ENCRYPTED_TABLES = [
    "governance_decision", "governance_telemetryevent", "governance_driftbaseline",
    "workflows_workflowinstance", "workflows_workflowtransition", "workflows_workflowcheckpoint",
    "calibration_calibrationproposal", "calibration_configurationversion",
]


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("workflows", "0005_encrypt_pii"),
        ("governance", "0009_append_only_telemetry"),
        ("calibration", "0004_encrypt_pii"),
    ]

    operations = [purge_plaintext(ENCRYPTED_TABLES)]
