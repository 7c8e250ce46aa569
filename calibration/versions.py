"""The active configuration: the highest ConfigurationVersion.

Each process keeps the configs it has built, keyed by version number and content hash,
and remembers which version is the newest for AEGIS_CONFIG_CACHE_SECONDS (default 1), so
a decision costs no query for it. A version applied (or restored) in this process is used
from its next decision on; every other process picks it up within that time. Each decision
stores the version it was made under, so which one it was is never in doubt.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from governance.engine import AegisConfig

from .models import ConfigurationVersion

_built: dict[tuple[int, str], AegisConfig] = {}
# (monotonic deadline, (version, content hash)) of the newest version, or None.
_newest_seen: tuple[float, tuple[int, str]] | None = None


def content_hash(parameters: dict[str, Any]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _newest() -> tuple[int, str]:
    global _newest_seen
    seen = _newest_seen
    if seen is not None and seen[0] > time.monotonic():
        return seen[1]
    newest = ConfigurationVersion.objects.order_by("-version").values_list("version", "content_hash").first()
    if newest is None:
        raise LookupError("no configuration version is stored; run `manage.py migrate`")
    if settings.AEGIS_CONFIG_CACHE_SECONDS > 0:
        _newest_seen = (time.monotonic() + settings.AEGIS_CONFIG_CACHE_SECONDS, newest)
    return newest


def forget_newest() -> None:
    """Look the newest version up again on the next call (after an apply or a restore)."""
    global _newest_seen
    _newest_seen = None


@receiver([post_save, post_delete], sender=ConfigurationVersion)
def _version_changed(**kwargs):
    # Now, and again once the transaction commits: a decision of another thread in between
    # must not keep the old newest version for the whole cache time.
    forget_newest()
    transaction.on_commit(forget_newest)


def active_version_number() -> int:
    return _newest()[0]


def config_of(version: int, digest: str | None = None) -> AegisConfig:
    if digest is None:
        digest = ConfigurationVersion.objects.values_list("content_hash", flat=True).get(version=version)
    config = _built.get((version, digest))
    if config is None:
        parameters = ConfigurationVersion.objects.values_list("parameters", flat=True).get(version=version)
        config = _built[(version, digest)] = AegisConfig.from_dict(parameters, base=AegisConfig.default())
    return config


def active_config() -> tuple[int, AegisConfig]:
    """(version number, config) every decision is made under."""
    version, digest = _newest()
    return version, config_of(version, digest)


def active_version() -> ConfigurationVersion:
    return ConfigurationVersion.objects.order_by("-version").first()
