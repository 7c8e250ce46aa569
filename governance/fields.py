"""The one place that decides how PII columns are stored.

Every PII column of the project (PLATFORM.md §7) is declared through these two
functions, so encrypting them at rest is a change here and a migration, nothing else.
"""

from django.db import models


def pii_text_field(**options) -> models.Field:
    """A text column holding personal or confidential data."""
    return models.TextField(**options)


def pii_json_field(**options) -> models.Field:
    """A JSON column holding personal or confidential data."""
    return models.JSONField(**options)
