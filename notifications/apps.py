from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from . import checks, receivers  # noqa: F401  (registers the deploy checks and signal receivers)
