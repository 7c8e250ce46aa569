from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """The append-only ledger of everything that must not vanish (docs/operations.md,
    "The ledger and its anchors")."""

    name = "ledger"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy check)
