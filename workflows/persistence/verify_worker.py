"""The worker-process side of parallel chain verification (DurableWorkflowEngine.verify_all).

Workers are started with 'spawn': a fresh interpreter shares no socket, lock or thread
with its parent (a forked copy of a psycopg connection pool would). So this module imports
no Django model at import time: `start` first points the settings at the parent's database
(under pytest that is the test database) and sets Django up."""

from __future__ import annotations

import os
from typing import Any


def start(settings_module: str, database: dict[str, Any]) -> None:
    """Each worker's initializer: the parent's settings module and its default database."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django
    from django.conf import settings

    settings.DATABASES = {**settings.DATABASES, "default": database}
    django.setup()


def verify_range(depth: str, seal: bool, lo: int, hi: int) -> list:
    """The ChainReports of the workflows with lo < id <= hi (sealing what it finds valid, with `seal`)."""
    from .durable import DurableWorkflowEngine

    return DurableWorkflowEngine(depth=depth, seal=seal).reports_between(lo, hi)
