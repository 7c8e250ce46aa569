"""Idempotency records keep their response encrypted (it may hold a new key's plaintext).

The column changes type, so it is dropped and re-added: stored replays (kept 24 hours
only) are discarded, which at worst lets a retry within that day run again.
"""

from django.db import migrations

import governance.fields


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_drift_baselines_and_reports")]

    operations = [
        migrations.RunSQL("DELETE FROM governance_idempotencyrecord", migrations.RunSQL.noop),
        migrations.RemoveField(model_name="idempotencyrecord", name="response_body"),
        migrations.AddField(model_name="idempotencyrecord", name="response_body",
                            field=governance.fields.EncryptedField(null=True, value_type="json")),
    ]
