"""Deployment checks (`manage.py check --deploy`)."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def fernet_keys_are_set(app_configs, **kwargs):
    """Without FERNET_KEYS, PII is encrypted under a key derived from SECRET_KEY: rotating
    SECRET_KEY (as one does after a leak) would then make every encrypted value unreadable."""
    if settings.FERNET_KEYS == [settings.SECRET_KEY]:
        return [checks.Warning(
            "FERNET_KEYS is not set: PII is encrypted under SECRET_KEY, so changing SECRET_KEY would make it "
            "unreadable.", hint="Set FERNET_KEYS to a long random key of its own (keep it with your backups).",
            id="aegis.W001")]
    return []
