"""Encrypt the PII of calibration: who proposed, why, and who authored a version.

Every existing value is re-written encrypted under the first of FERNET_KEYS; see
governance.encryption_migration.
"""

from django.db import migrations, models

from governance.encryption_migration import encrypt_columns


class Migration(migrations.Migration):
    dependencies = [("calibration", "0003_companion_changes"), ("governance", "0008_encrypt_pii")]

    operations = [
        *encrypt_columns("calibrationproposal", {
            "justification": models.TextField(),
            "proposed_by": models.TextField(),
        }, app_label="calibration"),
        *encrypt_columns("configurationversion", {"author": models.CharField(max_length=150)},
                         app_label="calibration"),
    ]
