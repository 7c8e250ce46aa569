from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        from . import checks  # noqa: F401  (registers the deployment checks)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
