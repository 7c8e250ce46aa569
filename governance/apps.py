from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        from . import checks  # noqa: F401  (registers the deployment checks)
        from .api import errors, schema  # noqa: F401  (server-error reporting; the OpenAPI auth extension)
