from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
