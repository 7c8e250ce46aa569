"""Chain the configuration versions: each stored version gets its chain hash, in version
order, over what it is now (calibration/integrity.py then checks whether it may be served)."""

from django.db import migrations, models

from calibration.chain import GENESIS_CHAIN_HASH, chain_hash_of


def fill_chain_hashes(apps, schema_editor):
    ConfigurationVersion = apps.get_model("calibration", "ConfigurationVersion")
    previous = GENESIS_CHAIN_HASH
    for version in ConfigurationVersion.objects.order_by("version"):
        version.chain_hash = chain_hash_of(version=version.version, content_hash=version.content_hash,
                                           source=version.source, source_ref=version.source_ref,
                                           parent_chain_hash=previous, created_at=version.created_at)
        version.save(update_fields=["chain_hash"])
        previous = version.chain_hash


class Migration(migrations.Migration):
    dependencies = [("calibration", "0004_encrypt_pii")]

    operations = [
        migrations.AddField(
            model_name="configurationversion", name="chain_hash",
            field=models.CharField(blank=True, default="", max_length=64,
                                   help_text="SHA-256 over this version and the chain hash of the one before it."),
        ),
        migrations.RunPython(fill_chain_hashes, migrations.RunPython.noop),
    ]
