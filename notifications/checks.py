"""Deployment checks (`manage.py check --deploy`) of the notification settings. A webhook
URL without its secret is refused earlier, by the settings themselves."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@checks.register(checks.Tags.compatibility, deploy=True)
def notification_settings(app_configs, **kwargs):
    found = []
    if settings.EMAIL_BACKEND == CONSOLE_BACKEND:
        found.append(checks.Warning(
            "EMAIL_HOST is not set: notification emails are printed to the server's output instead of sent.",
            hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS or "
                 "EMAIL_USE_SSL, DEFAULT_FROM_EMAIL) to your SMTP server.", id="notifications.W001"))
    if urlsplit(settings.AEGIS_PUBLIC_URL).hostname in LOOPBACK:
        found.append(checks.Warning(
            f"AEGIS_PUBLIC_URL is {settings.AEGIS_PUBLIC_URL}: links in notification emails and webhooks would "
            "point at the recipient's own machine.",
            hint="Set AEGIS_PUBLIC_URL to the address people open AEGIS at, e.g. https://aegis.example.com.",
            id="notifications.W002"))
    return found
