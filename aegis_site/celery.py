"""The Celery app. Broker and result backend come from REDIS_URL; without it every task
runs eagerly in the calling process, so the app needs no extra service (`make run`)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

app = Celery("aegis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
