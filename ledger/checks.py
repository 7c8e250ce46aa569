"""Deploy check: without AEGIS_ANCHOR_KEY nothing outside the database anchors the ledger."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def anchor_key_set(app_configs, **kwargs):
    if settings.AEGIS_ANCHOR_KEY:
        return []
    return [Warning(
        "AEGIS_ANCHOR_KEY is not set: the ledger's head is not anchored outside the database and backups are "
        "not authenticated, so a database rolled back to an older copy or an edited backup is not detected.",
        hint="Set AEGIS_ANCHOR_KEY to a long random secret kept outside the database (see docs/operations.md, "
             "'The ledger and its anchors').",
        id="ledger.W001")]
